"""Exact integer encodings of syllable feature groups and n-grams; spans from selected n-grams.

Everything here works on a corpus flattened into one syllable axis (songs one after another), so
that counting and matching are a handful of NumPy calls per n-gram length, never a Python loop
over syllables.

Group codes (:func:`group_codes`). A syllable's note-feature group ``(f_0, ..., f_{L-1})`` with
values in ``0..C-1`` is coded as ``sum_{j < D} (f_j + 1) * B**(D - 1 - j)`` with ``B = C + 1`` and
``D`` = :func:`code_depth` (the most digits with ``B**D < 2**63``: 39 for peak flags, 22 for rhythm
classes). The code is exact (injective) for groups of at most ``D`` notes and orders groups like
their tuples (a group before its extensions). Longer groups (melismas: 13 of the 63k sample
syllables) share a code with their first ``D`` notes and are told apart by their exact tuple, in
a Python step over those few syllables only.

N-gram ids (:func:`ngram_ids`). Units (one per syllable) get dense ids in the tuples' order; the
n-gram starting at syllable ``a`` gets the dense rank of the pair (id of its (n-1)-gram prefix,
id of its last unit) -- one ``np.unique`` per length, exact (no hashing, so no collisions), and
the ids of each length are in lexicographic order of the n-grams. A window that would cross the
end of its song gets id -1.

Spans (:func:`spans_from_selection`). A selected window ``[a, a + n)`` is dropped when a longer
selected window covers it (starts at or before ``a`` and ends at or after ``a + n``); windows that
only partly overlap are both kept (the masking stage draws spans without overlap later).
Syllable windows map to notes ``[first_note[a], first_note[a + n])``.

Matching a fitted lexicon on new songs (:class:`Matcher`): the selected n-grams form a trie of
sorted integer keys ``parent_node * U + unit`` per depth; a song's windows walk it with one
``np.searchsorted`` per depth.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_INT64_LIMIT = 2**63


def code_depth(num_values: int) -> int:
  """Number of notes a group code holds exactly for features with ``num_values`` values."""
  base, depth = num_values + 1, 0
  while base ** (depth + 1) < _INT64_LIMIT:
    depth += 1
  return depth


def code_of(group: Sequence[int], num_values: int) -> int:
  """The code of one feature group (Python ints; see the module docstring)."""
  base, depth = num_values + 1, code_depth(num_values)
  return sum((int(f) + 1) * base ** (depth - 1 - j) for j, f in enumerate(group[:depth]))


def group_codes(features: np.ndarray, note_syllable: np.ndarray, num_syllables: int,
                num_values: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Codes of the syllables' feature groups.

  Args:
    features: int ``[N]`` per-note feature values in ``0..num_values-1``.
    note_syllable: int ``[N]`` non-decreasing syllable index of each note; every syllable in
      ``0..num_syllables-1`` has at least one note.
  Returns:
    ``codes`` int64 ``[S]``, ``lengths`` int64 ``[S]`` (notes per syllable) and ``first`` int64
    ``[S + 1]`` (index of each syllable's first note, then N).
  """
  features = np.asarray(features, dtype=np.int64)
  lengths = np.bincount(note_syllable, minlength=num_syllables).astype(np.int64)
  first = np.zeros(num_syllables + 1, dtype=np.int64)
  np.cumsum(lengths, out=first[1:])
  depth = code_depth(num_values)
  powers = np.array([(num_values + 1) ** (depth - 1 - j) for j in range(depth)], dtype=np.int64)
  j = np.arange(len(features)) - first[:-1][note_syllable]
  contrib = np.where(j < depth, (features + 1) * powers[np.minimum(j, depth - 1)], 0)
  codes = np.add.reduceat(contrib, first[:-1]) if len(features) else np.zeros(0, np.int64)
  return codes, lengths, first


def group_tuple(features: np.ndarray, first: np.ndarray, syllable: int) -> tuple[int, ...]:
  """The feature group of one syllable as a tuple."""
  return tuple(int(x) for x in features[first[syllable]:first[syllable + 1]])


def dense_units(codes: np.ndarray, lengths: np.ndarray, features: np.ndarray,
                first: np.ndarray, num_values: int) -> tuple[np.ndarray, np.ndarray]:
  """Dense unit ids in lexicographic order of the groups, and one syllable holding each unit.

  Returns ``ids`` int64 ``[S]`` and ``representative`` int64 ``[U]``.
  """
  secondary = np.zeros(len(codes), dtype=np.int64)
  long = np.flatnonzero(lengths > code_depth(num_values))
  if len(long):
    tuples = [group_tuple(features, first, int(s)) for s in long]
    order = {t: i + 1 for i, t in enumerate(sorted(set(tuples)))}
    secondary[long] = [order[t] for t in tuples]
  return dense_ids(codes, secondary)


