"""A straightforward implementation of every metric, one song and one pair at a time.

The test oracle and the benchmark's baseline for ``metrics/evaluation.py``: features by Python
loops over notes and syllables, distance sets by a double loop over song pairs, OA with a
Gaussian KDE (``scipy.stats.gaussian_kde``'s density, written out) and ``scipy.integrate.quad``
(as the published metric code does, default tolerances), and MD by a DTW that fills every cell
of the n x m grid. The DTW fills one grid row per step: with ``c`` the row's costs and
``M[j] = min(D[i-1][j], D[i-1][j-1])``, the recurrence ``D[i][j] = c[j] + min(D[i][j-1], M[j])``
unrolls to ``D[i][j] = S[j] + min_{k<=j} (M[k] - S[k-1])`` (``S`` the running sum of ``c``), so a
row is a cumulative sum and a cumulative minimum -- the same cells as the textbook double loop
(:func:`dtw_cells`), at NumPy speed. The lyric metrics' stress and phrase-final flags are the
oracle's own too (``metrics/oracle_lyric.py``), not the stress and phrases modules under test.
"""

from __future__ import annotations

import math
import statistics
import warnings
from typing import Mapping, Sequence

import numpy as np
from scipy import integrate

from songglm_jax.music.song import Song

DURATION_CLASSES = sorted({30 * k for k in range(1, 65)} | {40, 80, 160, 320, 640})
FEATURES = ('A', 'PCH', 'IOI', 'DD')


# ---- features, one song at a time -------------------------------------------------------------
def alignment_histogram(song: Song) -> list[float]:
  counts = {}
  for s in song.note_syllable.tolist():
    counts[s] = counts.get(s, 0) + 1
  hist = [0.0] * 6
  for notes in counts.values():
    hist[min(notes, 6) - 1] += 1
  return hist


def pitch_class_histogram(song: Song) -> list[float]:
  hist = [0.0] * 12
  for p in song.pitch.tolist():
    hist[p % 12] += 1
  return [h / song.num_notes for h in hist]


def mean_ioi(song: Song) -> float:
  onsets = sorted(song.onset.tolist())
  if len(onsets) < 2:
    return 0.0
  return sum(b - a for a, b in zip(onsets, onsets[1:])) / (len(onsets) - 1)


def duration_histogram(song: Song) -> list[float]:
  index = {d: k for k, d in enumerate(DURATION_CLASSES)}
  hist = [0.0] * len(DURATION_CLASSES)
  for on, off in zip(song.onset.tolist(), song.offset.tolist()):
    if off - on in index:
      hist[index[off - on]] += 1
  return [h / song.num_notes for h in hist]


def song_features(song: Song) -> dict[str, list[float]]:
  return {'A': alignment_histogram(song), 'PCH': pitch_class_histogram(song),
          'IOI': [mean_ioi(song)], 'DD': duration_histogram(song)}


