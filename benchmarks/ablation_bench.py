r"""The paper's ablation table on the public sample: every row x seed trained, sung, evaluated.

    GLIBC_TUNABLES=... .venv/bin/python benchmarks/ablation_bench.py [--rows=full,clm,...]
        [--seeds=0,1] [--model=small|sample] [--pretrain_steps=600] [--finetune_steps=250]
        [--workdir=workdir/ablations] [--base=songglm_sample] [--num_samples=10] [--render_only]

Each row is a variant of ``configs/ablations.py`` on the base config (``configs/songglm_sample.py``,
data in ``../shared/data/songglm_sample``; without it the script prints a skip result and exits
0). Every row gets the same budget, data, seed list and generation settings (``config.generate``
of the base: ``config.melody_quality``'s per-field sampling, constrained) and the paper's model
(``configs/ablations.py``): prepare (shared by the rows whose data options agree,
``W/_data/<key>``, linked as ``W/<row>/seed<S>/data``), pre-train (not for ``scratch``), fine-tune, then sing the lyrics of every validation song of the fine-tuning set
``--num_samples`` times (the paper's 10 sample sets) and evaluate against the songs
(``quality_bench.run_stages`` and ``eval_stage.run_stage``, as ``quality_bench.py`` does).

A finished run keeps its result in ``W/<row>/seed<S>/ablation.json`` and is skipped on re-run, so
the table can be completed over several sittings; a half-finished run resumes its stages. A run
started with other settings (budget, base, sample sets) is refused: use another ``--workdir``.

Budget. Every run trains 600 + 250 steps of 8 x 1024 tokens (songglm_sample's schedule when the
table was made; it is 1120 + 800 on a smaller model since 2026-11-26), on a smaller model by
default (``--model=small``: d_model 128, 2 layers, 4 heads, FF 512 -- the paper's architecture
otherwise, ``configs/ablations.py``): 0.15 ms a token against 0.40 at the sample's size, so ~20
minutes a run instead of 48 (an estimate from per-token times; each run records its wall time),
plus 2-7 minutes of singing and evaluating 10 sample sets; 11 rows x 2 seeds take ~8 hours, over
several sittings. The first budget, 70 + 30 steps on the sample's model, left the model barely
trained (README "Ablations"): a table at it would measure under-training, not the paper's
components.

Output: the markdown table (mean +- std over seeds of every metric, the paper's row beside ours,
``*`` where our row differs from ``full`` by more than 2 standard errors, budget, wall time,
command, commits) written to ``W/ablations.md`` and, for the songglm_sample base, to
``docs/ablations.md``; printed, with one JSON object as the last line
(``benchmarks/results/ablation_bench.json``). ``--render_only`` rewrites them from the finished
runs without running anything.
"""

import os

for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
  os.environ.setdefault(_var, '1')

import argparse  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import common  # noqa: E402  (sets sys.path)
import ablation_table  # noqa: E402
import quality_bench  # noqa: E402  (the stages, metrics and timing machinery)

BENCH = 'ablation_bench'
ROWS = ablation_table.ROWS
BASES = ('songglm_sample', 'default')
ALIASES = {'single_objective': 'ngram_only'}  # configs/ablations.py's older name
DEFAULTS = {'pretrain_steps': 600, 'finetune_steps': 250, 'num_samples': 10, 'model': 'small'}
# Model sizes of the table: 'sample' keeps the base config's (songglm_sample: d_model 192, 3
# layers, 6 heads, FF 384 since 2026-11-26; 256 / 4 / 8 / 512 before); 'small' is the base
# config's default GLM, about 2.7x cheaper per token here.
MODELS = {'sample': {}, 'small': dict(d_model=128, num_layers=2, num_heads=4, d_ff=512)}


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # one line, as every CLI of the project
    from songglm_jax import cli
    cli.fail(message, status=2)


