"""How cost grows with the corpus: prepare, lexicon fit, pipeline and disk at 1k, 10k, 50k songs.

    .venv/bin/python benchmarks/scale_bench.py [--sizes=1000,10000,50000] [--workers=1,2]

Corpora (``scale_corpora.py``): transposed, re-timed copies of the 1000 shared pre-training songs,
named ``synthetic-...``, cached under ``workdir/scale_corpora/`` (gitignored; ``--corpora``) and
rebuilt when absent. For each size, into a temporary folder:

  prepare[size][workers]  ``python -m songglm_jax.prepare`` (no lexicon) as a subprocess: wall
                          ``seconds``; ``cpu_seconds`` of the process and its reaped workers
                          (``wait4``); peak RSS two ways: ``tree_rss_mb``, the largest sum of
                          the RSS of the process and its workers, sampled every 0.1 s (what the
                          machine must hold); ``max_rss_mb``, ``ru_maxrss`` of ``wait4`` on the
                          process (forked from a small wrapper, since a child inherits the peak
                          RSS of the process it is forked from): the largest single process
                          among it and its reaped workers (never a sum)
  lexicon[size]           ``prepare --fit_lexicon`` (how the lexicon is fitted) with the most
                          workers: the fit's seconds (prepare's log line), the whole run's
                          seconds and peak RSS, and ``fit_extra_rss_mb``: its ``max_rss_mb``
                          less that of ``prepare[size]`` with as many workers (what the fit adds)
  lexicon_reference[size] the same with ``--lexicon_partitions=-1``: the reference fit, which
                          holds every train song and n-gram table (``--reference=0`` skips it);
                          ``identical``: its lexicon.json is byte for byte the partitioned one's
  pipeline[size]          the Grain pre-training pipeline (read, decode, shuffle, mask, pack,
                          batch; in this process, no workers) over the lexicon run's records:
                          examples and rows per second of this process's CPU time
  disk_mb[size]           the lexicon run's record files on disk

Targets (issue 16): ms per song at the largest size within 1.5x of the smallest, as
``cpu_ms_per_song_net``: CPU time of the process tree (which other jobs on the machine do not
inflate as they do wall time) less ``startup_cpu_seconds`` (the interpreter start and imports
that every run pays); peak RSS of prepare and of the lexicon fit growing sub-linearly, taken as:
each further 1000 songs between the two largest sizes add at most 2 MB (``rss_growth``; a log-log
exponent below 1 would not do: a fixed base pulls it below 1 even when every song stays in
memory). Extrapolation to the paper's 206,884 songs: the affine fit ``a + b n`` through the two
largest sizes (one size: through the origin for time and disk, flat for RSS), for time, RSS and
disk. Children inherit this process's CPU affinity (run the 2-worker figures on two cores).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import common
import scale_corpora

PAPER_SONGS = 206_884
SEQ_LEN = 1024
MB = 1024 * 1024
RSS_SLOPE_MAX = 2.0  # MB per 1000 songs: 0.4 GB more at the paper's 206,884 songs


def _ints(text: str) -> list[int]:
  values = [int(x) for x in text.split(',') if x.strip()]
  if not values or min(values) < 1:
    raise argparse.ArgumentTypeError(f'expected positive integers separated by commas, got '
                                     f'{text!r}')
  return values


def _args(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--sizes', type=_ints, default=[1000, 10000, 50000], help='corpus sizes (songs)')
  p.add_argument('--workers', type=_ints, default=[1, 2], help='prepare worker counts')
  p.add_argument('--corpora', default=str(common.REPO / 'workdir' / 'scale_corpora'),
                 help='cache folder of the synthetic corpora')
  p.add_argument('--pipeline_seconds', type=float, default=5.0,
                 help='CPU seconds of pipeline timing per size')
  p.add_argument('--reference', type=int, default=1, choices=(0, 1),
                 help='also time the reference lexicon fit (--lexicon_partitions=-1)')
  return p.parse_args(argv)


# Runs the command as its own child and reports that child's ru_maxrss: a process inherits the
# peak RSS of the process it was forked from, so the command must be forked from this small
# interpreter, not from the benchmark (whose pipeline runs make it large).
_WRAPPER = """import os, sys
pid = os.fork()
if pid == 0:
  os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(f'scale_bench max_rss_kb={usage.ru_maxrss} cpu={usage.ru_utime + usage.ru_stime}',
      file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _tree_rss(wrapper) -> int:
  """Bytes of resident memory of the wrapper's descendants (0 once they are gone)."""
  import psutil
  total = 0
  try:
    procs = wrapper.children(recursive=True)
  except psutil.Error:
    return 0
  for p in procs:
    try:
      total += p.memory_info().rss
    except psutil.Error:
      pass
  return total


def run_measured(cmd: list[str]) -> dict:
  """Run ``cmd`` from the repo root; wall seconds, peak RSS (module docstring) and its stderr.

  Raises:
    RuntimeError: the command failed (with the end of its stderr).
  """
  import psutil
  t0 = time.perf_counter()
  proc = subprocess.Popen([sys.executable, '-c', _WRAPPER, *cmd], cwd=common.REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  peak, done = [0], threading.Event()

  def sample():
    wrapper = psutil.Process(proc.pid)
    while not done.is_set():
      peak[0] = max(peak[0], _tree_rss(wrapper))
      done.wait(0.1)
  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  stdout, stderr = proc.communicate()
  seconds = time.perf_counter() - t0
  done.set()
  sampler.join()
  if proc.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}): {stderr[-2000:]}')
  usage = re.search(r'scale_bench max_rss_kb=(\d+) cpu=([0-9.]+)', stderr)
  return {'seconds': seconds, 'cpu_seconds': float(usage.group(2)), 'tree_rss_mb': peak[0] / MB,
          'max_rss_mb': int(usage.group(1)) / 1024, 'stderr': stderr}


