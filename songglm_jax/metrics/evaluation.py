"""Sample sets against a reference set: every metric, assembled as ``result.json``.

:func:`evaluate_sets` works on songs in memory (what the training program calls);
:func:`evaluate_dirs` finds, reads and pairs song files first (``metrics/files.py``), then calls
it. Each sample set is evaluated on its own; the summary gives, for each metric, the mean and the
*sample* standard deviation (``ddof=1``, as the public SongGLM metric script's
``statistics.stdev`` and papers report it; :func:`set_std`) over the sample sets where it is
defined -- 0.0 when that is one set (no spread can be measured; ``statistics.stdev`` refuses one
value). Until issue 16 it was the population standard deviation (``ddof=0``, smaller by
``sqrt((n-1)/n)``); ``std_ddof`` in the result says which.

Which songs enter a set's metrics: its *pairs*, the generated songs that have a reference song
of the same name, and those reference songs (so ``R`` in OA is the references of the pairs).
Reference songs without a generated song, and generated songs without a reference, are listed.

Result keys (values NaN -- ``null`` in the file -- with a reason in ``nan_reasons`` when
undefined): ``OA_A``, ``OA_PCH``, ``OA_IOI``, ``OA_DD`` (fractions in [0, 1]; the paper prints
percentages), ``MD``, the lyric metrics of ``metrics/lyric.py`` (``AA``, ``AA_notes_abs_diff``,
``SBA_generated``, ``SBA_reference``, ``SBA_diff``, and the same for SPA and PEA), each with a
``<key>_std`` (the sample std over sets; ``std_ddof``: 1); ``num_pairs`` (pairs over all sets),
``num_sample_sets``, ``per_sample`` (each set's values, its OA integration error bounds,
unpaired names, misaligned pairs and per-pair values), ``oa_error_bound`` (the largest certified OA integration error), ``md_error_bound``.
:func:`evaluate_dirs` adds ``missing_generated`` (each set's reference songs without a readable
generated song, with the reason: 'no file' or the skip reason of the file) and, when that is not
empty, ``warning`` (one line saying how many are missing: the metrics then cover fewer songs).
"""

from __future__ import annotations

import collections
import math
import multiprocessing
import multiprocessing.pool
import os
import pathlib
from typing import Mapping, Optional, Sequence

import numpy as np

from songglm_jax.metrics import distance, features, files, lyric, overlap, report
# json_ready lives with the writer (report.py); callers also use it as evaluation.json_ready.
from songglm_jax.metrics.report import json_ready  # noqa: F401
from songglm_jax.music.song import Song

OA_KEYS = tuple(f'OA_{k}' for k in features.FEATURES)
LYRIC_KEYS = lyric.KEYS + ('SBA_diff', 'SPA_diff', 'PEA_diff')
SUMMARY_KEYS = OA_KEYS + ('MD',) + LYRIC_KEYS
STD_DDOF = 1  # <key>_std is the sample standard deviation over the sample sets
READ_WORKERS_MIN_FILES = 200  # below this, a process pool costs more than it saves


