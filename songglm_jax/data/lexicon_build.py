"""Fitting the harmonized n-gram lexicon on a corpus of songs (both kinds).

Steps: put the songs in a canonical order (by name, then a digest of their content -- so nothing
depends on the order they were given in), flatten them into one syllable axis, compute the
kinds' note features, score every n-gram (``lexicon_fit``), select, extract the corpus's spans
under the chosen and the other score (to report how many differ), and keep the n-grams worth
storing (every selected one and the ``keep_top`` best of each length) with readable examples.

This is the reference fit: it holds every song and n-gram table in memory. ``prepare`` fits with
``data/lexicon_stream.py`` (memory that grows far more slowly, byte-identical lexicon.json).

Parallelism: with ``workers >= 2`` the two kinds are fitted in two threads (the work is large
NumPy sorts and gathers, which release the GIL). Processes would have to ship the flattened
corpus to each worker, which costs more than the fit of 1000 songs itself.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
from typing import Optional, Sequence

import numpy as np

from songglm_jax.data import lexicon_fit, lexicon_ngrams
from songglm_jax.data.lexicon import (Example, KindLexicon, Lexicon, LexiconParams, NGram,
                                      covered_notes)
from songglm_jax.music import skeleton
from songglm_jax.music.song import Song

MAX_LYRICS_SHOWN = 3
_PITCH_NAMES = ('C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B')


def is_unknown_stress(pattern: str) -> bool:
  """A stress pattern is unknown when it contains '?' (``music/stress.py`` marks OOV that way)."""
  return '?' in pattern


def _digest(song: Song) -> str:
  h = hashlib.blake2b(digest_size=16)
  for arr in (song.pitch, song.onset, song.offset, song.note_syllable, song.time_signatures):
    h.update(np.ascontiguousarray(arr, dtype='<i8').tobytes())
  h.update('\x00'.join(song.syllables).encode('utf-8'))
  h.update('\x00'.join(song.syllable_stress or ()).encode('utf-8'))
  return h.hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class _Corpus:
  """The songs flattened: S syllables, N notes, M songs, in canonical order."""
  songs: list
  pitch: np.ndarray            # [N]
  note_syllable: np.ndarray    # [N] global syllable index
  first: np.ndarray            # [S + 1] first note of each syllable, then N
  song_end: np.ndarray         # [S] end syllable (exclusive) of each syllable's song
  song_of: np.ndarray          # [S] song index of each syllable
  syl_start: np.ndarray        # [M + 1]
  note_start: np.ndarray       # [M + 1]
  syllables: list
  stress: list
  lyric_units: np.ndarray      # [S] dense stress-pattern ids (sorted patterns)
  unknown: np.ndarray          # [S] bool
  cache: dict = dataclasses.field(default_factory=dict)

  @classmethod
  def build(cls, songs: Sequence[Song]) -> '_Corpus':
    for song in songs:
      if not isinstance(song, Song):
        raise ValueError(f'fit_lexicon: expected Song values, got {type(song).__name__}')
      if song.syllable_stress is None:
        raise ValueError(f'fit_lexicon: song {song.name!r} has no syllable_stress (fill it with '
                         'music/stress.py first)')
    if not songs:
      raise ValueError('fit_lexicon: no songs')
    keys = [(s.name, _digest(s)) for s in songs]
    songs = [songs[i] for i in sorted(range(len(songs)), key=keys.__getitem__)]
    n_syl = np.array([s.num_syllables for s in songs], dtype=np.int64)
    n_note = np.array([s.num_notes for s in songs], dtype=np.int64)
    syl_start = np.concatenate([[0], np.cumsum(n_syl)])
    note_start = np.concatenate([[0], np.cumsum(n_note)])
    note_syllable = np.concatenate([s.note_syllable + o for s, o in zip(songs, syl_start)])
    song_of = np.repeat(np.arange(len(songs)), n_syl)
    stress = [p for s in songs for p in s.syllable_stress]
    patterns, lyric_units = np.unique(np.array(stress, dtype=object).astype(str),
                                      return_inverse=True)
    return cls(songs=songs, pitch=np.concatenate([s.pitch for s in songs]),
               note_syllable=note_syllable,
               first=np.searchsorted(note_syllable, np.arange(syl_start[-1] + 1)),
               song_end=syl_start[1:][song_of], song_of=song_of, syl_start=syl_start,
               note_start=note_start, syllables=[t for s in songs for t in s.syllables],
               stress=stress, lyric_units=lyric_units.astype(np.int64),
               unknown=np.array([is_unknown_stress(p) for p in stress], dtype=bool))

  def lyric_ids(self, max_n: int) -> list[np.ndarray]:
    """Stress-pattern n-gram ids of every window (shared by both kinds; computed once)."""
    key = ('lyric_ids', max_n)
    if key not in self.cache:
      self.cache[key] = lexicon_ngrams.ngram_ids(self.lyric_units, self.song_end, max_n)
    return self.cache[key]

  def features(self, kind: str) -> np.ndarray:
    if kind == 'smr':  # vectorized over the corpus; first and last notes of songs are no peaks
      peaks = skeleton.melodic_peaks(self.pitch)
      peaks[self.note_start[:-1]] = False
      peaks[self.note_start[1:] - 1] = False
      return peaks.astype(np.int8)
    return np.concatenate([skeleton.note_features(s, kind) for s in self.songs])


def _stress_text(patterns: Sequence[str]) -> str:
  return ' '.join(p if p else '_' for p in patterns)


def _pitch_name(p: int) -> str:
  return f'{_PITCH_NAMES[p % 12]}{p // 12 - 1}'


def _example(corpus: _Corpus, a: int, n: int) -> Example:
  pitches = ' | '.join(' '.join(_pitch_name(int(p)) for p in corpus.pitch[corpus.first[i]:
                                                                         corpus.first[i + 1]])
                       for i in range(a, a + n))
  return Example(song=corpus.songs[corpus.song_of[a]].name,
                 syllables=' '.join(corpus.syllables[a:a + n]),
                 stress=_stress_text(corpus.stress[a:a + n]), pitches=pitches)


def _corpus_spans(corpus: _Corpus, tables, note_ids, params: LexiconParams, score: str):
  sel = lexicon_fit.window_selection(tables, note_ids, score=score, min_span_n=params.min_span_n,
                                     max_span_n=params.max_span_n, max_rank=params.max_rank)
  return lexicon_ngrams.spans_from_selection(sel)


def _ngram_entries(corpus: _Corpus, tb, features, first, score: str, keep_top: int,
                   k: int) -> list[NGram]:
  """The n-grams of one length worth storing: the ``k`` selected and the ``keep_top`` best."""
  out = []
  pos = tb.position[score]
  keep = np.flatnonzero((pos < k) | (pos < keep_top))
  for i in keep[np.argsort(pos[keep])].tolist():
    w = int(tb.first[i])
    lo, hi = int(tb.pair_offset[i]), int(tb.pair_offset[i + 1])
    top = lo + np.argsort(-tb.pair_count[lo:hi], kind='stable')[:MAX_LYRICS_SHOWN]
    lyrics = tuple((_stress_text(corpus.stress[int(tb.pair_window[j]):
                                               int(tb.pair_window[j]) + tb.n]),
                    int(tb.pair_count[j])) for j in top)
    examples = tuple(_example(corpus, int(x), tb.n) for x in (tb.first[i], tb.second[i])
                     if x >= 0)
    out.append(NGram(
        n=tb.n, groups=tuple(lexicon_ngrams.group_tuple(features, first, w + j)
                             for j in range(tb.n)),
        count=int(tb.count[i]), t=float(tb.t[score][i]), c=float(tb.c[i]),
        lyric_t=float(tb.lyric_t[score][i]), s=float(tb.s[score][i]),
        rank=float((pos[i] + 1) / tb.size), selected=bool(pos[i] < k), lyrics=lyrics,
        examples=examples))
  return out


def _fit_kind(kind: str, corpus: _Corpus, params: LexiconParams) -> KindLexicon:
  num_values = len(skeleton.feature_names(kind))
  features = corpus.features(kind)
  s = len(corpus.syllables)
  codes, lengths, first = lexicon_ngrams.group_codes(features, corpus.note_syllable, s,
                                                     num_values)
  units, _ = lexicon_ngrams.dense_units(codes, lengths, features, first, num_values)
  score = params.score
  other = 'collapsed' if score == 'faithful' else 'faithful'
  select = dict(min_span_n=params.min_span_n, max_span_n=params.max_span_n,
                max_rank=params.max_rank)
  # One length at a time: what is stored of each length is taken as its table comes, and only
  # the lengths that spans can use (n <= max_span_n) keep their table and window ids, so the
  # longer lengths' tables (nearly one entry per window each) never all sit in memory at once.
  tables, note_ids, ngrams, length_rows = [], [], [], []
  for tb, ids in lexicon_fit.iter_tables(
      units, corpus.lyric_units, corpus.unknown, corpus.song_end, max_n=params.max_n,
      lyric_mean=params.lyric_mean, unknown_stress=params.unknown_stress,
      lyric_ids=corpus.lyric_ids(params.max_n)):
    k = lexicon_fit.num_selected(tb, **select)
    _, tie_counts = np.unique(tb.s[score], return_counts=True)
    length_rows.append({'n': tb.n, 'windows': int(tb.total), 'distinct': int(tb.size),
                        'selected': int(k), 'tied_scores': int(tie_counts[tie_counts > 1].sum())})
    ngrams += _ngram_entries(corpus, tb, features, first, score, params.keep_top, k)
    if tb.n <= params.max_span_n:
      tables.append(tb)
      note_ids.append(ids)

  spans = {sc: _corpus_spans(corpus, tables, note_ids, params, sc) for sc in (score, other)}
  keys = {sc: a * (s + 1) + b for sc, (a, b) in spans.items()}
  only_this = np.setdiff1d(keys[score], keys[other])
  only_other = np.setdiff1d(keys[other], keys[score])
  differ_songs = corpus.song_of[np.concatenate([only_this, only_other]) // (s + 1)]
  sel_differ = 0
  for tb in tables[:params.max_span_n]:
    k = lexicon_fit.num_selected(tb, **select)
    sel_differ += int(np.sum((tb.position[score] < k) != (tb.position[other] < k)))
  a, b = spans[score]
  inside = covered_notes(np.stack([corpus.first[a], corpus.first[b]], axis=1),
                         len(features)).sum()
  stats = {
      'units': int(units.max()) + 1,
      'coverage': float(inside / len(features)),
      'spans_per_song': float(len(a) / len(corpus.songs)),
      'score_comparison': {
          'other_score': other, 'spans': int(len(keys[score])),
          'spans_other': int(len(keys[other])), 'only_this': int(len(only_this)),
          'only_other': int(len(only_other)), 'differ': int(len(only_this) + len(only_other)),
          'songs_differ': int(len(np.unique(differ_songs))),
          'selected_ngrams_differ': sel_differ}}
  return KindLexicon(kind=kind, ngrams=tuple(ngrams), lengths=tuple(length_rows), stats=stats)


def fit_params(*, max_n: int, min_span_n: int, max_span_n: Optional[int], max_rank: float,
               lyric_mean: str, unknown_stress: str, score: str, keep_top: int,
               stress_mode: Optional[str], kinds: Sequence[str]
               ) -> tuple[LexiconParams, list[str]]:
  """The checked parameters of a fit (:func:`fit_lexicon`'s arguments) and its sorted kinds.

  Raises:
    ValueError: a bad parameter or kind.
  """
  if max_span_n is None:
    max_span_n = min(4, max_n) if isinstance(max_n, int) else 4
  params = LexiconParams(max_n=max_n, min_span_n=min_span_n, max_span_n=max_span_n,
                         max_rank=max_rank, lyric_mean=lyric_mean,
                         unknown_stress=unknown_stress, score=score, keep_top=keep_top,
                         stress_mode=stress_mode)
  bad = [k for k in kinds if k not in skeleton.KINDS]
  if bad or not kinds:
    raise ValueError(f'fit_lexicon: kinds must be a non-empty subset of {skeleton.KINDS}, '
                     f'got {list(kinds)}')
  return params, sorted(set(kinds))


def fit_lexicon(songs: Sequence[Song], *, max_n: int = 12, min_span_n: int = 1,
                max_span_n: Optional[int] = None, max_rank: float = 0.3,
                lyric_mean: str = 'distinct', unknown_stress: str = 'skip',
                score: str = 'faithful', keep_top: int = 20,
                stress_mode: Optional[str] = None, kinds: Sequence[str] = skeleton.KINDS,
                workers: int = 1) -> Lexicon:
  """Fit the SMR and SRR lexicons on songs that carry ``syllable_stress``.

  Args:
    songs: the corpus; the result does not depend on their order.
    max_n: longest n-gram scored (N, 12 in the paper).
    min_span_n, max_span_n, max_rank: n-grams of a length in ``min_span_n..max_span_n`` and of
      rank <= ``max_rank`` are selected for spans (``max_span_n`` None: ``min(4, max_n)``).
      The issue's rule is 1..4 and 0.3 (the default). Every unigram scores 0 (t = 0 for
      n = 1), so which unigrams are selected is decided by the tie-break (count) alone, and
      with them about 99% of the sample corpus's notes lie in spans (92% / 90% for SMR / SRR
      with ``min_span_n=2``).
    lyric_mean, unknown_stress: see ``data/lexicon_fit.py``.
    score: 'faithful' (the definition) or 'collapsed' (the public code's t, for ablations).
    keep_top: besides the selected n-grams, keep the best ``keep_top`` of each length (for the
      inspection command).
    stress_mode: recorded in the file (e.g. 'word' or 'syllable' from ``music/stress.py``).
    kinds: which lexicons to fit.
    workers: >= 2 fits the kinds in parallel threads.
  Raises:
    ValueError: bad parameters, no songs, or a song without ``syllable_stress``.
  """
  params, kinds = fit_params(max_n=max_n, min_span_n=min_span_n, max_span_n=max_span_n,
                             max_rank=max_rank, lyric_mean=lyric_mean,
                             unknown_stress=unknown_stress, score=score, keep_top=keep_top,
                             stress_mode=stress_mode, kinds=kinds)
  corpus = _Corpus.build(songs)
  corpus.lyric_ids(params.max_n)  # before the threads start
  if workers >= 2 and len(kinds) > 1:
    with concurrent.futures.ThreadPoolExecutor(min(workers, len(kinds))) as pool:
      fitted = list(pool.map(lambda k: _fit_kind(k, corpus, params), kinds))
  else:
    fitted = [_fit_kind(k, corpus, params) for k in kinds]
  summary = {'songs': len(corpus.songs), 'syllables': len(corpus.syllables),
             'notes': len(corpus.pitch), 'unknown_stress_syllables': int(corpus.unknown.sum())}
  return Lexicon(params=params, corpus=summary, kinds=dict(zip(kinds, fitted)))