def _prepare(corpus: pathlib.Path, out: pathlib.Path, workers: int, lexicon: bool,
             partitions: int = 0) -> dict:
  cmd = [sys.executable, '-m', 'songglm_jax.prepare', f'--source={corpus}', f'--output={out}',
         f'--workers={workers}'] + (['--fit_lexicon', f'--lexicon_partitions={partitions}']
                                    if lexicon else [])
  r = run_measured(cmd)
  report = json.loads((out / 'report.json').read_text())
  fit = re.search(r'lexicon fitted on \d+ songs in ([0-9.]+) s', r.pop('stderr'))
  r.update(songs=report['songs'], files=report['files'])
  if lexicon:
    r['fit_seconds'] = float(fit.group(1)) if fit else None
  return r


def _disk_mb(folder: pathlib.Path) -> float:
  return sum(p.stat().st_size for p in folder.glob('*.array_record')) / MB


def _pipeline(folder: pathlib.Path, seconds: float) -> dict:
  """Examples and packed rows per CPU second of the Grain pre-training pipeline."""
  import numpy as np
  from songglm_jax.data import pipeline
  opts = pipeline.PipelineOptions(seq_len=SEQ_LEN, batch_size=8, chunk_records=256, workers=0,
                                  read_threads=0, seed=0)
  it = iter(pipeline.pretrain_pipeline(folder, opts, process_index=0, process_count=1))
  next(it)
  rows = examples = 0
  t0 = time.process_time()
  while time.process_time() - t0 < seconds or rows < 16:
    seg = next(it)['segment_ids']
    rows += len(seg)
    examples += sum(len(np.unique(r[r > 0])) for r in seg)
  cpu = time.process_time() - t0
  it.close()
  return {'examples_per_s': examples / cpu, 'rows_per_s': rows / cpu, 'rows': rows}


def extrapolate(sizes: list[int], values: list[float], target: int, flat: bool) -> float:
  """``a + b * target`` through the two largest sizes; one size: ``v * target / n`` (``flat``:
  ``v``)."""
  if len(sizes) == 1:
    return values[0] if flat else values[0] * target / sizes[0]
  (n1, v1), (n2, v2) = sorted(zip(sizes, values))[-2:]
  slope = max(0.0, (v2 - v1) / (n2 - n1))
  return v2 + slope * (target - n2)


