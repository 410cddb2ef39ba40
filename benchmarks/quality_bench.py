r"""Melody quality on the public sample: train, sing the validation lyrics 10 times, evaluate.

    .venv/bin/python benchmarks/quality_bench.py [--config=configs/songglm_sample.py]
        [--workdir=workdir/quality/songglm_sample] [--num_samples=10] [--tag=NAME]
        [--config.generate.temperature.bar=0.5 ...]

1. ``prepare``, ``pretrain``, ``finetune`` of the config in ``--workdir`` (each stage keeps what
   is finished, so a second run with other generation settings costs minutes, not an hour).
2. The lyrics of every validation song of the fine-tuning set are sung ``--num_samples`` times
   (the paper's protocol: 10) with ``config.generate``'s settings into
   ``W/quality/<tag>/generated/sample_K/`` and evaluated against the songs
   (``W/quality/<tag>/result.json``, plots in ``W/quality/<tag>/plots/``). The tag defaults to a
   hash of the generation settings, so several decoding variants of one workdir sit side by side.
3. Two calibration rows on the same validation songs: *random human songs* -- 10 draws of
   training songs of the fine-tuning set played as if generated for the validation lyrics (cached
   in ``W/quality/calibration.json``) -- and the paper's SongGLM row as published.

Prints a table and, as its last line, one JSON object: every metric with its std over the sample
sets, the number of songs and pairs, invalid songs, the wall time of every stage (``seconds``;
a stage finished by an earlier run reports the time that run recorded, or one estimated from its
files' times, marked in ``seconds_source``), the checkpoint used, the calibration rows and the
config. Also written to ``benchmarks/results/quality_bench.json`` and
``W/quality/<tag>/bench.json``. Without ``../shared`` it prints a skip result and exits 0.
"""

import os

for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
  os.environ.setdefault(_var, '1')

import hashlib  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import time  # noqa: E402

import common  # noqa: E402  (sets sys.path)

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402
import numpy as np  # noqa: E402

BENCH = 'quality_bench'
METRICS = ('OA_A', 'OA_PCH', 'OA_IOI', 'OA_DD', 'MD', 'AA', 'AA_notes_abs_diff',
           'SBA_generated', 'SBA_reference', 'SPA_generated', 'SPA_reference', 'PEA_generated',
           'PEA_reference')
# SongGLM (arXiv 2412.18107), Table: objective evaluation, the SongGLM row (OA in %).
PAPER = {'OA_A': 96.83, 'OA_PCH': 96.50, 'OA_DD': 96.48, 'OA_IOI': 94.10, 'MD': 3.85}
TARGETS = {'OA_A': 96.8, 'OA_PCH': 96.5, 'OA_DD': 96.5, 'OA_IOI': 94.1, 'AA': 85.0}
CALIBRATION_DRAWS = 10
STAGES = ('prepare', 'pretrain', 'finetune')

_CONFIG = config_flags.DEFINE_config_file(
    'config', str(common.REPO / 'configs' / 'songglm_sample.py'), 'experiment config',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'workdir (default workdir/quality/<config stem>)')
flags.DEFINE_integer('num_samples', 10, 'sample sets (the paper: 10)')
flags.DEFINE_string('tag', None, 'name of this decoding run (default: a hash of the settings)')
flags.DEFINE_bool('calibration', True, 'compute the random-human calibration row')
FLAGS = flags.FLAGS


def _pct(key: str, v):
  """Fractions as percentages (the paper's convention) except MD and the note difference."""
  if v is None or v != v:  # None / NaN -> null
    return None
  return float(v) if key in ('MD', 'AA_notes_abs_diff') else 100.0 * float(v)


def _metrics(result: dict) -> dict:
  out = {}
  for k in METRICS:
    out[k] = _pct(k, result.get(k))
    out[f'{k}_std'] = _pct(k, result.get(f'{k}_std'))
  return out


