"""Scores of the harmonized n-gram lexicon, vectorized over a flattened corpus.

For every length n = 1..N and every note n-gram g (a run of n syllables' note-feature groups)
this computes, over the n-gram windows that are counted (see ``unknown_stress`` below):

- ``p(g) = count(g) / T_n`` with ``T_n`` the number of counted windows of length n;
- ``t(g) = (p(g) - prod_i p(u_i)) / sqrt(p(g) (1 - p(g)) / T_n)`` where ``u_i`` are g's units
  (single-syllable groups) and ``p(u) = count(u) / T_1``; ``t = 0`` for n = 1. When
  ``p(g) = 1`` (g is the only n-gram of its length, so its rank is 1 whatever its score) the
  variance is 0 and ``t := 0``: no evidence either way.
- lyric n-grams (runs of stress patterns over the same windows) get their own t the same way;
- ``c(g) = 1 - H / log2(k)`` with H the base-2 entropy of the distribution of the k distinct
  lyric n-grams co-occurring with g (``c = 1`` when k = 1), clipped to [0, 1] against rounding;
- ``s(g) = 0.5 t(g) + 0.5 c(g) m(g)`` with ``m(g)`` the mean lyric t over the lyric n-grams
  co-occurring with g: ``lyric_mean='distinct'`` (default) averages over the k distinct lyric
  n-grams, each once -- the issue's "mean over the lyric n-grams" and what the public SongGLM code
  does; ``'weighted'`` weights each by its co-occurrence count (the expected lyric t of one
  occurrence of g, less sensitive to one-off lyric n-grams).
- rank: within each length, n-grams sorted by s (high first), ties by count (high first), then by
  the n-gram itself (lexicographic order of its feature groups -- a property of the n-gram, never
  of file order); ``rank = position / G_n`` with position 1-based and G_n the number of distinct
  n-grams of length n, so ranks lie in (0, 1].
- the "collapsed" score of the public code, for comparison: its independence term is always 0,
  so ``t = sqrt(T_n p / (1 - p))`` (0 for n = 1 or p = 1), for note and lyric n-grams alike.

``unknown_stress``: a syllable whose stress pattern contains '?' has no lyric feature.
``'skip'`` (default) leaves every window that contains such a syllable out of all counts (note
and lyric n-grams, T_n and the unit probabilities): an unknown pattern is missing data, and
counting '?' as a pattern would reward n-grams for dictionary gaps. ``'keep'`` treats '?' as one
more pattern. Either way the windows are still matched when spans are extracted (spans depend on
the melody only), and n-grams that occur only in skipped windows get no score.

Floating-point sums run over arrays in a canonical order (sorted ids), so scores are bit-identical
whatever the order of the input songs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from songglm_jax.data import lexicon_ngrams

LYRIC_MEANS = ('distinct', 'weighted')
UNKNOWN_STRESS = ('skip', 'keep')
SCORES = ('faithful', 'collapsed')


@dataclasses.dataclass(frozen=True, eq=False)
class LengthTable:
  """Scores of the distinct note n-grams of one length, arrays ``[G]`` (``[P]`` for pairs).

  ``ids`` are n-gram ids in the space of :func:`lexicon_ngrams.ngram_ids` (sorted); ``first`` /
  ``second`` the starts of the first two counted windows holding each n-gram (-1: none);
  ``pair_*`` the distinct (note n-gram, lyric n-gram) pairs sorted by note n-gram, with a window
  holding each (``pair_window``) and ``pair_offset[G + 1]`` delimiting each n-gram's pairs.
  ``position[score]`` is each n-gram's 0-based place in the ranking by that score.
  """
  n: int
  total: int
  ids: np.ndarray
  count: np.ndarray
  t: dict
  c: np.ndarray
  lyric_t: dict
  s: dict
  position: dict
  first: np.ndarray
  second: np.ndarray
  pair_offset: np.ndarray
  pair_count: np.ndarray
  pair_window: np.ndarray

  @property
  def size(self) -> int:
    return len(self.ids)

  def rank(self, score: str) -> np.ndarray:
    return (self.position[score] + 1) / max(self.size, 1)

  def num_selected(self, max_rank: float) -> int:
    """How many n-grams have rank <= max_rank (a tiny tolerance absorbs float rounding)."""
    return int(np.floor(max_rank * self.size + 1e-9))


def _t_scores(p: np.ndarray, independent: np.ndarray, total: int, n: int) -> dict:
  zero = np.zeros_like(p)
  if n == 1:
    return {'faithful': zero, 'collapsed': zero.copy()}
  inner = p < 1
  q = np.where(inner, p, 0.5)  # placeholder where p = 1 (the result is 0 there)
  faithful = np.where(inner, (q - independent) / np.sqrt(q * (1 - q) / total), 0.0)
  collapsed = np.where(inner, np.sqrt(total * q / (1 - q)), 0.0)
  return {'faithful': faithful, 'collapsed': collapsed}


def concentration(pg: np.ndarray, p_count: np.ndarray, count: np.ndarray, size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """``(k, c)`` [size]: for each melodic n-gram, the number of distinct lyric n-grams it is sung
  on and its concentration over them, 1 - H / log2(k) (1 when k is 1), from the (n-gram ``pg``,
  lyric n-gram) pairs and their counts ``p_count``; ``count``: each n-gram's count."""
  k = np.bincount(pg, minlength=size)
  q = p_count / count[pg]
  entropy = -np.bincount(pg, weights=q * np.log2(q), minlength=size)
  c = np.ones(size)
  many = k > 1
  c[many] = np.clip(1 - entropy[many] / np.log2(k[many]), 0.0, 1.0)
  return k, c