def evaluate_sets(sample_sets: Sequence[tuple[str, Mapping[str, Song]]],
                  reference: Mapping[str, Song], *, workers: int = 1,
                  pool: Optional[multiprocessing.pool.Pool] = None) -> dict:
  """Evaluate sample sets of songs against reference songs, pairing by name.

  Args:
    sample_sets: ``[(set name, {song name: Song})]``, one entry per sample set.
    reference: ``{song name: Song}``.
    workers: processes for the DTW when no ``pool`` is given (1 = this process).
    pool: a process pool to run the DTW batches in, while OA and the lyric metrics are computed
      here.

  Returns:
    The result dict described in the module docstring (NaN where undefined).

  Raises:
    ValueError: no generated song in any set has a reference song of the same name.
  """
  ref_names = sorted(reference)
  ref_index = {n: i for i, n in enumerate(ref_names)}
  ref_songs = [reference[n] for n in ref_names]
  ref_feats = features.feature_matrices(ref_songs)
  ref_runs = [features.md_runs(s) for s in ref_songs]
  ref_lyrics: dict[str, lyric.ReferenceLyrics] = {}

  # Pair the sets; start the DTW of every pair of every set first (in the pool, when there is
  # one), then compute OA and the lyric metrics here while it runs.
  paired = []
  md_ref, md_gen = [], []
  for set_name, generated in sample_sets:
    names = sorted(set(generated) & set(reference))
    paired.append((set_name, generated, names))
    for n in names:
      md_ref.append(ref_runs[ref_index[n]])
      md_gen.append(features.md_runs(generated[n]))
  if not md_ref:
    gen_names = sorted({n for _, g in sample_sets for n in g})
    raise ValueError('no generated song has a reference song of the same name (generated: '
                     f'{_some(gen_names)}; reference: {_some(ref_names)})')
  pending = distance.start_melody_distances(md_ref, md_gen, workers=workers, pool=pool)

  per_sample = []
  for set_name, generated, names in paired:
    entry = {'name': set_name, 'num_pairs': len(names),
             'unpaired_generated': sorted(set(generated) - set(reference)),
             'unpaired_reference': sorted(set(reference) - set(generated)), 'nan_reasons': {}}
    per_sample.append(entry)
    if not names:
      entry['nan_reasons']['all'] = 'no generated song has a reference song of the same name'
      for key in SUMMARY_KEYS:
        entry[key] = float('nan')
      continue
    gen_songs = [generated[n] for n in names]
    rows = np.array([ref_index[n] for n in names])
    gen_feats = features.feature_matrices(gen_songs)
    entry['oa_error_bound'] = {}
    for feat in features.FEATURES:
      intra, inter = overlap.distance_sets(gen_feats[feat], ref_feats[feat][rows])
      res = overlap.overlap_area(intra, inter)
      entry[f'OA_{feat}'] = res.value
      entry['oa_error_bound'][f'OA_{feat}'] = res.error_bound
      if res.reason:
        entry['nan_reasons'][f'OA_{feat}'] = res.reason
    pairs = []
    for n, g in zip(names, gen_songs):
      if n not in ref_lyrics:
        ref_lyrics[n] = lyric.reference_lyrics(reference[n])
      pairs.append(lyric.pair_metrics(g, reference[n], ref_lyrics[n]))
    entry.update(lyric.set_means(pairs))
    entry['misaligned'] = lyric.misaligned(pairs, names)
    entry['pairs'] = [{'name': n, **p.as_dict()} for n, p in zip(names, pairs)]

  md = pending.get()
  start = 0
  for entry in per_sample:
    count = entry['num_pairs']
    if not count:
      continue
    values = md.values[start:start + count]
    reasons = md.reasons[start:start + count]
    entry['md_error_bound'] = float(np.max(md.error_bounds[start:start + count]))
    for pair, v, why in zip(entry['pairs'], values, reasons):
      pair['MD'] = float(v)
      if why:
        pair['MD_reason'] = why
    ok = ~np.isnan(values)
    entry['MD'] = float(values[ok].mean()) if ok.any() else float('nan')
    if not ok.all():
      entry['nan_reasons']['MD_pairs'] = f'{int((~ok).sum())} pair(s) without MD: ' + '; '.join(
          sorted({w for w in reasons if w}))
    start += count
  return _summary(per_sample, sum(e['num_pairs'] for e in per_sample))


def _some(names: Sequence[str], k: int = 5) -> str:
  if not names:
    return 'none'
  return ', '.join(names[:k]) + (f', ... ({len(names)} in all)' if len(names) > k else '')


def set_std(values: Sequence[float]) -> float:
  """The sample standard deviation (``ddof=1``) of a metric's values over sample sets (NaN
  values left out by the caller); 0.0 for a single value, NaN for none."""
  values = np.asarray(values, dtype=np.float64)
  if len(values) < 2:
    return 0.0 if len(values) else float('nan')
  return float(values.std(ddof=STD_DDOF))


def _summary(per_sample: list[dict], total: int) -> dict:
  result: dict = {'num_pairs': total, 'num_sample_sets': len(per_sample), 'nan_reasons': {},
                  'std_ddof': STD_DDOF}
  for key in SUMMARY_KEYS:
    vals = np.array([e.get(key, float('nan')) for e in per_sample], dtype=np.float64)
    ok = ~np.isnan(vals)
    if ok.any():
      result[key] = float(vals[ok].mean())
      result[f'{key}_std'] = set_std(vals[ok])
      if not ok.all():
        result['nan_reasons'][key] = f'defined in {int(ok.sum())} of {len(vals)} sample sets'
    else:
      result[key] = result[f'{key}_std'] = float('nan')
      why = sorted({e['nan_reasons'].get(key) or e['nan_reasons'].get('all') or
                    'undefined for every pair' for e in per_sample})
      result['nan_reasons'][key] = '; '.join(why)
  bounds = [b for e in per_sample for b in e.get('oa_error_bound', {}).values()
            if not math.isnan(b)]
  result['oa_error_bound'] = max(bounds) if bounds else float('nan')
  result['md_error_bound'] = max([e.get('md_error_bound', 0.0) for e in per_sample] + [0.0])
  result['misaligned_pairs'] = sum(len(e.get('misaligned', [])) for e in per_sample)
  result['per_sample'] = per_sample
  return result


