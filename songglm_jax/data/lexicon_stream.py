"""The lexicon fit in memory that grows slowly with the corpus: streamed songs, compact arrays,
hash-partitioned exact counts. Its ``lexicon.json`` is byte-identical to
``lexicon_build.fit_lexicon``'s (the reference, which holds every song and every n-gram table).

- Songs are read twice from a re-iterable source (prepare's spill file): once into compact
  per-syllable and per-note arrays (int16 unit and stress-pattern ids when they fit, int8
  features, int16 pitches) and once, at the end, for the syllable text of the few windows shown
  as examples. No song is kept.
- Unit ids and stress-pattern ids are given in first-seen order while reading and renumbered in
  the reference's order (sorted groups / sorted patterns) afterwards; songs are put in the
  reference's canonical order (name, content digest), copied song by song.
- For each length n, the counted windows are split into ``partitions`` parts by a hash of their
  n-gram (its units packed into int64 words, which sort like the n-grams), so every occurrence of
  an n-gram is in one part. Each part is counted exactly with ``np.lexsort``, ``CHUNK`` windows at
  a time merged into its distinct (note n-gram, stress n-gram) pairs (a frequent n-gram fills one
  part, however many parts there are), and scored with the reference's formulas (``lexicon_fit``)
  in the same order of operations, so every float is bit-identical; stress n-gram counts come
  from a first partitioned pass by the stress n-gram's hash (one int32 per window). Only one
  part's table is in memory at once, plus what is kept: every n-gram of the lengths spans use
  (``n <= max_span_n``, few distinct ones) and the ``keep_top`` best of each part for the longer
  lengths (the global best ``keep_top`` are among them), and one float per distinct n-gram of the
  current length to count tied scores.
- Spans and their statistics are computed song-aligned chunk by chunk (spans never cross songs).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

from songglm_jax.data import lexicon_build, lexicon_fit, lexicon_ngrams
from songglm_jax.data.lexicon import (Example, KindLexicon, Lexicon, LexiconParams, NGram,
                                      covered_notes)
from songglm_jax.music import skeleton
from songglm_jax.music.song import Song

WINDOWS_PER_PARTITION = 1 << 18  # the default partition count: one part per this many syllables
CHUNK = 1 << 18                   # syllables per chunk of the chunked passes

SongSource = Union[Sequence[Song], Callable[[], Iterable[Song]]]


def _songs(source: SongSource) -> Iterable[Song]:
  return source() if callable(source) else iter(source)


@dataclasses.dataclass
class _Compact:
  """The corpus as compact arrays in the reference's canonical song order."""
  names: list             # [M] song names
  syl_start: np.ndarray   # int64 [M + 1]
  first: np.ndarray       # int32/int64 [S + 1] first note of each syllable, then N
  pitch: np.ndarray       # int16 [N]
  features: dict          # kind -> int8 [N]
  units: dict             # kind -> int16/32 [S] dense unit ids (the reference's dense_units order)
  lyric_units: np.ndarray  # int16/32 [S] stress-pattern ids (sorted patterns)
  patterns: list          # [P] the stress patterns, sorted
  unknown: np.ndarray     # bool [S]
  order: np.ndarray       # [M] stream position of each canonical song

  @property
  def num_syllables(self) -> int:
    return int(self.syl_start[-1])

  def song_end(self, lo: int, hi: int) -> np.ndarray:
    """End syllable (exclusive) of the song of each syllable ``lo..hi-1``: int64 ``[hi - lo]``."""
    i0 = int(np.searchsorted(self.syl_start, lo, side='right')) - 1
    i1 = int(np.searchsorted(self.syl_start, hi, side='left'))
    counts = np.diff(np.clip(self.syl_start[i0:i1 + 1], lo, hi))
    return np.repeat(self.syl_start[i0 + 1:i1 + 1], counts)