def _counted(ids: np.ndarray, known_cum: np.ndarray, n: int, keep_unknown: bool) -> np.ndarray:
  """Starts of the windows of length n that enter the counts (sorted)."""
  ok = ids >= 0
  if not keep_unknown:
    s = len(ids)
    starts = np.arange(s)
    ok &= known_cum[np.minimum(starts + n, s)] - known_cum[starts] == 0
  return np.flatnonzero(ok)


def score_tables(units: np.ndarray, lyric_units: np.ndarray, unknown: np.ndarray,
                 song_end: np.ndarray, *, max_n: int, lyric_mean: str = 'distinct',
                 unknown_stress: str = 'skip', lyric_ids: Optional[list[np.ndarray]] = None
                 ) -> tuple[list[LengthTable], list[np.ndarray]]:
  """Score every note n-gram of lengths 1..max_n.

  Args:
    units: int64 ``[S]`` dense note-group unit ids of the flattened corpus.
    lyric_units: int64 ``[S]`` dense stress-pattern ids.
    unknown: bool ``[S]`` the syllable's stress is unknown.
    song_end: int64 ``[S]`` end (exclusive) of the song holding each syllable.
    lyric_ids: ``lexicon_ngrams.ngram_ids(lyric_units, song_end, >= max_n)`` when already
      computed (both kinds share them).
  Returns:
    one :class:`LengthTable` per length, and the note n-gram ids of every window
    (``lexicon_ngrams.ngram_ids``).
  """
  pairs = list(iter_tables(units, lyric_units, unknown, song_end, max_n=max_n,
                           lyric_mean=lyric_mean, unknown_stress=unknown_stress,
                           lyric_ids=lyric_ids))
  return [t for t, _ in pairs], [ids for _, ids in pairs]