def _missing_generated(per_sample: list[dict], gen: list[tuple[str, files.ReadResult]]
                       ) -> list[dict]:
  """Each (sample set, reference song) without a generated song: ``{'set', 'name', 'reason'}``
  with the skip reason of the set's file of that name when there was one, else 'no file'."""
  out = []
  for entry, (_, read) in zip(per_sample, gen):
    skipped = {pathlib.PurePath(f['file']).stem: f['reason'] for f in read.skipped}
    out.extend({'set': entry['name'], 'name': n, 'reason': skipped.get(n, 'no file')}
               for n in entry['unpaired_reference'])
  return out


def incomplete_text(result: Mapping) -> str:
  """One line on the generated songs missing from a result (``missing_generated``)."""
  missing = result.get('missing_generated') or []
  expected = result.get('num_pairs', 0) + len(missing)
  shown = '; '.join(f'{m["set"]}/{m["name"]}: {m["reason"]}' for m in missing[:5])
  more = f'; ... ({len(missing)} in all)' if len(missing) > 5 else ''
  return (f'{len(missing)} of {expected} generated songs are missing or unreadable ({shown}{more});'
          f' the metrics cover only the {result.get("num_pairs", 0)} pairs found')


def evaluate_dirs(generated: str | os.PathLike, reference: str | os.PathLike, *,
                  workers: int = 1, plots: Optional[str | os.PathLike] = None,
                  strict: bool = False) -> dict:
  """Read, pair and evaluate song files (see ``metrics/files.py`` for the folder layout).

  Args:
    generated: a folder of songs, or of ``sample_K/`` folders of songs.
    reference: a folder of reference songs.
    workers: processes for reading files and for the DTW (1 = this process).
    plots: if given, a folder for PNGs comparing generated and reference distributions.
    strict: a reference song without a readable generated song in some set is an error.

  Returns:
    The result dict (NaN for undefined values; :func:`json_ready` before writing JSON).

  Raises:
    ValueError: a folder does not exist, no pair at all, or (``strict``) a generated song
      missing (before any plot is written).
  """
  ref_root = pathlib.Path(reference)
  if not ref_root.is_dir():
    raise ValueError(f'--reference: not a folder: {ref_root}')
  gen_root = pathlib.Path(generated)
  sets, ignored = files.sample_sets(gen_root)
  paths = files.files_to_read(ref_root, sets)
  pool = None
  try:
    if workers > 1:
      pool = multiprocessing.get_context('spawn').Pool(workers)
    if pool is not None and len(paths) >= READ_WORKERS_MIN_FILES:
      chunk = max(1, min(64, len(paths) // (workers * 4)))
      read = list(pool.imap(files.read_one, paths, chunksize=chunk))
    else:
      read = [files.read_one(p) for p in paths]
    results = {path: (song, reason, detail) for path, song, reason, detail in read}
    ref = files.read_folder(ref_root, results, ref_root)
    gen = [(name, files.read_folder(folder, results, gen_root)) for name, folder in sets]
    result = evaluate_sets([(name, r.songs) for name, r in gen], ref.songs, workers=workers,
                           pool=pool)
  finally:
    if pool is not None:
      pool.close()
      pool.join()
  skipped = ([dict(f, file=f'reference/{f["file"]}') for f in ref.skipped] +
             [dict(f, file=f'generated/{f["file"]}') for _, r in gen for f in r.skipped])
  result['skipped'] = dict(sorted(collections.Counter(f['reason'] for f in skipped).items()))
  result['skipped_files'] = skipped
  result['ignored_files'] = ignored
  result['unpaired'] = {
      'generated': sorted({f'{e["name"]}/{n}' for e in result['per_sample']
                           for n in e['unpaired_generated']}),
      'reference': sorted({n for e in result['per_sample'] for n in e['unpaired_reference']})}
  result['missing_generated'] = _missing_generated(result['per_sample'], gen)
  if result['missing_generated']:
    result['warning'] = incomplete_text(result)
    if strict:
      raise ValueError(f'--strict: {result["warning"]}; nothing written')
  result['generated'] = str(gen_root)
  result['reference'] = str(ref_root)
  if plots:
    report.write_plots(plots, [r.songs for _, r in gen], ref.songs)
  return result