def _renumber(provisional: dict) -> np.ndarray:
  """Map first-seen ids to ranks of their keys in sorted order (int16 when they fit)."""
  keys = list(provisional)
  ranks = np.empty(len(keys), dtype=np.int16 if len(keys) < 2**15 else np.int32)
  for rank, i in enumerate(sorted(range(len(keys)), key=keys.__getitem__)):
    ranks[provisional[keys[i]]] = rank
  return ranks


class _Columns:
  """Per-song arrays appended in stream order, joined every ``flush`` songs (few large arrays
  rather than one small array per song)."""

  def __init__(self, flush: int = 1024):
    self.flush, self.chunks, self.pending = flush, [], []

  def add(self, values: np.ndarray) -> None:
    self.pending.append(values)
    if len(self.pending) >= self.flush:
      self.chunks.append(np.concatenate(self.pending))
      self.pending = []

  def canonical(self, sizes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """All values, the songs (of ``sizes`` values each, in stream order) put in ``order``
    (copied song by song: no index array as long as the values)."""
    values = np.concatenate(self.chunks + self.pending)
    self.chunks = self.pending = []
    start = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    out = np.empty_like(values)
    pos = 0
    for i in order.tolist():
      out[pos:pos + sizes[i]] = values[start[i]:start[i + 1]]
      pos += sizes[i]
    return out


def _compact(source: SongSource, kinds: Sequence[str]) -> _Compact:
  """One pass over the songs into compact arrays (errors as ``lexicon_build._Corpus.build``)."""
  keys, n_syl, n_note, names = [], [], [], []
  cols = collections.defaultdict(_Columns)
  unit_ids = {k: {} for k in kinds}
  pattern_ids: dict = {}
  num_values = {k: len(skeleton.feature_names(k)) for k in kinds}
  depth = {k: lexicon_ngrams.code_depth(v) for k, v in num_values.items()}
  for song in _songs(source):
    if not isinstance(song, Song):
      raise ValueError(f'fit_lexicon: expected Song values, got {type(song).__name__}')
    if song.syllable_stress is None:
      raise ValueError(f'fit_lexicon: song {song.name!r} has no syllable_stress (fill it with '
                       'music/stress.py first)')
    keys.append((song.name, lexicon_build._digest(song)))
    names.append(song.name)
    n_syl.append(song.num_syllables)
    n_note.append(song.num_notes)
    cols['pitch'].add(song.pitch.astype(np.int16))
    cols['lengths'].add(np.bincount(song.note_syllable,
                                    minlength=song.num_syllables).astype(np.int32))
    lyric = [pattern_ids.setdefault(p, len(pattern_ids)) for p in song.syllable_stress]
    cols['lyric'].add(np.array(lyric, dtype=np.int32))
    for kind in kinds:
      feats = skeleton.note_features(song, kind).astype(np.int8)
      codes, lengths, first = lexicon_ngrams.group_codes(feats, song.note_syllable,
                                                         song.num_syllables, num_values[kind])
      ids = unit_ids[kind]
      group = [(int(c), lexicon_ngrams.group_tuple(feats, first, s) if l > depth[kind] else ())
               for s, (c, l) in enumerate(zip(codes.tolist(), lengths.tolist()))]
      cols['units', kind].add(np.array([ids.setdefault(g, len(ids)) for g in group],
                                       dtype=np.int32))
      cols['features', kind].add(feats)
  if not keys:
    raise ValueError('fit_lexicon: no songs')
  order = np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)
  syl_start = np.concatenate([[0], np.cumsum(np.array(n_syl)[order])]).astype(np.int64)
  index_dtype = np.int32 if max(syl_start[-1], sum(n_note)) < 2**31 else np.int64
  first = np.zeros(syl_start[-1] + 1, dtype=index_dtype)
  np.cumsum(cols.pop('lengths').canonical(n_syl, order), out=first[1:])
  patterns = sorted(pattern_ids)
  lyric_units = _renumber(pattern_ids)[cols.pop('lyric').canonical(n_syl, order)]
  unknown = np.array([lexicon_build.is_unknown_stress(p) for p in patterns], dtype=bool)
  units = {k: _renumber(unit_ids[k])[cols.pop(('units', k)).canonical(n_syl, order)]
           for k in kinds}
  features = {k: cols.pop(('features', k)).canonical(n_note, order) for k in kinds}
  return _Compact(names=[names[i] for i in order], syl_start=syl_start, first=first,
                  pitch=cols.pop('pitch').canonical(n_note, order),
                  features=features, units=units, lyric_units=lyric_units, patterns=patterns,
                  unknown=unknown[lyric_units], order=order)