def parse_args(argv):
  ap = _Parser(description=__doc__.split('\n')[0])
  ap.add_argument('--rows', default=','.join(ROWS), help='comma-separated rows to run')
  ap.add_argument('--seeds', default='0,1', help='comma-separated training seeds')
  ap.add_argument('--pretrain_steps', type=int, default=DEFAULTS['pretrain_steps'])
  ap.add_argument('--finetune_steps', type=int, default=DEFAULTS['finetune_steps'])
  ap.add_argument('--model', default=DEFAULTS['model'], choices=sorted(MODELS),
                  help="model size: 'small' (d_model 128, 2 layers) or the base config's")
  ap.add_argument('--num_samples', type=int, default=DEFAULTS['num_samples'],
                  help='sample sets per validation song (the paper: 10)')
  ap.add_argument('--num_songs', type=int, default=0,
                  help='validation songs used (0 = all; fewer only for a smoke run)')
  ap.add_argument('--limit', type=int, default=0,
                  help='input files per source (0 = all; fewer only for a smoke run)')
  ap.add_argument('--base', default='songglm_sample', help=f'base config, one of {BASES}')
  ap.add_argument('--workdir', default=None, help='default workdir/ablations (songglm_sample) '
                  'or workdir/ablations_<base>')
  ap.add_argument('--docs', default=None, help='markdown output beside W/ablations.md '
                  '(default docs/ablations.md for songglm_sample; "" = none)')
  ap.add_argument('--render_only', action='store_true', help='only rewrite the table')
  a = ap.parse_args(argv)
  rows = [ALIASES.get(r.strip(), r.strip()) for r in a.rows.split(',') if r.strip()]
  bad = [r for r in rows if r not in ROWS]
  if bad or not rows:
    ap.error(f'--rows: unknown row(s) {bad or "(none)"}; expected names from {",".join(ROWS)}')
  try:
    seeds = sorted({int(s) for s in a.seeds.split(',') if s.strip()})
  except ValueError:
    ap.error(f'--seeds: expected comma-separated integers, got {a.seeds!r}')
  if not seeds or min(seeds) < 0:
    ap.error(f'--seeds: expected integers >= 0, got {a.seeds!r}')
  if a.base not in BASES:
    ap.error(f'--base: expected one of {BASES}, got {a.base!r}')
  for name in ('pretrain_steps', 'finetune_steps', 'num_samples'):
    if getattr(a, name) < 1:
      ap.error(f'--{name}: expected >= 1, got {getattr(a, name)}')
  if a.num_songs < 0 or a.limit < 0:
    ap.error('--num_songs and --limit: expected >= 0')
  a.rows, a.seeds = rows, seeds
  default_work = 'ablations' if a.base == 'songglm_sample' else f'ablations_{a.base}'
  if a.model != DEFAULTS['model']:
    default_work += f'_{a.model}_model'
  a.workdir = pathlib.Path(a.workdir or common.REPO / 'workdir' / default_work)
  if a.docs is None:
    a.docs = str(common.REPO / 'docs' / 'ablations.md') if a.base == 'songglm_sample' else ''
  return a


def settings(args) -> dict:
  """What must agree between the runs of one table (a run is reused only when it does)."""
  return {'base': args.base, 'model': args.model, 'pretrain_steps': args.pretrain_steps,
          'finetune_steps': args.finetune_steps, 'num_samples': args.num_samples,
          'num_songs': args.num_songs, 'limit': args.limit}


def make_config(row: str, seed: int, args):
  from configs import ablations
  c = ablations.get_config(f'{row},{args.base}')
  c.seed = seed
  c.model.update(**MODELS[args.model])
  c.pretrain.num_train_steps = args.pretrain_steps
  c.finetune.num_train_steps = args.finetune_steps
  c.data.limit = args.limit
  c.evaluate.num_songs = args.num_songs
  c.evaluate.plots = False
  return c


@functools.lru_cache(maxsize=None)
def commit() -> str:
  """HEAD's short hash, '+dirty' when tracked files differ from it, as it was when this process
  started (main() asks first): the code the runs execute, even if HEAD moves meanwhile."""
  run = lambda *a: subprocess.run(['git', *a], cwd=common.REPO, capture_output=True,
                                  text=True).stdout.strip()
  head = run('rev-parse', '--short', 'HEAD') or 'unknown'
  return head + ('+dirty' if run('status', '--porcelain', '--untracked-files=no') else '')