def iter_tables(units: np.ndarray, lyric_units: np.ndarray, unknown: np.ndarray,
                song_end: np.ndarray, *, max_n: int, lyric_mean: str = 'distinct',
                unknown_stress: str = 'skip', lyric_ids: Optional[list[np.ndarray]] = None):
  """:func:`score_tables` one length at a time: yields ``(LengthTable, note n-gram ids [S])``
  for n = 1..max_n, so that a caller keeping only what it needs of each length never holds
  every length's tables and ids at once (arguments as :func:`score_tables`)."""
  if lyric_mean not in LYRIC_MEANS:
    raise ValueError(f'lyric_mean: expected one of {LYRIC_MEANS}, got {lyric_mean!r}')
  if unknown_stress not in UNKNOWN_STRESS:
    raise ValueError(f'unknown_stress: expected one of {UNKNOWN_STRESS}, got {unknown_stress!r}')
  keep = unknown_stress == 'keep'
  note_id_lengths = lexicon_ngrams.iter_ngram_ids(units, song_end, max_n)
  if lyric_ids is None or len(lyric_ids) < max_n:
    lyric_ids = lexicon_ngrams.ngram_ids(lyric_units, song_end, max_n)
  known_cum = np.concatenate([[0], np.cumsum(unknown)]).astype(np.int64)
  unit_p = lyric_p = None
  for n, note_ids in enumerate(note_id_lengths, start=1):
    win = _counted(note_ids, known_cum, n, keep)
    total = len(win)
    g_all, l_all = note_ids[win], lyric_ids[n - 1][win]
    ids, g_first, g_inv, count = np.unique(g_all, return_index=True, return_inverse=True,
                                           return_counts=True)
    l_ids, l_first, l_inv, l_count = np.unique(l_all, return_index=True, return_inverse=True,
                                               return_counts=True)
    if n == 1:  # unit probabilities p(u) over the counted single-syllable windows
      unit_p = np.zeros(int(units.max()) + 1 if len(units) else 1)
      unit_p[ids] = count / max(total, 1)
      lyric_p = np.zeros(int(lyric_units.max()) + 1 if len(lyric_units) else 1)
      lyric_p[l_ids] = l_count / max(total, 1)
    offsets = np.arange(n)
    g_indep = np.prod(unit_p[units[win[g_first][:, None] + offsets]], axis=1)
    l_indep = np.prod(lyric_p[lyric_units[win[l_first][:, None] + offsets]], axis=1)
    t = _t_scores(count / max(total, 1), g_indep, total, n)
    lt = _t_scores(l_count / max(total, 1), l_indep, total, n)
    size, l_size = len(ids), max(len(l_ids), 1)
    pair_key, p_first, p_count = np.unique(g_inv * l_size + l_inv, return_index=True,
                                           return_counts=True)
    pg, pl = pair_key // l_size, pair_key % l_size
    k, c = concentration(pg, p_count, count, size)
    lyric_t, s, position = {}, {}, {}
    for score in ('faithful', 'collapsed'):
      if lyric_mean == 'distinct':
        m = np.bincount(pg, weights=lt[score][pl], minlength=size) / np.maximum(k, 1)
      else:
        m = np.bincount(pg, weights=p_count * lt[score][pl], minlength=size) / count
      lyric_t[score] = m
      s[score] = 0.5 * t[score] + 0.5 * c * m
      order = np.lexsort((ids, -count, -s[score]))
      position[score] = np.empty(size, dtype=np.int64)
      position[score][order] = np.arange(size)
    grouped = np.argsort(g_inv, kind='stable')
    group_start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    second = np.full(size, -1, dtype=np.int64)
    two = count > 1
    second[two] = win[grouped[group_start[two] + 1]]
    yield LengthTable(
        n=n, total=total, ids=ids, count=count, t=t, c=c, lyric_t=lyric_t, s=s,
        position=position, first=win[g_first], second=second,
        pair_offset=np.searchsorted(pg, np.arange(size + 1)), pair_count=p_count,
        pair_window=win[p_first]), note_ids


def num_selected(table: LengthTable, *, min_span_n: int, max_span_n: int,
                 max_rank: float) -> int:
  """How many of the table's n-grams (the best by position) are selected for spans."""
  if not min_span_n <= table.n <= max_span_n:
    return 0
  return table.num_selected(max_rank)


def window_selection(tables: list[LengthTable], note_ids: list[np.ndarray], *, score: str,
                     min_span_n: int, max_span_n: int, max_rank: float) -> list[np.ndarray]:
  """For n = 1..max_span_n, bool ``[S]``: the window starting there holds a selected n-gram."""
  out = []
  for table in tables[:max_span_n]:
    ids = note_ids[table.n - 1]
    chosen = np.zeros(int(ids.max()) + 2 if len(ids) else 1, dtype=bool)
    k = num_selected(table, min_span_n=min_span_n, max_span_n=max_span_n, max_rank=max_rank)
    chosen[table.ids[table.position[score] < k]] = True
    out.append(chosen[ids])  # id -1 reads the last slot, which is never chosen
  return out