def dense_ids(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Dense ids of rows of equal-length int64 key columns, in lexicographic order of the keys
  (``keys[0]`` most significant), and the first row holding each id."""
  n = len(keys[0])
  if n == 0:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  order = np.lexsort(keys[::-1])
  new = np.ones(n, dtype=bool)
  new[1:] = np.any(np.stack([k[order][1:] != k[order][:-1] for k in keys]), axis=0)
  ids = np.empty(n, dtype=np.int64)
  ids[order] = np.cumsum(new) - 1
  return ids, order[new]


def ngram_ids(units: np.ndarray, song_end: np.ndarray, max_n: int) -> list[np.ndarray]:
  """Dense n-gram ids of every window, for n = 1..max_n.

  Args:
    units: int64 ``[S]`` dense unit ids (>= 0).
    song_end: int64 ``[S]`` end (exclusive) of the song holding each syllable.
  Returns:
    ``max_n`` arrays int64 ``[S]``: element ``[n-1][a]`` is the id of window ``[a, a + n)``, or -1
    when the window leaves its song. Ids of each length follow the n-grams' lexicographic order.
  """
  return list(iter_ngram_ids(units, song_end, max_n))


def iter_ngram_ids(units: np.ndarray, song_end: np.ndarray, max_n: int):
  """:func:`ngram_ids` one length at a time (n = 1, 2, ...), holding only the previous length's
  ids: memory for two ``[S]`` arrays instead of ``max_n``."""
  units = np.asarray(units, dtype=np.int64)
  size = int(units.max()) + 1 if len(units) else 1
  prev = units.copy()
  yield prev
  starts = np.arange(len(units))
  for n in range(2, max_n + 1):
    ok = np.flatnonzero((prev >= 0) & (starts + n <= song_end))
    cur = np.full(len(units), -1, dtype=np.int64)
    if len(ok):
      _, cur[ok] = np.unique(prev[ok] * size + units[ok + n - 1], return_inverse=True)
    yield cur
    prev = cur


def spans_from_selection(selected: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """Selected syllable windows not covered by a longer selected window.

  Args:
    selected: for n = 1..J, bool ``[S]``: window ``[a, a + n)`` is selected (windows never
      cross a song end).
  Returns:
    ``start`` and ``end`` int64 ``[K]`` syllable windows ``[start, end)``, sorted by start then end.
  """
  s = len(selected[0]) if selected else 0
  starts = np.arange(s)
  max_end = np.full(s, -1, dtype=np.int64)
  for n, sel in enumerate(selected, start=1):
    max_end = np.where(sel, starts + n, max_end)  # a longer window overrides a shorter one
  before = np.full(s, -1, dtype=np.int64)
  if s > 1:
    before[1:] = np.maximum.accumulate(max_end)[:-1]
  out_start, out_end = [], []
  for n, sel in enumerate(selected, start=1):
    end = starts + n
    keep = np.flatnonzero(sel & (before < end) & (max_end <= end))
    out_start.append(keep)
    out_end.append(keep + n)
  if not out_start:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  start, end = np.concatenate(out_start), np.concatenate(out_end)
  order = np.lexsort((end, start))
  return start[order].astype(np.int64), end[order].astype(np.int64)


class Matcher:
  """Finds the occurrences of a set of n-grams of feature groups in songs, exactly.

  Args:
    ngrams: the selected n-grams, each a sequence of feature groups (tuples of ints).
    num_values: number of feature values (2 for peaks, 6 for rhythm classes).
  """

  def __init__(self, ngrams: Sequence[Sequence[Sequence[int]]], num_values: int):
    self.num_values = num_values
    self.depth = code_depth(num_values)
    groups = sorted({tuple(g) for ng in ngrams for g in ng})
    self.num_units = max(len(groups), 1)
    index = {g: i for i, g in enumerate(groups)}
    short = [(code_of(g, num_values), i) for g, i in index.items() if len(g) <= self.depth]
    short.sort()
    self._codes = np.array([c for c, _ in short], dtype=np.int64)
    self._code_unit = np.array([i for _, i in short], dtype=np.int64)
    self._long = {g: i for g, i in index.items() if len(g) > self.depth}
    self.max_n = max((len(ng) for ng in ngrams), default=0)
    # Trie: per depth, sorted keys parent * U + unit, and whether the node is a selected n-gram.
    nodes: list[dict[tuple[int, ...], bool]] = [dict() for _ in range(self.max_n)]
    for ng in ngrams:
      path = tuple(index[tuple(g)] for g in ng)
      for d in range(1, len(path) + 1):
        nodes[d - 1].setdefault(path[:d], False)
      nodes[len(path) - 1][path] = True
    self._keys, self._selected = [], []
    parent_id: dict[tuple[int, ...], int] = {(): 0}
    for level in nodes:
      items = sorted((parent_id[p[:-1]] * self.num_units + p[-1], p, sel)
                     for p, sel in level.items())
      self._keys.append(np.array([k for k, _, _ in items], dtype=np.int64))
      self._selected.append(np.array([s for _, _, s in items], dtype=bool))
      parent_id = {p: i for i, (_, p, _) in enumerate(items)}

  def units(self, features: np.ndarray, note_syllable: np.ndarray,
            num_syllables: int) -> np.ndarray:
    """Unit index of each syllable's group in this matcher, -1 when no n-gram uses it."""
    codes, lengths, first = group_codes(features, note_syllable, num_syllables, self.num_values)
    out = np.full(num_syllables, -1, dtype=np.int64)
    if len(self._codes):
      pos = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
      hit = (self._codes[pos] == codes) & (lengths <= self.depth)
      out[hit] = self._code_unit[pos[hit]]
    for s in np.flatnonzero(lengths > self.depth):
      out[s] = self._long.get(group_tuple(np.asarray(features), first, int(s)), -1)
    return out

  def selection(self, units: np.ndarray, song_end: np.ndarray) -> list[np.ndarray]:
    """For n = 1..max_n, bool ``[S]``: the window ``[a, a + n)`` is one of the n-grams."""
    s = len(units)
    starts = np.arange(s)
    node = np.zeros(s, dtype=np.int64)  # the root
    out = []
    for d in range(self.max_n):
      keys = self._keys[d]
      ok = (node >= 0) & (starts + d + 1 <= song_end)
      unit = np.where(ok, units[np.minimum(starts + d, s - 1)], -1)
      ok &= unit >= 0
      key = node * self.num_units + unit
      pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
      hit = ok & (keys[pos] == key)
      node = np.where(hit, pos, -1)
      out.append(hit & self._selected[d][pos])
    return out