def _stage_seconds(work: pathlib.Path, stage: str) -> float | None:
  """A finished stage's wall time estimated from its files (first written -> last written)."""
  if stage == 'prepare':
    ds = [work / 'data' / n for n in ('pretrain', 'finetune')]
    times = [p.stat().st_mtime for d in ds if d.is_dir() for p in d.iterdir()]
    starts = [d.stat().st_ctime for d in ds if d.is_dir()]
    return (max(times) - min(starts)) if times and starts else None
  d = work / stage
  if not (d / 'config.json').is_file() or not (d / 'checkpoints').is_dir():
    return None
  steps = [p for p in (d / 'checkpoints').iterdir() if p.name.isdigit()]
  if not steps:
    return None
  end = max(p.stat().st_mtime for p in steps)
  return end - (d / 'config.json').stat().st_mtime


def run_stages(config, work: pathlib.Path, names=STAGES) -> tuple[dict, dict]:
  """Run the stages ``names`` (default: prepare, pretrain, finetune) in ``work``, each keeping
  what is finished; returns the wall time of each and where the figure comes from."""
  from songglm_jax.job import stages
  record = work / 'quality' / 'stage_seconds.json'
  known = json.loads(record.read_text()) if record.is_file() else {}
  seconds, source = {}, {}
  for stage in names:
    marker = (work / 'data' / 'pretrain' / 'report.json' if stage == 'prepare'
              else work / stage / 'checkpoints')
    before = _fingerprint(marker)
    t0 = time.perf_counter()
    stages.RUNNERS[stage](config, work)
    took = time.perf_counter() - t0
    if _fingerprint(marker) != before:  # this run did (some of) the work
      known[stage] = known.get(stage, 0.0) * (stage != 'prepare') + took
      seconds[stage], source[stage] = known[stage], 'measured'
    elif stage in known:
      seconds[stage], source[stage] = known[stage], 'measured by an earlier run'
    else:
      seconds[stage], source[stage] = _stage_seconds(work, stage), 'file times'
  record.parent.mkdir(parents=True, exist_ok=True)
  record.write_text(json.dumps(known, indent=1) + '\n')
  return seconds, source


def _fingerprint(path: pathlib.Path):
  if not path.exists():
    return None
  if path.is_dir():
    return sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir())
  return path.stat().st_mtime_ns


def calibration(config, work: pathlib.Path, reference: dict) -> dict:
  """Random human songs: training songs of the fine-tuning set as if sung for the validation
  lyrics, CALIBRATION_DRAWS draws (seed = draw), cached per validation set."""
  from songglm_jax.job import eval_stage
  from songglm_jax.metrics import evaluation
  path = work / 'quality' / 'calibration.json'
  names = sorted(reference)
  if path.is_file():
    cached = json.loads(path.read_text())
    if (cached.get('songs') == names and cached.get('draws') == CALIBRATION_DRAWS
        and cached.get('std_ddof') == evaluation.STD_DDOF):  # older caches: population std
      return cached['metrics']
  train, _, _ = eval_stage.split_songs(config, work, 'train')
  pool = [train[n] for n in sorted(train)]
  sets = []
  for draw in range(CALIBRATION_DRAWS):
    pick = np.random.default_rng(draw).choice(len(pool), len(names), replace=False)
    sets.append((f'draw_{draw}', {n: pool[i].replace(name=n) for n, i in zip(names, pick)}))
  result = evaluation.evaluate_sets(sets, reference, workers=1)
  metrics = _metrics(result)
  path.write_text(json.dumps({'songs': names, 'draws': CALIBRATION_DRAWS,
                              'std_ddof': evaluation.STD_DDOF,
                              'train_songs': len(pool), 'metrics': metrics}, indent=1) + '\n')
  return metrics


def _tag(config) -> str:
  g = json.dumps(config.generate.to_dict(), sort_keys=True) + str(config.seed)
  return 'gen_' + hashlib.sha1(g.encode()).hexdigest()[:8]


def _fmt(v, std=None, pct=True):
  if v is None:
    return '-'
  s = f'{v:.2f}' if pct else f'{v:.3f}'
  return s + (f' ± {std:.2f}' if std is not None else '')