def shared_data(config, root: pathlib.Path) -> tuple[pathlib.Path, float | None]:
  """Prepare the datasets once per data options in ``root/_data/<key>``; (its data folder, the
  seconds this call spent preparing, None when it was already there)."""
  from songglm_jax.job import stages
  key = hashlib.sha1(json.dumps(config.data.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
  home = root / '_data' / key
  marker = home / 'data' / 'pretrain' / 'report.json'
  before = marker.stat().st_mtime_ns if marker.is_file() else None
  t0 = time.perf_counter()
  stages.run_prepare(config, home)
  took = time.perf_counter() - t0
  return home / 'data', (took if (marker.stat().st_mtime_ns if marker.is_file() else None)
                         != before else None)


def check_settings(work: pathlib.Path, want: dict) -> None:
  """Raise ValueError when ``work`` was started with other settings than ``want``."""
  stamp = work / 'ablation_settings.json'
  if stamp.is_file() and json.loads(stamp.read_text()) != want:
    raise ValueError(f'{work} was run with other settings ({stamp.read_text().strip()}); '
                     'use another --workdir')


def run_one(row: str, seed: int, args) -> dict:
  """Train, sing and evaluate one row with one seed (or return its kept result)."""
  from songglm_jax import atomic
  from songglm_jax.job import eval_stage
  work = args.workdir / row / f'seed{seed}'
  want = settings(args)
  stamp = work / 'ablation_settings.json'
  done = work / 'ablation.json'
  check_settings(work, want)
  if done.is_file():
    print(f'[ablation] {row} seed {seed}: finished earlier, kept ({done})', flush=True)
    return json.loads(done.read_text())
  print(f'[ablation] {row} seed {seed} -> {work}', flush=True)
  config = make_config(row, seed, args)
  work.mkdir(parents=True, exist_ok=True)
  atomic.write_text(stamp, json.dumps(want, sort_keys=True) + '\n')
  data, prepare_seconds = shared_data(config, args.workdir)
  link = work / 'data'
  if not link.exists():
    link.symlink_to(os.path.relpath(data, work), target_is_directory=True)
  atomic.write_text(work / 'config.json', config.to_json(indent=1, sort_keys=True) + '\n')
  t_all = time.perf_counter()
  trained = [s for s in ('pretrain', 'finetune') if s in str(config.stages).split(',')]
  seconds, source = quality_bench.run_stages(config, work, names=tuple(trained))
  out = work / 'quality' / 'ablation'
  t0 = time.perf_counter()
  result = eval_stage.run_stage(config, work, out=out, num_samples=args.num_samples)
  seconds['generate_evaluate'] = time.perf_counter() - t0
  gen = json.loads((out / 'generated' / 'generate.json').read_text())
  record = {
      'row': row, 'seed': seed, 'settings': want, 'commit': commit(),
      'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''),
      'finished': time.strftime('%Y-%m-%dT%H:%M:%S'),
      'metrics': quality_bench._metrics(result),  # pylint: disable=protected-access
      'num_songs': len(list((out / 'reference').glob('*.mid'))),
      'num_pairs': result['num_pairs'], 'num_sample_sets': result['num_sample_sets'],
      'num_invalid': gen['num_invalid'], 'checkpoint': {'stage': gen.get('stage'),
                                                        'step': gen.get('step')},
      'generate_options': gen.get('options'), 'seconds': seconds, 'seconds_source': source,
      'seconds_prepare_shared': prepare_seconds,
      'seconds_total': sum(v for v in seconds.values() if v is not None),
      'seconds_this_call': time.perf_counter() - t_all,
      'model': config.model.to_dict(), 'stages': str(config.stages),
      'task_weights': config.pipeline.task_weights.to_dict(),
      'song_rate': float(config.pipeline.song_rate),
      'batch': {s: {'batch_size': int(config[s].batch_size), 'seq_len':
                    int(config[s].seq_len or config.pipeline.seq_len)}
                for s in ('pretrain', 'finetune')},
  }
  atomic.write_text(done, json.dumps(record, indent=1) + '\n')
  print(f'[ablation] {row} seed {seed}: {record["seconds_total"] / 60:.1f} min', flush=True)
  return record


def command(args) -> str:
  """The command that reproduces this table (any row of it with ``--rows=ROW``)."""
  parts = [f'GLIBC_TUNABLES={os.environ["GLIBC_TUNABLES"]}'] if os.environ.get(
      'GLIBC_TUNABLES') else []
  parts.append('.venv/bin/python benchmarks/ablation_bench.py')
  parts += [f'--{k}={getattr(args, k)}' for k, v in DEFAULTS.items() if getattr(args, k) != v]
  if args.seeds != [0, 1]:
    parts.append(f'--seeds={",".join(map(str, args.seeds))}')
  for k, v in (('base', 'songglm_sample'), ('num_songs', 0), ('limit', 0)):
    if getattr(args, k) != v:
      parts.append(f'--{k}={getattr(args, k)}')
  return ' '.join(parts)


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  commit()  # the code this process runs (commit() keeps the first answer)
  from absl import flags
  if not flags.FLAGS.is_parsed():  # Grain reads absl flags; this script parses its own
    flags.FLAGS.mark_as_parsed()
  from songglm_jax import cli
  cli.quiet_other_libraries()
  config = make_config('full', 0, args)
  src = pathlib.Path(str(config.data.finetune_source or config.data.pretrain_source))
  if not args.render_only and str(src) != 'music21' and not src.exists():
    common.finish(BENCH, {'skipped': f'corpus not found at {src} (the shared sample corpus '
                                     'lives in ../shared/data/songglm_sample)'})
  t0 = time.perf_counter()
  failed = {}
  for row in args.rows:  # refuse a mixed budget before spending hours
    for seed in args.seeds:
      try:
        check_settings(args.workdir / row / f'seed{seed}', settings(args))
      except ValueError as e:
        cli.fail(str(e))
  if not args.render_only:
    for row in args.rows:
      for seed in args.seeds:
        try:
          run_one(row, seed, args)
        except ValueError as e:  # bad settings: one line, then the table of what is finished
          failed[f'{row}/seed{seed}'] = str(e)
          print(f'[ablation] {row} seed {seed}: error: {e}', file=sys.stderr, flush=True)
  runs = ablation_table.collect(args.workdir, settings(args))
  text = ablation_table.render(runs, settings(args), command(args), args.seeds)
  (args.workdir).mkdir(parents=True, exist_ok=True)
  (args.workdir / 'ablations.md').write_text(text)
  if args.docs:
    pathlib.Path(args.docs).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.docs).write_text(text)
  print(ablation_table.table(runs))
  summary = ablation_table.summary(runs)
  try:
    common.finish(BENCH, {'workdir': str(args.workdir), 'settings': settings(args),
                          'command': command(args), 'rows': summary, 'failed': failed,
                          'seconds_this_call': time.perf_counter() - t0,
                          'docs': args.docs or None})
  except SystemExit:
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
  main()