def _words(units: np.ndarray, starts: np.ndarray, n: int, bits: int) -> list[np.ndarray]:
  """The n-grams at ``starts`` packed into int64 words (first unit most significant); rows of
  words sort like the n-grams (all have n units)."""
  per = 63 // bits
  out = []
  for lo in range(0, n, per):
    w = np.zeros(len(starts), dtype=np.int64)
    for j in range(lo, min(n, lo + per)):
      w = (w << bits) | units[starts + j]
    out.append(w)
  return out


def _part_of(words: list[np.ndarray], partitions: int) -> np.ndarray:
  """Partition of each n-gram: a mixed hash of its words modulo ``partitions``."""
  h = np.zeros(len(words[0]), dtype=np.uint64)
  with np.errstate(over='ignore'):
    for w in words:
      h = (h ^ w.view(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
      h ^= h >> np.uint64(29)
  return (h % np.uint64(partitions)).astype(np.int32)


def _bits(units: np.ndarray) -> int:
  return max(1, int(units.max()).bit_length()) if len(units) else 1


def _windows(c: _Compact, n: int, keep_unknown: bool) -> np.ndarray:
  """Bool ``[S]``: the window of length n at each start is counted: inside its song and, unless
  ``keep_unknown``, without a syllable of unknown stress (computed chunk by chunk)."""
  s = c.num_syllables
  out = np.zeros(s, dtype=bool)
  for lo in range(0, s, CHUNK):
    hi = min(lo + CHUNK, s)
    ends = np.arange(lo, hi) + n
    out[lo:hi] = ends <= c.song_end(lo, hi)
    if not keep_unknown:
      known_cum = np.zeros(min(hi + n, s) - lo + 1, dtype=np.int32)
      np.cumsum(c.unknown[lo:lo + len(known_cum) - 1], out=known_cum[1:])
      out[lo:hi] &= known_cum[np.minimum(ends, s) - lo] == known_cum[:hi - lo]
  return out


def _partitions_of(units: np.ndarray, counted: np.ndarray, n: int, partitions: int,
                   bits: int) -> np.ndarray:
  """Partition id ``[S]`` of every counted window (-1 elsewhere), computed chunk by chunk."""
  part = np.full(len(counted), -1, dtype=np.int8 if partitions < 128 else np.int32)
  for lo in range(0, len(counted), CHUNK):
    win = lo + np.flatnonzero(counted[lo:lo + CHUNK])
    if len(win):
      part[win] = _part_of(_words(units, win, n, bits), partitions)
  return part


def _reduce(keys: list, count: np.ndarray, first: np.ndarray, second: np.ndarray):
  """Rows grouped by ``keys`` (int64 columns): the distinct keys in lexicographic order, their
  counts summed and the two smallest of their windows (``first``, ``second``; -1: none)."""
  two = second >= 0
  cand_keys = [np.concatenate([k, k[two]]) for k in keys]
  cand = np.concatenate([first, second[two]])
  order = np.lexsort((cand, *cand_keys[::-1]))
  cand, cand_keys = cand[order], [k[order] for k in cand_keys]
  cand_count = np.concatenate([count, np.zeros(int(two.sum()), count.dtype)])[order]
  new = np.ones(len(cand), dtype=bool)
  if len(cand) > 1:
    new[1:] = np.any(np.stack([k[1:] != k[:-1] for k in cand_keys]), axis=0)
  start = np.flatnonzero(new)
  size = np.diff(np.append(start, len(cand)))
  second = np.full(len(start), -1, dtype=np.int64)
  second[size > 1] = cand[start[size > 1] + 1]
  return ([k[start] for k in cand_keys], np.add.reduceat(cand_count, start) if len(cand) else
          cand_count, cand[start], second)


def _aggregate(win: np.ndarray, columns: Callable) -> tuple:
  """:func:`_reduce` of the windows ``win`` (sorted) keyed by ``columns(starts)``, a chunk of
  windows at a time (a frequent n-gram fills a part, however many parts there are)."""
  acc = None
  for lo in range(0, len(win), CHUNK):
    starts = win[lo:lo + CHUNK]
    ones, none = np.ones(len(starts), np.int64), np.full(len(starts), -1, np.int64)
    part = _reduce(columns(starts), ones, starts, none)
    if acc is not None:
      part = _reduce(*[[np.concatenate([x, y]) for x, y in zip(acc[0], part[0])]] +
                     [np.concatenate([x, y]) for x, y in zip(acc[1:], part[1:])])
    acc = part
  return acc


def _row_of(keys: list, words: list) -> np.ndarray:
  """Row of ``keys`` (distinct, sorted) holding each row of ``words`` (all present)."""
  ids, _ = lexicon_ngrams.dense_ids(*[np.concatenate([k, w]) for k, w in zip(keys, words)])
  return ids[len(keys[0]):]  # the keys are distinct and sorted: key row i has id i


def _lyric_counts(c: _Compact, counted: np.ndarray, n: int, partitions: int) -> np.ndarray:
  """Count ``[S]`` (int32) of the stress n-gram of each counted window among counted windows."""
  bits = _bits(c.lyric_units)
  part = _partitions_of(c.lyric_units, counted, n, partitions, bits)
  out = np.zeros(len(counted), dtype=np.int32)
  columns = lambda starts: _words(c.lyric_units, starts, n, bits)
  for p in range(partitions):
    win = np.flatnonzero(part == p)
    if len(win):
      keys, count, _, _ = _aggregate(win, columns)
      for lo in range(0, len(win), CHUNK):
        starts = win[lo:lo + CHUNK]
        out[starts] = count[_row_of(keys, columns(starts))]
  return out


@dataclasses.dataclass
class _Rows:
  """Scored n-grams of one length (some of them), arrays ``[G]`` (``pair_*``: ``[P]``)."""
  words: list
  count: np.ndarray
  t: dict
  c: np.ndarray
  lyric_t: dict
  s: dict
  first: np.ndarray
  second: np.ndarray
  pair_offset: np.ndarray
  pair_count: np.ndarray
  pair_window: np.ndarray

  def take(self, rows: np.ndarray) -> '_Rows':
    lo, hi = self.pair_offset[rows], self.pair_offset[rows + 1]
    pairs = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(rows) else \
        np.zeros(0, np.int64)
    by = lambda d: {k: v[rows] for k, v in d.items()}
    return _Rows(words=[w[rows] for w in self.words], count=self.count[rows], t=by(self.t),
                 c=self.c[rows], lyric_t=by(self.lyric_t), s=by(self.s), first=self.first[rows],
                 second=self.second[rows],
                 pair_offset=np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int64),
                 pair_count=self.pair_count[pairs], pair_window=self.pair_window[pairs])

  @staticmethod
  def concat(parts: list) -> '_Rows':
    cat = lambda xs: np.concatenate(xs)
    by = lambda name: {k: cat([getattr(p, name)[k] for p in parts]) for k in lexicon_fit.SCORES}
    offsets, base = [np.zeros(1, np.int64)], 0
    for p in parts:
      offsets.append(p.pair_offset[1:] + base)
      base += p.pair_offset[-1]
    return _Rows(words=[cat([p.words[i] for p in parts]) for i in range(len(parts[0].words))],
                 count=cat([p.count for p in parts]), t=by('t'), c=cat([p.c for p in parts]),
                 lyric_t=by('lyric_t'), s=by('s'), first=cat([p.first for p in parts]),
                 second=cat([p.second for p in parts]), pair_offset=cat(offsets),
                 pair_count=cat([p.pair_count for p in parts]),
                 pair_window=cat([p.pair_window for p in parts]))

  def order(self, score: str) -> np.ndarray:
    """The reference's ranking: s high first, count high first, then the n-gram."""
    return np.lexsort((*self.words[::-1], -self.count, -self.s[score]))


def _score_part(pairs, g_words: int, lcount, units, lyric_units, unit_p, lyric_p, total, n,
                lyric_mean) -> _Rows:
  """The reference's ``lexicon_fit.iter_tables`` body on one partition, from its distinct (note
  n-gram, stress n-gram) pairs ``pairs`` (:func:`_aggregate`; the first ``g_words`` key columns
  are the note n-gram's), in the same order of operations."""
  keys, p_count, p_first, p_second = pairs
  words, count, first, second = _reduce(keys[:g_words], p_count, p_first, p_second)
  new = np.ones(len(p_count), dtype=bool)
  new[1:] = np.any(np.stack([k[1:] != k[:-1] for k in keys[:g_words]]), axis=0)
  pg = np.cumsum(new) - 1
  offsets = np.arange(n)
  g_indep = np.prod(unit_p[units[first[:, None] + offsets]], axis=1)
  l_indep = np.prod(lyric_p[lyric_units[p_first[:, None] + offsets]], axis=1)
  t = lexicon_fit._t_scores(count / max(total, 1), g_indep, total, n)
  lt = lexicon_fit._t_scores(lcount[p_first] / max(total, 1), l_indep, total, n)
  size = len(count)
  k, c = lexicon_fit.concentration(pg, p_count, count, size)
  lyric_t, s = {}, {}
  for score in lexicon_fit.SCORES:
    if lyric_mean == 'distinct':
      m = np.bincount(pg, weights=lt[score], minlength=size) / np.maximum(k, 1)
    else:
      m = np.bincount(pg, weights=p_count * lt[score], minlength=size) / count
    lyric_t[score] = m
    s[score] = 0.5 * t[score] + 0.5 * c * m
  return _Rows(words=words, count=count, t=t, c=c, lyric_t=lyric_t, s=s, first=first,
               second=second, pair_offset=np.searchsorted(pg, np.arange(size + 1)),
               pair_count=p_count, pair_window=p_first)


@dataclasses.dataclass
class _Length:
  """What is kept of one length of one kind: ``rows`` (all of them when ``n <= max_span_n``,
  else the best ``keep_top``), their global ``position`` per score, and the table's summary."""
  n: int
  size: int
  rows: _Rows
  position: dict
  row: dict


def _value_part(values: np.ndarray, partitions: int) -> np.ndarray:
  """Partition of each float by its value (equal values, 0.0 and -0.0 included, share one)."""
  bits = (values + 0.0).view(np.uint64)
  with np.errstate(over='ignore'):
    return ((bits * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) % np.uint64(partitions)


def _ties(buckets: list) -> int:
  """How many values equal another (``np.unique``'s counts > 1, summed), one bucket of values
  (``_value_part``) at a time."""
  out = 0
  for bucket in buckets:
    values = np.sort(np.concatenate(bucket)) if bucket else np.zeros(0)
    bucket.clear()
    eq = values[1:] == values[:-1]
    tied = np.zeros(len(values), dtype=bool)
    tied[1:] |= eq
    tied[:-1] |= eq
    out += int(tied.sum())
  return out


def _fit_length(c: _Compact, kind: str, n: int, counted: np.ndarray, lcount: np.ndarray,
                unit_p, lyric_p, params: LexiconParams, partitions: int) -> _Length:
  units = c.units[kind]
  bits, lbits = _bits(units), _bits(c.lyric_units)
  part = _partitions_of(units, counted, n, partitions, bits)
  total = int(counted.sum())
  keep_all = n <= params.max_span_n
  kept, size, buckets = [], 0, [[] for _ in range(partitions)]
  for p in range(partitions):
    win = np.flatnonzero(part == p)
    if not len(win):
      continue
    columns = lambda x: _words(units, x, n, bits) + _words(c.lyric_units, x, n, lbits)
    rows = _score_part(_aggregate(win, columns), len(_words(units, win[:1], n, bits)), lcount,
                       units, c.lyric_units, unit_p, lyric_p, total, n, params.lyric_mean)
    values = rows.s[params.score]
    size += len(values)
    where = _value_part(values, partitions)
    for b in range(partitions):
      buckets[b].append(values[where == b])
    if not keep_all:  # the global best keep_top are among the parts' best keep_top
      rows = rows.take(np.sort(rows.order(params.score)[:params.keep_top]))
    kept.append(rows)
  rows = _Rows.concat(kept) if kept else None
  position = {}
  for score in lexicon_fit.SCORES if rows is not None else ():
    position[score] = np.empty(len(rows.count), dtype=np.int64)
    position[score][rows.order(score)] = np.arange(len(rows.count))
  k = int(np.floor(params.max_rank * size + 1e-9)) \
      if params.min_span_n <= n <= params.max_span_n else 0
  row = {'n': n, 'windows': total, 'distinct': size, 'selected': k,
         'tied_scores': _ties(buckets)}
  return _Length(n=n, size=size, rows=rows, position=position, row=row)


def _member(keys: list[np.ndarray], words: list[np.ndarray]) -> np.ndarray:
  """Bool per row of ``words``: the row is one of the rows of ``keys`` (exact)."""
  if not len(keys[0]):
    return np.zeros(len(words[0]), dtype=bool)
  ids, _ = lexicon_ngrams.dense_ids(*[np.concatenate([k, w]) for k, w in zip(keys, words)])
  chosen = np.zeros(int(ids.max()) + 1, dtype=bool)
  chosen[ids[:len(keys[0])]] = True
  return chosen[ids[len(keys[0]):]]


def _span_stats(c: _Compact, kind: str, lengths: list, params: LexiconParams) -> dict:
  """The reference's span statistics, song-aligned chunk by chunk."""
  score = params.score
  other = 'collapsed' if score == 'faithful' else 'faithful'
  units, bits = c.units[kind], _bits(c.units[kind])
  chosen = {}
  for ln in lengths[:params.max_span_n]:
    k = ln.row['selected']
    for sc in (score, other):
      chosen[sc, ln.n] = [w[ln.position[sc] < k] for w in ln.rows.words] if ln.rows else None
  num_spans = num_keys = num_other = only_this = only_other = songs_differ = inside = 0
  bounds = np.unique(np.searchsorted(c.syl_start, np.arange(0, c.syl_start[-1], CHUNK),
                                     side='right') - 1)
  bounds = np.append(c.syl_start[bounds], c.syl_start[-1])
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    spans, ends = {}, c.song_end(lo, hi)
    for sc in (score, other):
      sel = []
      for ln in lengths[:params.max_span_n]:
        mask = np.zeros(hi - lo, dtype=bool)
        win = lo + np.flatnonzero(np.arange(lo, hi) + ln.n <= ends)
        keys = chosen[sc, ln.n]
        if len(win) and keys is not None:
          mask[win - lo] = _member(keys, _words(units, win, ln.n, bits))
        sel.append(mask)
      a, b = lexicon_ngrams.spans_from_selection(sel)
      spans[sc] = (a + lo, b + lo)
    key = {sc: a * (c.num_syllables + 1) + b for sc, (a, b) in spans.items()}
    this, that = np.setdiff1d(key[score], key[other]), np.setdiff1d(key[other], key[score])
    differ = np.concatenate([this, that]) // (c.num_syllables + 1)
    songs_differ += len(np.unique(np.searchsorted(c.syl_start, differ, side='right')))
    num_keys += len(key[score])
    num_other += len(key[other])
    only_this += len(this)
    only_other += len(that)
    a, b = spans[score]
    num_spans += len(a)
    note_lo = c.first[lo]
    inside += covered_notes(np.stack([c.first[a] - note_lo, c.first[b] - note_lo], axis=1),
                            int(c.first[hi] - note_lo)).sum()
  sel_differ = 0
  for ln in lengths[:params.max_span_n]:
    k = ln.row['selected']
    if ln.rows is not None:
      sel_differ += int(np.sum((ln.position[score] < k) != (ln.position[other] < k)))
  return {
      'units': int(units.max()) + 1,
      'coverage': float(inside / len(c.pitch)),
      'spans_per_song': float(num_spans / len(c.names)),
      'score_comparison': {
          'other_score': other, 'spans': num_keys, 'spans_other': num_other,
          'only_this': only_this, 'only_other': only_other, 'differ': only_this + only_other,
          'songs_differ': songs_differ, 'selected_ngrams_differ': sel_differ}}


def _kept(ln: _Length, params: LexiconParams) -> np.ndarray:
  """Rows stored in the file, in ranking order (as ``lexicon_build._ngram_entries``)."""
  if ln.rows is None:
    return np.zeros(0, np.int64)
  pos = ln.position[params.score]
  keep = np.flatnonzero((pos < ln.row['selected']) | (pos < params.keep_top))
  return keep[np.argsort(pos[keep])]


def _syllable_text(c: _Compact, source: SongSource, windows: set) -> dict:
  """``(start, n) -> syllables`` of the example windows, from a second pass over the songs."""
  wanted = collections.defaultdict(list)  # stream position -> windows
  song_of = lambda a: int(np.searchsorted(c.syl_start, a, side='right')) - 1
  for a, n in windows:
    wanted[int(c.order[song_of(a)])].append((a, n))
  out = {}
  for i, song in enumerate(_songs(source)):
    for a, n in wanted.get(i, ()):
      lo = a - int(c.syl_start[song_of(a)])
      out[a, n] = ' '.join(song.syllables[lo:lo + n])
  return out


def _entries(c: _Compact, kind: str, ln: _Length, params: LexiconParams,
             text: Callable) -> list[NGram]:
  out, rows, pos = [], ln.rows, ln.position.get(params.score)
  features, first = c.features[kind], c.first
  stress = lambda a, n: lexicon_build._stress_text([c.patterns[u] for u in c.lyric_units[a:a + n]])
  song_of = lambda a: int(np.searchsorted(c.syl_start, a, side='right')) - 1

  def example(a: int) -> Example:
    pitches = ' | '.join(' '.join(lexicon_build._pitch_name(int(p))
                                  for p in c.pitch[first[i]:first[i + 1]])
                         for i in range(a, a + ln.n))
    return Example(song=c.names[song_of(a)], syllables=text(a, ln.n), stress=stress(a, ln.n),
                   pitches=pitches)

  for i in _kept(ln, params).tolist():
    w = int(rows.first[i])
    lo, hi = int(rows.pair_offset[i]), int(rows.pair_offset[i + 1])
    top = lo + np.argsort(-rows.pair_count[lo:hi], kind='stable')[:lexicon_build.MAX_LYRICS_SHOWN]
    lyrics = tuple((stress(int(rows.pair_window[j]), ln.n), int(rows.pair_count[j]))
                   for j in top)
    examples = tuple(example(int(x)) for x in (rows.first[i], rows.second[i]) if x >= 0)
    out.append(NGram(
        n=ln.n, groups=tuple(lexicon_ngrams.group_tuple(features, first, w + j)
                             for j in range(ln.n)),
        count=int(rows.count[i]), t=float(rows.t[params.score][i]), c=float(rows.c[i]),
        lyric_t=float(rows.lyric_t[params.score][i]), s=float(rows.s[params.score][i]),
        rank=float((pos[i] + 1) / ln.size), selected=bool(pos[i] < ln.row['selected']),
        lyrics=lyrics, examples=examples))
  return out


def fit_lexicon_partitioned(songs: SongSource, *, max_n: int = 12, min_span_n: int = 1,
                            max_span_n: Optional[int] = None, max_rank: float = 0.3,
                            lyric_mean: str = 'distinct', unknown_stress: str = 'skip',
                            score: str = 'faithful', keep_top: int = 20,
                            stress_mode: Optional[str] = None,
                            kinds: Sequence[str] = skeleton.KINDS,
                            partitions: Optional[int] = None) -> Lexicon:
  """``lexicon_build.fit_lexicon`` with bounded memory (module docstring); the same result.

  Args:
    songs: the corpus, a sequence of songs or a function returning a fresh iterator over them
      (it is called twice; e.g. over prepare's spill file, so that no song stays in memory).
    partitions: parts the n-grams of a length are counted in; None: one per
      ``WINDOWS_PER_PARTITION`` syllables (at least 1). The result does not depend on it.
    Other arguments: as ``lexicon_build.fit_lexicon``.
  Raises:
    ValueError: bad parameters, no songs, or a song without ``syllable_stress``.
  """
  params, kinds = lexicon_build.fit_params(
      max_n=max_n, min_span_n=min_span_n, max_span_n=max_span_n, max_rank=max_rank,
      lyric_mean=lyric_mean, unknown_stress=unknown_stress, score=score, keep_top=keep_top,
      stress_mode=stress_mode, kinds=kinds)
  if partitions is not None and (isinstance(partitions, bool) or partitions < 1):
    raise ValueError(f'fit_lexicon: partitions must be a positive integer, got {partitions!r}')
  c = _compact(songs, kinds)
  if partitions is None:
    partitions = max(1, -(-c.num_syllables // WINDOWS_PER_PARTITION))
  lengths = {k: [] for k in kinds}
  unit_p = lyric_p = None
  for n in range(1, max_n + 1):
    counted = _windows(c, n, unknown_stress == 'keep')
    total = int(counted.sum())
    if n == 1:  # unit probabilities over the counted single-syllable windows
      lyric_p = np.bincount(c.lyric_units[counted], minlength=len(c.patterns)) / max(total, 1)
      unit_p = {k: np.bincount(c.units[k][counted], minlength=int(c.units[k].max()) + 1)
                / max(total, 1) for k in kinds}
    lcount = _lyric_counts(c, counted, n, partitions)
    for kind in kinds:
      lengths[kind].append(_fit_length(c, kind, n, counted, lcount, unit_p[kind], lyric_p,
                                       params, partitions))
  windows = {(int(a), ln.n) for k in kinds for ln in lengths[k] for i in _kept(ln, params)
             for a in (ln.rows.first[i], ln.rows.second[i]) if a >= 0}
  text = _syllable_text(c, songs, windows)
  fitted = {}
  for kind in kinds:
    ngrams = [e for ln in lengths[kind]
              for e in _entries(c, kind, ln, params, lambda a, n: text[a, n])]
    fitted[kind] = KindLexicon(kind=kind, ngrams=tuple(ngrams),
                               lengths=tuple(ln.row for ln in lengths[kind]),
                               stats=_span_stats(c, kind, lengths[kind], params))
  summary = {'songs': len(c.names), 'syllables': c.num_syllables, 'notes': len(c.pitch),
             'unknown_stress_syllables': int(c.unknown.sum())}
  return Lexicon(params=params, corpus=summary, kinds=fitted)