def table(rows: list[tuple[str, dict]]) -> str:
  cols = ('OA_A', 'OA_PCH', 'OA_IOI', 'OA_DD', 'MD', 'AA', 'SBA_generated', 'SPA_generated',
          'PEA_generated')
  head = ('row', 'OA(A)', 'OA(PCH)', 'OA(IOI)', 'OA(DD)', 'MD', 'AA', 'SBA', 'SPA', 'PEA')
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  for name, m in rows:
    lines.append('| ' + ' | '.join([name] + [_fmt(m.get(c), m.get(f'{c}_std')) for c in cols])
                 + ' |')
  return '\n'.join(lines)


def main(argv):
  del argv
  config = _CONFIG.value
  src = pathlib.Path(str(config.data.finetune_source or config.data.pretrain_source))
  if str(src) != 'music21' and not src.exists():
    common.finish(BENCH, {'skipped': f'corpus not found at {src} (the shared sample corpus '
                                     'lives in ../shared/data/songglm_sample)'})
  config_file = config_flags.get_config_filename(FLAGS['config'])
  stem = pathlib.Path(config_file).stem
  work = pathlib.Path(FLAGS.workdir or common.REPO / 'workdir' / 'quality' / stem)
  from songglm_jax import atomic
  from songglm_jax.job import eval_stage
  from songglm_jax.train import loop
  work.mkdir(parents=True, exist_ok=True)
  t_all = time.perf_counter()
  atomic.write_text(work / 'config.json', config.to_json(indent=1, sort_keys=True) + '\n')
  seconds, source = run_stages(config, work)
  tag = FLAGS.tag or _tag(config)
  out = work / 'quality' / tag
  t0 = time.perf_counter()
  result = eval_stage.run_stage(config, work, out=out, num_samples=FLAGS.num_samples)
  seconds['generate_evaluate'] = time.perf_counter() - t0
  source['generate_evaluate'] = 'measured'
  gen = json.loads((out / 'generated' / 'generate.json').read_text())
  reference_names = sorted(p.stem for p in (out / 'reference').glob('*.mid'))
  metrics = _metrics(result)
  calib = None
  if FLAGS.calibration:
    from songglm_jax.metrics import files
    read = {str(p): files.read_one(str(p))[1:] for p in files.song_files(out / 'reference')}
    ref = files.read_folder(out / 'reference', read, out / 'reference').songs
    t0 = time.perf_counter()
    calib = calibration(config, work, ref)
    seconds['calibration'] = time.perf_counter() - t0
  rows = [(f'this run ({tag})', metrics)]
  if calib:
    rows.append(('random human songs', calib))
  rows.append(('SongGLM (paper)', PAPER))
  print(table(rows))
  train_steps = {s: int(config[s].num_train_steps) for s in ('pretrain', 'finetune')}
  train_dropout = {s: loop.stage_model_config(config, s).dropout_rate
                   for s in ('pretrain', 'finetune')}
  bench = {
      'workdir': str(work), 'tag': tag, 'config_file': config_file,
      'config_overrides': config_flags.get_override_values(FLAGS['config']),
      'metrics': metrics, 'num_songs': len(reference_names), 'num_pairs': result['num_pairs'],
      'num_sample_sets': result['num_sample_sets'], 'num_invalid': gen['num_invalid'],
      'checkpoint': {'stage': gen.get('stage'), 'step': gen.get('step'),
                     'kind': gen.get('checkpoint')},
      'generate_options': gen.get('options'), 'notes_per_s': gen.get('notes_per_s'),
      'seconds': seconds, 'seconds_source': source,
      'seconds_total_this_run': time.perf_counter() - t_all,
      'seconds_training_total': sum(v for k, v in seconds.items()
                                    if k in STAGES and v is not None),
      'train_steps': train_steps, 'train_dropout': train_dropout,
      'model': config.model.to_dict(),
      'calibration_random_human': calib, 'paper': PAPER, 'targets': TARGETS,
  }
  (out / 'bench.json').write_text(json.dumps(bench, indent=1) + '\n')
  common.finish(BENCH, bench)


if __name__ == '__main__':
  from songglm_jax import cli
  cli.run(main)
