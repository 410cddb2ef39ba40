"""Stress lookup timing (music/stress.py): the CMU dictionary load, then both lookup modes over the
shared pre-training corpus' lyrics, one core.

    .venv/bin/python benchmarks/stress_bench.py [--repeats=3]

The dictionary load is timed cold (its cache cleared) ``--repeats`` times; each lookup mode is
timed over every song's syllables, first with cold per-token caches, then warm (best and median
of ``--repeats``). These figures were wall-clock assertions in tests/music/test_stress.py (load
< 2 s, both modes over the corpus < 20 s); a test should not fail because the machine is busy,
so they are measured here and the targets only printed. Last line: JSON.
"""

import argparse
import statistics
import time

import common
from songglm_jax.music import stress

TARGETS = {'load_seconds': 2.0, 'both_modes_cold_seconds': 20.0}


def _timed(fn):
  t = time.perf_counter()
  out = fn()
  return time.perf_counter() - t, out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  if args.repeats < 1:
    raise SystemExit(f'error: --repeats: expected >= 1, got {args.repeats}')
  folder = common.sample_dir('pretrain', 'stress_bench')
  import symusic  # pylint: disable=import-outside-toplevel
  songs = [[ly.text for ly in symusic.Score(str(p)).tracks[0].lyrics]
           for p in sorted(folder.glob('*.mid'))]
  syllables = sum(map(len, songs))

  loads = []
  for _ in range(args.repeats):
    stress._load.cache_clear()  # pylint: disable=protected-access
    loads.append(_timed(stress.load_cmudict)[0])

  def run(mode):
    return [p for syl in songs for p in stress.syllable_stress(syl, mode)]

  stress._token.cache_clear()  # pylint: disable=protected-access
  cold = {mode: _timed(lambda m=mode: run(m))[0] for mode in stress.MODES}
  warm = {mode: [_timed(lambda m=mode: run(m))[0] for _ in range(args.repeats)]
          for mode in stress.MODES}
  print(f'{len(songs)} songs, {syllables} syllables; best and median of {args.repeats}')
  print(f'  dictionary load (cold)   best {min(loads):7.3f} s   median '
        f'{statistics.median(loads):7.3f} s   (target < {TARGETS["load_seconds"]} s)')
  for mode in stress.MODES:
    print(f'  {mode:8s} mode  cold {cold[mode]:7.3f} s   warm best {min(warm[mode]):7.3f} s   '
          f'median {statistics.median(warm[mode]):7.3f} s')
  both = sum(cold.values())
  print(f'  both modes, cold caches: {both:.3f} s '
        f'(target < {TARGETS["both_modes_cold_seconds"]} s)')
  common.finish('stress_bench', {
      'songs': len(songs), 'syllables': syllables, 'repeats': args.repeats,
      'load_seconds_best': min(loads), 'load_seconds_median': statistics.median(loads),
      'mode_seconds_cold': cold,
      'mode_seconds_warm_best': {m: min(v) for m, v in warm.items()},
      'mode_seconds_warm_median': {m: statistics.median(v) for m, v in warm.items()},
      'both_modes_cold_seconds': both, 'targets': TARGETS,
      'within_targets': min(loads) < TARGETS['load_seconds']
                        and both < TARGETS['both_modes_cold_seconds']})


if __name__ == '__main__':
  main()
