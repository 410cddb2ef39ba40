r"""Why a quality run's melodies differ from the human ones, figure by figure.

    .venv/bin/python benchmarks/quality_diagnose.py --run=RUN [--json=OUT] [--influence]

``RUN`` is a folder as ``benchmarks/quality_bench.py`` writes it (``W/quality/<tag>/``):
``RUN/reference/NAME.mid`` (the human validation songs) and ``RUN/generated/sample_K/NAME.mid``
(K = 0..9, songs generated for the same lyrics); a ``RUN/generated/`` without ``sample_K/``
folders is one sample set. Files are found, read and paired as the evaluation does
(``songglm_jax/metrics/files.py``).

Prints a table -- figure, reference, generated (pooled over the sample sets, +- the std over
the sets), generated minus reference -- grouped as timing, durations, pitch, phrase ends, stress,
position in song (``songglm_jax/metrics/diagnose.py`` defines every figure; fractions are
printed as percentages, their difference in percentage points). ``--influence`` adds, for each
OA metric, the songs whose leaving out raises it most (``songglm_jax/metrics/influence.py``: one
far-off reference song can hold OA down; 10-40 s more), also under the JSON key ``influence``.
The last line is one JSON object with every figure (NaN as null), also written to ``--json``
when given and to ``benchmarks/results/quality_diagnose.json``. A missing ``RUN`` is a one-line
error (exit 1).
"""

import os

for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
  os.environ.setdefault(_var, '1')

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import common  # noqa: E402  (sets sys.path)

BENCH = 'quality_diagnose'


def _fail(message: str) -> None:
  print(f'{BENCH}: error: {message}', file=sys.stderr)
  sys.exit(1)


def read_run(run: pathlib.Path):
  """``(reference songs, [(set name, songs)], skipped reasons)`` of a run folder.

  Raises:
    ValueError: ``run``, ``run/reference`` or ``run/generated`` is not a folder.
  """
  from songglm_jax.metrics import files
  ref_root, gen_root = run / 'reference', run / 'generated'
  for folder in (run, ref_root, gen_root):
    if not folder.is_dir():
      raise ValueError(f'--run: not a folder: {folder}')
  sets, _ = files.sample_sets(gen_root)
  read = {path: rest for path, *rest in map(files.read_one, files.files_to_read(ref_root, sets))}
  ref = files.read_folder(ref_root, read, ref_root)
  gen = [(name, files.read_folder(folder, read, gen_root)) for name, folder in sets]
  skipped = collections.Counter(f['reason'] for f in ref.skipped)
  skipped.update(f['reason'] for _, r in gen for f in r.skipped)
  return ref.songs, [(name, r.songs) for name, r in gen], dict(sorted(skipped.items()))


def _value(unit: str, v: float) -> str:
  if v is None or math.isnan(v):
    return 'n/a'
  if unit == 'fraction':
    return f'{100 * v:.1f}%'
  if unit == 'ticks' or (unit == 'count' and v == int(v)):
    return f'{v:.0f}'
  return f'{v:.2f}'


def _delta(unit: str, v: float) -> str:
  if v is None or math.isnan(v):
    return 'n/a'
  if unit == 'fraction':
    return f'{100 * v:+.1f} pp'
  if unit == 'ticks' or (unit == 'count' and v == int(v)):
    return f'{v:+.0f}'
  return f'{v:+.2f}'


def _spread(unit: str, v: float) -> str:
  """The std over the sample sets (percentage points for fractions)."""
  if v is None or math.isnan(v):
    return ''
  return '+-' + (f'{100 * v:.1f}' if unit == 'fraction' else _value(unit, v))


def table(result: dict) -> str:
  """The figures as a readable table, one block per group of ``diagnose.GROUPS``."""
  from songglm_jax.metrics import diagnose
  ref, gen, std, diff = (result[k] for k in ('reference', 'generated', 'generated_std',
                                              'difference'))
  width = max(len(k.split('.', 1)[1]) for k in ref) + 2
  head = f'{"":{width}}  {"reference":>10}  {"generated":>10} {"(std)":<8}  {"gen - ref":>10}'
  lines = [head, '-' * len(head)]
  for group, title in diagnose.GROUPS + (('count', 'Counts'),):
    lines.append(title)
    for key in (k for k in ref if k.split('.', 1)[0] == group):
      unit = diagnose.unit_of(key)
      name = key.split('.', 1)[1]
      lines.append(f'  {name:{width - 2}}  {_value(unit, ref[key]):>10}  '
                   f'{_value(unit, gen[key]):>10} {_spread(unit, std[key]):<8}  '
                   f'{_delta(unit, diff[key]):>10}')
  return '\n'.join(lines)


def influence_table(influence: dict) -> str:
  """The ``--influence`` block: each OA with every song, and without the songs that hold it
  down most."""
  lines = ['Influence on OA (one song and its generated songs left out; mean over the sets)']
  for key, v in influence.items():
    lines.append(f'  {key:<7} {100 * v["all"]:6.2f} +-{100 * v["all_std"]:5.2f} with every song')
    for s in v['songs']:
      value = '' if s['value'] is None else f' (mean IOI {s["value"]:.0f} ticks)'
      lines.append(f'  {"":<7} {100 * s["without"]:6.2f} +-{100 * s["without_std"]:5.2f} '
                   f'without {s["song"]}{value}')
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--run', required=True, help='run folder with reference/ and generated/')
  parser.add_argument('--json', default=None, help='also write the JSON result here')
  parser.add_argument('--influence', action='store_true',
                      help='also list, for each OA, the songs whose leaving out raises it most')
  args = parser.parse_args()
  from songglm_jax.metrics import diagnose, evaluation

  t0 = time.perf_counter()
  run = pathlib.Path(args.run)
  try:
    reference, sets, skipped = read_run(run)
    seconds_read = time.perf_counter() - t0
    result = diagnose.diagnose(reference, sets)
    if args.influence:
      from songglm_jax.metrics import influence
      result['influence'] = influence.oa_influence(reference, sets)
  except ValueError as e:
    _fail(str(e))
  result = {'run': str(run.resolve()), **result, 'skipped': skipped,
            'seconds_read': seconds_read, 'seconds': time.perf_counter() - t0}
  print(f'{BENCH}: {run}: {int(result["reference"]["count.songs"])} reference songs, '
        f'{result["num_pairs"]} generated songs in {result["num_sample_sets"]} sample sets '
        f'({result["misaligned"]} misaligned; skipped files: {skipped or "none"})')
  print(f'durations shown (ticks): {result["duration_values"]}')
  print(table(result))
  if 'influence' in result:
    print(influence_table(result['influence']))
  result = evaluation.json_ready(result)
  if args.json:
    from songglm_jax import atomic
    atomic.write_text(args.json, json.dumps(result, indent=1) + '\n')
  common.finish(BENCH, result)


if __name__ == '__main__':
  main()