def _rss_growth(sizes, values) -> dict:
  """How RSS grows: ``mb_per_1000_songs``, the MB added per 1000 songs between the two largest
  sizes (what each further song costs; about 0 when memory does not grow with the corpus), the
  log-log ``exponent`` between them (1 = linear, but a fixed base pulls it below 1 even when
  every song stays in memory) and the ``ratio`` of the largest size's RSS to the smallest's."""
  import math
  pairs = sorted(zip(sizes, values))
  if len(pairs) < 2:
    return {'ratio': 1.0, 'exponent': None, 'mb_per_1000_songs': None}
  (n1, v1), (n2, v2) = pairs[-2:]
  return {'ratio': v2 / pairs[0][1], 'exponent': math.log(v2 / v1) / math.log(n2 / n1),
          'mb_per_1000_songs': 1000 * (v2 - v1) / (n2 - n1)}


def _table(res: dict) -> str:
  lines = ['| songs | workers | prepare s | CPU s | CPU ms/song | tree RSS MB | max proc RSS MB |',
           '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for n, by_w in res['prepare'].items():
    for w, r in by_w.items():
      lines.append(f"| {int(n):,} | {w} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
                   f"{r['cpu_ms_per_song_net']:.2f} | "
                   f"{r['tree_rss_mb']:.0f} | {r['max_rss_mb']:.0f} |")
  lines += ['', '| songs | lexicon fit s | prepare+fit wall / CPU s | fit run tree RSS MB | '
            'pipeline examples/s | rows/s | records MB |',
            '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for n, r in res['lexicon'].items():
    p = res['pipeline'][n]
    fit = f"{r['fit_seconds']:.1f}" if r['fit_seconds'] is not None else '?'
    lines.append(f"| {int(n):,} | {fit} | {r['seconds']:.1f} / {r['cpu_seconds']:.1f} | "
                 f"{r['tree_rss_mb']:.0f} | "
                 f"{p['examples_per_s']:,.0f} | {p['rows_per_s']:.1f} | {res['disk_mb'][n]:.1f} |")
  if res.get('lexicon_reference'):
    lines += ['', '| songs | lexicon fit s, partitioned / reference | max process RSS MB | '
              'added by the fit MB | lexicon.json identical |',
              '| ---: | ---: | ---: | ---: | :-- |']
    for n, r in res['lexicon'].items():
      f = res['lexicon_reference'][n]
      lines.append(f"| {int(n):,} | {r['fit_seconds']} / {f['fit_seconds']} | "
                   f"{r['max_rss_mb']:.0f} / {f['max_rss_mb']:.0f} | "
                   f"{r['fit_extra_rss_mb']:.0f} / {f['fit_extra_rss_mb']:.0f} | "
                   f"{f['identical']} |")
  e = res['extrapolation']
  lines += ['', f"extrapolated to {PAPER_SONGS:,} songs (affine through the two largest sizes): "
            + '; '.join(f"prepare {w} worker(s) {v['seconds'] / 60:.1f} min "
                        f"({v['cpu_seconds'] / 60:.1f} CPU min), "
                        f"{v['tree_rss_mb']:.0f} MB" for w, v in e['prepare'].items())
            + f"; lexicon fit {e['lexicon']['fit_seconds'] / 60:.1f} min, prepare+fit run "
            f"{e['lexicon']['tree_rss_mb']:.0f} MB; records {e['disk_mb'] / 1024:.2f} GB"]
  return '\n'.join(lines)


def main(argv=None):
  args = _args(sys.argv[1:] if argv is None else argv)
  source = common.sample_dir('pretrain', 'scale_bench')
  t_start = time.perf_counter()
  sizes, workers = sorted(set(args.sizes)), sorted(set(args.workers))
  res = {'sizes': sizes, 'workers': workers, 'commit': _commit(), 'corpora': {},
         'prepare': {}, 'lexicon': {}, 'pipeline': {}, 'disk_mb': {},
         'lexicon_reference': {}}
  root = pathlib.Path(args.corpora)
  startup = run_measured([sys.executable, '-c', 'import songglm_jax.prepare'])
  res['startup_cpu_seconds'] = startup['cpu_seconds']  # interpreter start and imports
  from absl import flags
  flags.FLAGS(sys.argv[:1])  # Grain reads absl flags
  for n in sizes:
    folder, note = scale_corpora.corpus(source, root, n)
    res['corpora'][str(n)] = {'path': str(folder), **note}
    print(f"corpus {n}: {'reused' if note['reused'] else 'built'} {folder} "
          f"({note['written']} copies written, {note['seconds']:.1f} s)", flush=True)
    res['prepare'][str(n)] = {}
    with tempfile.TemporaryDirectory(prefix='scale_bench-') as tmp:
      for w in workers:
        r = _prepare(folder, pathlib.Path(tmp) / f'w{w}', w, lexicon=False)
        r['ms_per_song'] = 1e3 * r['seconds'] / n
        r['cpu_ms_per_song_net'] = 1e3 * max(r['cpu_seconds'] - res['startup_cpu_seconds'], 0) / n
        res['prepare'][str(n)][str(w)] = r
        print(f"  prepare {n} songs, {w} worker(s): {r['seconds']:.1f} s, tree RSS "
              f"{r['tree_rss_mb']:.0f} MB, max process {r['max_rss_mb']:.0f} MB", flush=True)
      lex_dir = pathlib.Path(tmp) / 'lexicon'
      r = _prepare(folder, lex_dir, max(workers), lexicon=True)
      base = res['prepare'][str(n)][str(max(workers))]['max_rss_mb']
      res['lexicon'][str(n)] = dict(r, workers=max(workers),
                                    fit_extra_rss_mb=r['max_rss_mb'] - base)
      print(f"  prepare --fit_lexicon: fit {r['fit_seconds']} s, run {r['seconds']:.1f} s, tree "
            f"RSS {r['tree_rss_mb']:.0f} MB, max process {r['max_rss_mb']:.0f} MB", flush=True)
      if args.reference:
        ref_dir = pathlib.Path(tmp) / 'lexicon_reference'
        ref = _prepare(folder, ref_dir, max(workers), lexicon=True, partitions=-1)
        ref.update(workers=max(workers), fit_extra_rss_mb=ref['max_rss_mb'] - base,
                   identical=(ref_dir / 'lexicon.json').read_bytes()
                   == (lex_dir / 'lexicon.json').read_bytes())
        res['lexicon_reference'][str(n)] = ref
        shutil.rmtree(ref_dir)
        print(f"  reference fit: fit {ref['fit_seconds']} s, run {ref['seconds']:.1f} s, tree RSS "
              f"{ref['tree_rss_mb']:.0f} MB, max process {ref['max_rss_mb']:.0f} MB; lexicon.json "
              f"{'identical' if ref['identical'] else 'DIFFERS'}", flush=True)
      res['disk_mb'][str(n)] = _disk_mb(lex_dir)
      res['pipeline'][str(n)] = _pipeline(lex_dir, args.pipeline_seconds)
      print(f"  pipeline {res['pipeline'][str(n)]['examples_per_s']:,.0f} examples/s; records "
            f"{res['disk_mb'][str(n)]:.1f} MB", flush=True)
  res.update(_summary(res, sizes, workers))
  res['bench_seconds'] = time.perf_counter() - t_start
  print(_table(res))
  common.finish('scale_bench', res)


def _summary(res: dict, sizes: list[int], workers: list[int]) -> dict:
  """Targets and the extrapolation to the paper's corpus."""
  small, large = str(sizes[0]), str(sizes[-1])
  ms_ratio = {str(w): res['prepare'][large][str(w)]['cpu_ms_per_song_net']
              / max(res['prepare'][small][str(w)]['cpu_ms_per_song_net'], 1e-9) for w in workers}
  col = lambda rows, key: [rows[str(n)][key] for n in sizes]
  rss = {str(w): _rss_growth(sizes, [res['prepare'][str(n)][str(w)]['tree_rss_mb'] for n in sizes])
         for w in workers}
  lex_rss = _rss_growth(sizes, col(res['lexicon'], 'tree_rss_mb'))
  fits = [res['lexicon'][str(n)]['fit_seconds'] or 0.0 for n in sizes]
  extra = {
      'songs': PAPER_SONGS,
      'prepare': {str(w): {
          'seconds': extrapolate(sizes, [res['prepare'][str(n)][str(w)]['seconds'] for n in sizes],
                                 PAPER_SONGS, flat=False),
          'cpu_seconds': extrapolate(sizes, [res['prepare'][str(n)][str(w)]['cpu_seconds']
                                             for n in sizes], PAPER_SONGS, flat=False),
          'tree_rss_mb': extrapolate(sizes, [res['prepare'][str(n)][str(w)]['tree_rss_mb']
                                             for n in sizes], PAPER_SONGS, flat=True)}
          for w in workers},
      'lexicon': {'fit_seconds': extrapolate(sizes, fits, PAPER_SONGS, flat=False),
                  'seconds': extrapolate(sizes, col(res['lexicon'], 'seconds'), PAPER_SONGS,
                                         flat=False),
                  'tree_rss_mb': extrapolate(sizes, col(res['lexicon'], 'tree_rss_mb'),
                                             PAPER_SONGS, flat=True),
                  **_lexicon_extra(res['lexicon'], sizes)},
      'disk_mb': extrapolate(sizes, [res['disk_mb'][str(n)] for n in sizes], PAPER_SONGS,
                             flat=False)}
  growth = {'prepare': rss, 'lexicon_run': lex_rss,
            'lexicon_fit_extra': _rss_growth(sizes, col(res['lexicon'], 'fit_extra_rss_mb'))}
  out = {}
  ref = res.get('lexicon_reference') or {}
  if all(str(n) in ref for n in sizes):
    growth['lexicon_reference_run'] = _rss_growth(sizes, col(ref, 'tree_rss_mb'))
    growth['lexicon_reference_fit_extra'] = _rss_growth(sizes, col(ref, 'fit_extra_rss_mb'))
    extra['lexicon_reference'] = {
        'fit_seconds': extrapolate(sizes, [ref[str(n)]['fit_seconds'] or 0.0 for n in sizes],
                                   PAPER_SONGS, flat=False),
        'tree_rss_mb': extrapolate(sizes, col(ref, 'tree_rss_mb'), PAPER_SONGS, flat=True),
        **_lexicon_extra(ref, sizes)}
    out['lexicon_identical'] = all(ref[str(n)]['identical'] for n in sizes)
  return {
      **out,
      'ms_per_song_ratio': ms_ratio,
      'rss_growth': growth,
      'targets': {'ms_per_song_ratio_max': 1.5, 'mb_per_1000_songs_max': RSS_SLOPE_MAX,
                  'met_time': all(v <= 1.5 for v in ms_ratio.values()),
                  'met_rss': {'prepare': all(_bounded(g) for g in rss.values()),
                              'lexicon_run': _bounded(lex_rss)}},
      'extrapolation': extra}


def _lexicon_extra(rows: dict, sizes: list[int]) -> dict:
  """Extrapolated peak RSS of the lexicon run's largest process and of what the fit adds."""
  return {key: extrapolate(sizes, [rows[str(n)][key] for n in sizes], PAPER_SONGS, flat=True)
          for key in ('max_rss_mb', 'fit_extra_rss_mb')}


def _bounded(growth: dict) -> bool:
  """RSS grows sub-linearly: each further 1000 songs cost at most RSS_SLOPE_MAX MB."""
  return growth['mb_per_1000_songs'] is None or growth['mb_per_1000_songs'] <= RSS_SLOPE_MAX


def _commit() -> str:
  run = lambda *a: subprocess.run(['git', *a], cwd=common.REPO, capture_output=True,
                                  text=True).stdout.strip()
  head = run('rev-parse', '--short', 'HEAD') or 'unknown'
  return head + ('+dirty' if run('status', '--porcelain', '--untracked-files=no') else '')


if __name__ == '__main__':
  main()
