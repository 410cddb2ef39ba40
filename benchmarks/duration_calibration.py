r"""Measure a trained workdir's duration marginal against its training songs' and fit logit
offsets that correct it (``generate.duration_offsets``).

    .venv/bin/python benchmarks/duration_calibration.py --workdir=W [--songs=64] \
        [--num_samples=2] [--iterations=1] [--damping=1.0] [--min_share=0.005] \
        [--max_offset=1.0] [--config.generate.X=V ...]

Sings the lyrics of ``--songs`` training songs of the workdir's fine-tuning split (an evenly
spaced pick of the songs sorted by name; never validation songs) ``--num_samples`` times with
the workdir's decoding (``W/config.json``'s ``generate`` section, then the ``--config.*``
overrides; its own ``duration_offsets`` ignored), into ``W/duration_calibration/iteration_K/``
(kept and reused when the songs and options match). For every duration of the tokenizer grid
that makes up at least ``--min_share`` of the reference or the generated notes, the correction
is ``log(p_reference / p_generated)`` (both with +1 note smoothing), clipped to
``+-max_offset``. Iteration 0 measures the uncorrected decoder; each further iteration sings
again with the offsets so far and adds ``--damping`` times the new correction (a context-free
draw needs one iteration; a sequence model, whose later notes follow the earlier ones, moves
further than the offsets say, hence the iterations and the damping).

Prints each iteration's table (duration, reference share, generated share, correction) and, as
the last line, one JSON object: ``offsets`` (the string for
``--config.generate.duration_offsets``), every iteration's offsets, shares and total variation
distance to the reference, the songs and notes counted, the seconds. Also written to
``benchmarks/results/duration_calibration.json``. Bad flags or a workdir without a config: a
one-line error (exit 1).
"""

import os

for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
  os.environ.setdefault(_var, '1')

import math  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import common  # noqa: E402  (sets sys.path)

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

BENCH = 'duration_calibration'
FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'a trained workdir (config.json, checkpoints)')
flags.DEFINE_integer('songs', 64, 'training songs whose lyrics to sing')
flags.DEFINE_integer('num_samples', 2, 'samples per song')
flags.DEFINE_float('min_share', 0.005, 'durations below this share in both sets get no offset')
flags.DEFINE_float('max_offset', 1.0, 'offsets are clipped to +- this')
flags.DEFINE_integer('iterations', 1, 'measure, correct, measure again ... this many times')
flags.DEFINE_float('damping', 1.0, 'each iteration adds this share of the measured correction')


def _fail(message: str) -> None:
  print(f'{BENCH}: error: {message}', file=sys.stderr)
  sys.exit(1)


def counts(songs, grid: np.ndarray) -> np.ndarray:
  """Notes per duration grid value (notes whose duration is off the grid are left out)."""
  durations = np.concatenate([np.asarray(s.duration, np.int64) for s in songs])
  at = np.minimum(np.searchsorted(grid, durations), len(grid) - 1)
  return np.bincount(at[grid[at] == durations], minlength=len(grid)).astype(np.float64)


def offsets(ref_counts: np.ndarray, gen_counts: np.ndarray, grid: np.ndarray, min_share: float,
            max_offset: float) -> dict[int, float]:
  """``{ticks: log(p_reference / p_generated)}`` (+1 smoothing, clipped to +-max_offset,
  rounded to 3 decimals, zeros dropped) for the grid durations whose share is at least
  ``min_share`` in either set."""
  k = len(grid)
  ref = (ref_counts + 1.0) / (ref_counts.sum() + k)
  gen = (gen_counts + 1.0) / (gen_counts.sum() + k)
  common_enough = np.maximum(ref_counts / max(ref_counts.sum(), 1.0),
                             gen_counts / max(gen_counts.sum(), 1.0)) >= min_share
  out = {}
  for i in np.flatnonzero(common_enough):
    v = round(float(np.clip(math.log(ref[i] / gen[i]), -max_offset, max_offset)), 3)
    if v:
      out[int(grid[i])] = v
  return out


def _apply_overrides(config, argv) -> None:
  """``--config.generate.X=V`` / ``--config.generate.X.Y=V`` onto ``config.generate``, each value
  typed as the field it replaces."""
  for a in argv:
    key, _, value = a[len('--config.generate.'):].partition('=')
    *outer, last = key.split('.')
    section = config.generate
    try:
      for k in outer:
        section = section[k]
      old = section[last]
    except (KeyError, AttributeError, TypeError):
      _fail(f'--config.generate.{key}: not a field of config.generate')
    if hasattr(old, 'keys'):
      _fail(f'--config.generate.{key}: set one value at a time, e.g. {key}.pitch=1.0')
    try:
      section[last] = (value.lower() in ('1', 'true') if isinstance(old, bool)
                       else type(old)(value))
    except (TypeError, ValueError):
      _fail(f'--config.generate.{key}={value}: expected a {type(old).__name__}')