def md_series(song: Song) -> np.ndarray:
  series = []
  for p, on, off in zip(song.pitch.tolist(), song.onset.tolist(), song.offset.tolist()):
    series.extend([p] * ((off - on) // 10))
  series = np.array(series, dtype=np.float64)
  return series - series.mean() if len(series) else series


# ---- set metrics ------------------------------------------------------------------------------
def distance_sets(generated: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]):
  intra, inter = [], []
  for g in generated:
    for h in generated:
      intra.append(float(np.linalg.norm(np.subtract(g, h))))
    for r in reference:
      inter.append(float(np.linalg.norm(np.subtract(g, r))))
  return np.array(intra), np.array(inter)


def gaussian_kde(data: np.ndarray):
  """The density of ``scipy.stats.gaussian_kde(data)`` in 1-D, written out: Gaussian kernels
  with standard deviation ``std(data, ddof=1) * n ** (-1/5)`` (Scott's factor)."""
  data = np.asarray(data, dtype=np.float64)
  h = float(np.std(data, ddof=1)) * len(data) ** (-0.2)
  norm = 1.0 / (len(data) * h * math.sqrt(2 * math.pi))
  return lambda x: float(np.exp(-0.5 * ((x - data) / h) ** 2).sum() * norm)


def overlap_area(intra: np.ndarray, inter: np.ndarray) -> float:
  """OA by the two KDEs and adaptive quadrature of their minimum (NaN when a KDE cannot be
  fitted), as the published metric code does with ``gaussian_kde`` and ``quad``."""
  if np.ptp(intra) == 0 or np.ptp(inter) == 0:
    return float('nan')
  pdf_a, pdf_b = gaussian_kde(intra), gaussian_kde(inter)
  lo, hi = min(intra.min(), inter.min()), max(intra.max(), inter.max())
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', integrate.IntegrationWarning)
    return float(integrate.quad(lambda x: min(pdf_a(x), pdf_b(x)), lo, hi)[0])


def dtw(x: np.ndarray, y: np.ndarray) -> float:
  """DTW with |x_i - y_j| point cost, every cell of the grid (see the module docstring)."""
  prev = np.full(len(y) + 1, np.inf)  # prev[j + 1] = D[i - 1][j]; prev[0] is column -1
  prev[0] = 0.0  # the virtual cell before (0, 0)
  for xi in x:
    cost = np.abs(xi - y)
    run = np.cumsum(cost)
    best_above = np.minimum(prev[1:], prev[:-1])
    row = run + np.minimum.accumulate(best_above - np.concatenate([[0.0], run[:-1]]))
    prev = np.concatenate([[np.inf], row])
  return float(prev[-1])


def dtw_cells(x: Sequence[float], y: Sequence[float]) -> float:
  """The textbook double loop (for checking :func:`dtw` on small inputs)."""
  n, m = len(x), len(y)
  d = [[math.inf] * (m + 1) for _ in range(n + 1)]
  d[0][0] = 0.0
  for i in range(1, n + 1):
    for j in range(1, m + 1):
      d[i][j] = abs(x[i - 1] - y[j - 1]) + min(d[i - 1][j], d[i][j - 1], d[i - 1][j - 1])
  return d[n][m]


# ---- lyric metrics, one syllable at a time ------------------------------------------------------
def _strong(song: Song, tick: int) -> bool:
  row = [r for r in song.time_signatures.tolist() if r[0] <= tick][-1]
  start, num, den = row
  bar = num * 1920 // den
  pos = (tick - start) % bar
  return pos == 0 or (num == 4 and den == 4 and pos == 2 * (1920 // den))


def _fraction(hits: int, total: int) -> float:
  return hits / total if total else float('nan')


def lyric_values(song: Song, primary: Sequence[bool], final: Sequence[bool]) -> dict:
  """SBA, SPA, PEA of one song from explicit primary-stress and phrase-final flags."""
  notes = {}
  for k, s in enumerate(song.note_syllable.tolist()):
    notes.setdefault(s, []).append(k)
  pitch = song.pitch.tolist()
  peak = [0 < i < len(pitch) - 1 and pitch[i] > pitch[i - 1] and pitch[i] >= pitch[i + 1]
          for i in range(len(pitch))]
  sba = spa = stressed = pea = finals = 0
  for s in range(song.num_syllables):
    if primary[s]:
      stressed += 1
      sba += _strong(song, int(song.onset[notes[s][0]]))
      spa += any(peak[k] for k in notes[s])
    if final[s]:
      finals += 1
      k = notes[s][-1]
      rest = math.inf if k == song.num_notes - 1 else song.onset[k + 1] - song.offset[k]
      pea += rest >= 240 or song.offset[k] - song.onset[k] >= 480
  return {'SBA': _fraction(sba, stressed), 'SPA': _fraction(spa, stressed),
          'PEA': _fraction(pea, finals)}


def lyric_pair(generated: Song, reference: Song) -> dict:
  """AA and the lyric metrics of one pair; the stress and phrase flags are the oracle's own
  (``metrics/oracle_lyric.py``), not those of the code under test."""
  from songglm_jax.metrics import oracle_lyric  # pylint: disable=import-outside-toplevel
  out = {'AA': math.nan, 'AA_notes_abs_diff': math.nan}
  aligned = generated.syllables == reference.syllables
  if aligned:
    g = [0] * generated.num_syllables
    r = [0] * reference.num_syllables
    for s in generated.note_syllable.tolist():
      g[s] += 1
    for s in reference.note_syllable.tolist():
      r[s] += 1
    out['AA'] = sum(a == b for a, b in zip(g, r)) / len(g)
    out['AA_notes_abs_diff'] = sum(abs(a - b) for a, b in zip(g, r)) / len(g)
  ref_primary = oracle_lyric.primary_stress(reference)
  ref_final = oracle_lyric.phrase_final(reference)
  gen_primary = ref_primary if aligned else oracle_lyric.primary_stress(generated)
  gen_final = ref_final if aligned else oracle_lyric.phrase_final(generated)
  for side, song, p, f in (('generated', generated, gen_primary, gen_final),
                           ('reference', reference, ref_primary, ref_final)):
    for key, v in lyric_values(song, p, f).items():
      out[f'{key}_{side}'] = v
  return out


# ---- everything ---------------------------------------------------------------------------------
def evaluate_sets(sample_sets: Sequence[tuple[str, Mapping[str, Song]]],
                  reference: Mapping[str, Song]) -> dict:
  """The summary values of ``evaluation.evaluate_sets``, computed the straightforward way:
  ``{key: mean over sets, key_std: std}`` and ``per_sample`` (each set's values). The std is
  ``statistics.stdev`` (the sample std, as the public metric script reports), 0.0 for one set."""
  per_sample = []
  for name, generated in sample_sets:
    names = sorted(set(generated) & set(reference))
    if not names:
      continue
    gen = [generated[n] for n in names]
    ref = [reference[n] for n in names]
    gf = [song_features(s) for s in gen]
    rf = [song_features(s) for s in ref]
    entry = {'name': name}
    for feat in FEATURES:
      intra, inter = distance_sets([f[feat] for f in gf], [f[feat] for f in rf])
      entry[f'OA_{feat}'] = overlap_area(intra, inter)
    mds = []
    for g, r in zip(gen, ref):
      x, y = md_series(r), md_series(g)
      mds.append(dtw(x, y) / len(y) if len(x) and len(y) else math.nan)
    entry['MD'] = float(np.nanmean(mds)) if not all(math.isnan(v) for v in mds) else math.nan
    pairs = [lyric_pair(g, r) for g, r in zip(gen, ref)]
    for key in pairs[0]:
      vals = [p[key] for p in pairs if not math.isnan(p[key])]
      entry[key] = sum(vals) / len(vals) if vals else math.nan
    for key in ('SBA', 'SPA', 'PEA'):
      entry[f'{key}_diff'] = entry[f'{key}_generated'] - entry[f'{key}_reference']
    per_sample.append(entry)
  result = {'per_sample': per_sample}
  for key in per_sample[0] if per_sample else ():
    if key == 'name':
      continue
    vals = [e[key] for e in per_sample if not math.isnan(e[key])]
    result[key] = float(np.mean(vals)) if vals else math.nan
    if vals:
      result[f'{key}_std'] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    else:
      result[f'{key}_std'] = math.nan
  return result
