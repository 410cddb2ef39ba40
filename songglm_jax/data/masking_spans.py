"""The span objectives, vectorized over many examples: which notes each example masks.

Every function takes per-example arrays of length M (one entry per example) and returns a bool
array over the examples' notes in flat order (example 0's N_0 notes, then example 1's, ...).
Random numbers come from ``masking_random.uniforms(key, stream, counter)`` so that the plain-loop
reference (``masking_reference.py``) draws the very same numbers. No Python loop runs over notes;
the n-gram selection loops over candidate ranks (vectorized over all examples at each rank).
"""

from __future__ import annotations

import numpy as np

from songglm_jax.data import masking_random as rnd
from songglm_jax.data.record_batch import concat_ranges


def round_half_up(x) -> np.ndarray:
  """``x`` rounded to the nearest integer, halves up (not to even): int64."""
  return np.floor(np.asarray(x, np.float64) + 0.5 + 1e-9).astype(np.int64)


def notes_needed(rate: float, num_notes) -> np.ndarray:
  """Smallest note count that covers ``rate`` of ``num_notes`` (at least 1): int64."""
  return np.maximum(1, np.ceil(rate * np.asarray(num_notes, np.float64) - 1e-9)).astype(np.int64)


def _group_starts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(start [M + 1], example of each item, index of each item inside its example)."""
  counts = np.asarray(counts, np.int64)
  start = np.concatenate([[0], np.cumsum(counts)])
  ex = np.repeat(np.arange(len(counts)), counts)
  return start, ex, np.arange(int(start[-1])) - start[ex]


def _rank_in_group(u: np.ndarray, ex: np.ndarray, start: np.ndarray) -> np.ndarray:
  """Rank of each item by ``u`` among the items of its example (ties: lower index first)."""
  order = np.lexsort((u, ex))
  rank = np.empty(len(u), np.int64)
  rank[order] = np.arange(len(u)) - start[ex]
  return rank


def song_mask(num_notes: np.ndarray, keys: np.ndarray, rate: float) -> np.ndarray:
  """One span of ``clip(round(rate * N), 1, N)`` notes at a uniform offset in ``[0, N - c]``."""
  n = np.asarray(num_notes, np.int64)
  c = np.clip(round_half_up(rate * n), 1, n)
  offset = np.floor(rnd.uniforms(keys, rnd.STREAM_SONG, 0) * (n - c + 1)).astype(np.int64)
  _, ex, j = _group_starts(n)
  return (j >= offset[ex]) & (j < offset[ex] + c[ex])


def phrase_mask(note_phrase: np.ndarray, num_notes: np.ndarray, num_phrases: np.ndarray,
                keys: np.ndarray, rate: float) -> np.ndarray:
  """Whole phrases in random order until they cover ``notes_needed(rate, N)`` notes.

  ``note_phrase``: phrase index (0..P-1 inside its example) of every note, flat.
  """
  n = np.asarray(num_notes, np.int64)
  p = np.asarray(num_phrases, np.int64)
  _, note_ex, _ = _group_starts(n)
  if np.any((note_phrase < 0) | (note_phrase >= p[note_ex])):
    raise ValueError('phrase_mask: a note has a phrase id outside 0..P-1 of its record')
  ph_start, ph_ex, pid = _group_starts(p)
  global_phrase = ph_start[note_ex] + note_phrase
  counts = np.bincount(global_phrase, minlength=int(ph_start[-1]))
  u = rnd.uniforms(keys[ph_ex], rnd.STREAM_PHRASE, pid)
  order = np.lexsort((u, ph_ex))
  cnt = counts[order]
  before = np.cumsum(cnt) - cnt  # notes drawn before this phrase, from the batch start
  before = before - before[ph_start[ph_ex]]  # ... from its example's start (groups are kept)
  chosen = np.empty(len(cnt), bool)
  chosen[order] = before < notes_needed(rate, n)[ph_ex]
  return chosen[global_phrase]


def random_spans_mask(num_notes: np.ndarray, keys: np.ndarray, rate: float,
                      mean_span_length: float) -> np.ndarray:
  """T5-style random spans: exactly ``clip(round(rate * N), 1, N)`` masked notes.

  The masked notes are cut into ``k = clip(round(noise / mean), 1, min(noise, N - noise + 1))``
  spans by choosing ``k - 1`` cut points uniformly among the ``noise - 1`` gaps; the unmasked
  notes are spread into the ``k + 1`` gaps around the spans, the ``k - 1`` inner ones non-empty
  (stars and bars: the k spans take k of ``N - noise + 1`` slots uniformly). Unlike T5 the
  first and last gap may be empty, so a span can touch either end of the melody.
  """
  n = np.asarray(num_notes, np.int64)
  noise = np.clip(round_half_up(rate * n), 1, n)
  k = np.clip(round_half_up(noise / mean_span_length), 1, np.minimum(noise, n - noise + 1))
  # Cut points: slots q = 1 .. noise - 1 (a new span starts at noise item q).
  cut_start, cut_ex, cut_j = _group_starts(noise - 1)
  u = rnd.uniforms(keys[cut_ex], rnd.STREAM_T5_CUTS, cut_j + 1)
  is_cut = _rank_in_group(u, cut_ex, cut_start) < (k - 1)[cut_ex]
  # Span positions: k bars among R + k slots, R = N - noise - (k - 1) spare unmasked notes.
  slots = n - noise - (k - 1) + k
  gap_start, gap_ex, gap_j = _group_starts(slots)
  u = rnd.uniforms(keys[gap_ex], rnd.STREAM_T5_GAPS, gap_j)
  bar = _rank_in_group(u, gap_ex, gap_start) < k[gap_ex]
  p = gap_j[bar]  # slot of span j of each example, in (example, j) order
  # Noise items: q = 0 .. noise - 1; span of item q = number of cuts at or before q.
  _, nz_ex, q = _group_starts(noise)
  new_span = q == 0
  new_span[q > 0] = is_cut[cut_start[nz_ex[q > 0]] + q[q > 0] - 1]
  span = np.cumsum(new_span) - 1  # global span index, grouped by example
  note_start = np.concatenate([[0], np.cumsum(n)])
  masked = np.zeros(int(note_start[-1]), bool)
  masked[note_start[nz_ex] + q + p[span]] = True
  return masked


def ngram_mask(num_notes: np.ndarray, candidates: np.ndarray, num_candidates: np.ndarray,
               keys: np.ndarray, rate: float, mean_span_length: float) -> np.ndarray:
  """Harmonized n-grams in random order, skipping overlaps, until ``notes_needed(rate, N)``.

  ``candidates``: int [K, 2] note spans [start, end), grouped by example (``num_candidates``
  each). An example whose candidates cannot reach the need takes :func:`random_spans_mask`.
  """
  n = np.asarray(num_notes, np.int64)
  m = len(n)
  need = notes_needed(rate, n)
  note_start = np.concatenate([[0], np.cumsum(n)])
  masked = np.zeros(int(note_start[-1]), bool)
  covered = np.zeros(m, np.int64)
  kc = np.asarray(num_candidates, np.int64)
  if kc.sum():
    c_start, c_ex, c_j = _group_starts(kc)
    u = rnd.uniforms(keys[c_ex], rnd.STREAM_NGRAM, c_j)
    order = np.lexsort((u, c_ex))
    kmax = int(kc.max())
    starts = np.zeros((m, kmax), np.int64)
    ends = np.zeros((m, kmax), np.int64)
    starts[c_ex, c_j] = candidates[order, 0]  # c_ex / c_j of the sorted positions: grouped
    ends[c_ex, c_j] = candidates[order, 1]
    lmax = int((candidates[:, 1] - candidates[:, 0]).max())
    steps = np.arange(lmax)
    for r in range(kmax):
      rows = np.flatnonzero((kc > r) & (covered < need))
      if len(rows) == 0:
        break
      s, e = starts[rows, r], ends[rows, r]
      length = e - s
      inside = steps[None, :] < length[:, None]
      idx = np.where(inside, note_start[rows, None] + s[:, None] + steps[None, :], 0)
      ok = ~np.any(masked[idx] & inside, axis=1)
      masked[idx[ok][inside[ok]]] = True
      covered[rows[ok]] += length[ok]
  short = np.flatnonzero(covered < need)
  if len(short):
    notes = concat_ranges(note_start[short], n[short])
    masked[notes] = random_spans_mask(n[short], keys[short], rate, mean_span_length)
  return masked