def main():
  over = [a for a in sys.argv[1:] if a.startswith('--config.generate.')]
  FLAGS([a for a in sys.argv if not a.startswith('--config.generate.')])
  if not FLAGS.workdir:
    _fail('--workdir is required')
  work = pathlib.Path(FLAGS.workdir)
  if not (work / 'config.json').is_file():
    _fail(f'{work / "config.json"} not found (a trained workdir is needed)')
  if FLAGS.songs < 1 or FLAGS.num_samples < 1 or FLAGS.iterations < 1:
    _fail('--songs, --num_samples and --iterations must be >= 1')
  if not 0 < FLAGS.damping <= 1:
    _fail('--damping must be in (0, 1]')
  from songglm_jax.inference import generate_run, generation_rules
  from songglm_jax.job import eval_stage
  from songglm_jax.metrics import files
  from songglm_jax.train import inference as inference_lib

  t0 = time.perf_counter()
  config = inference_lib.read_config(work / 'config.json')
  with config.unlocked():
    _apply_overrides(config, over)
    config.generate.duration_offsets = ''  # measure the uncorrected decoder
  try:
    train, _, _ = eval_stage.split_songs(config, work, 'train')
  except (OSError, ValueError) as e:
    _fail(str(e))
  names = sorted(train)
  pick = np.unique(np.linspace(0, len(names) - 1, min(FLAGS.songs, len(names))).round()
                   .astype(int))
  out = work / 'duration_calibration'
  eval_stage.write_reference({eval_stage.file_name(names[i]): train[names[i]] for i in pick},
                             out / 'reference')

  def read(folder):
    songs = (files.read_one(str(p))[1] for p in files.song_files(folder))
    return [s for s in songs if s is not None]

  reference = read(out / 'reference')
  if not reference:
    _fail(f'no songs read back from {out / "reference"}')
  share = lambda c: c / max(c.sum(), 1.0)
  current: dict[int, float] = {}
  history = []
  grid = ref_c = None
  for it in range(FLAGS.iterations):
    text = generation_rules.format_offsets(current)
    with config.unlocked():
      config.generate.duration_offsets = text
    folder = out / f'iteration_{it}'
    gen = generate_run.run(str(work), folder, songs_from=str(out / 'reference'), resume=True,
                           config=config, num_samples=FLAGS.num_samples, plot=False)
    if grid is None:
      stage = gen.get('stage') or 'finetune'
      grid = np.asarray(inference_lib.read_tokenizer(work / stage / 'vocab.json').duration_grid,
                        np.int64)
      ref_c = counts(reference, grid)
    generated = [s for k in sorted(folder.glob('sample_*')) for s in read(k)]
    if not generated:
      _fail(f'no songs read back from {folder}')
    gen_c = counts(generated, grid)
    step = offsets(ref_c, gen_c, grid, FLAGS.min_share, FLAGS.max_offset)
    print(f'[{BENCH}] iteration {it} (offsets {text or "none"}):')
    print(f'{"ticks":>6} {"reference":>10} {"generated":>10} {"correction":>10}')
    for i in np.flatnonzero(np.maximum(share(ref_c), share(gen_c)) >= FLAGS.min_share):
      print(f'{grid[i]:>6} {100 * share(ref_c)[i]:>9.1f}% {100 * share(gen_c)[i]:>9.1f}% '
            f'{step.get(int(grid[i]), 0.0):>+10.3f}', flush=True)
    history.append({'offsets': text, 'notes_generated': int(gen_c.sum()),
                    'share_generated': {int(t): float(v) for t, v in zip(grid, share(gen_c))
                                        if v > 0},
                    'total_variation': float(0.5 * np.abs(share(ref_c) - share(gen_c)).sum())})
    for t, v in step.items():
      current[t] = float(np.clip(current.get(t, 0.0) + FLAGS.damping * v, -FLAGS.max_offset,
                                 FLAGS.max_offset))
    current = {t: round(v, 3) for t, v in current.items() if round(v, 3)}
  text = generation_rules.format_offsets(current)
  print(f'--config.generate.duration_offsets={text}')
  common.finish(BENCH, {
      'offsets': text, 'workdir': str(work.resolve()), 'songs': len(reference),
      'num_samples': FLAGS.num_samples, 'iterations': FLAGS.iterations,
      'damping': FLAGS.damping, 'notes_reference': int(ref_c.sum()),
      'notes_generated': history[-1]['notes_generated'],
      'checkpoint': {'stage': gen.get('stage'), 'step': gen.get('step')},
      'overrides': over,
      'share_reference': {int(t): float(v) for t, v in zip(grid, share(ref_c)) if v > 0},
      'history': history,
      'seconds': time.perf_counter() - t0})


if __name__ == '__main__':
  main()
