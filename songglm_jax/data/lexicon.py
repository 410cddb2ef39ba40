"""The harmonized n-gram lexicon (SMR and SRR): the value, its JSON file, spans of songs.

SongGLM's word-level objective blanks out note spans whose melody relates to the syllables'
stress in a stable way. A lexicon holds, for each kind --
- ``'smr'``: syllable Stress <-> Melodic peak Relationship, note feature = peak flag;
- ``'srr'``: syllable Stress <-> Rhythm skeleton Relationship, note feature = rhythm class
  (features: ``music/skeleton.py``) --
the scored note n-grams of lengths 1..N (a note n-gram is a run of n consecutive syllables'
note-feature groups; a group is the tuple of the features of a syllable's notes). Scores, ranks
and every choice made in them are documented in ``data/lexicon_fit.py``; encodings and span rules
in ``data/lexicon_ngrams.py``; fitting in ``data/lexicon_build.py``.

Spans (:func:`song_spans`): the occurrences in a song of the *selected* n-grams -- length in
``min_span_n..max_span_n`` (default 1..4) and rank <= ``max_rank`` (default 0.3) -- minus every
span covered by a longer selected span, as int32 ``[K, 2]`` rows ``[start, end)`` in note index
space, sorted. Spans need only the melody (no stress), so a lexicon fitted on one corpus serves
any other.

File (:func:`save_lexicon` / :func:`load_lexicon`): plain JSON, never pickle, written atomically::

  {"format": "songglm_jax.lexicon", "version": 1,
   "params": {max_n, min_span_n, max_span_n, max_rank, lyric_mean, unknown_stress, score, keep_top,
              stress_mode},
   "corpus": {songs, syllables, notes, unknown_stress_syllables},
   "kinds": {"smr" | "srr": {
     "feature_names": [...],
     "lengths": [{n, windows, distinct, selected, tied_scores}, ...],
     "stats": {units, coverage, spans_per_song, score_comparison: {...}},
     "ngrams": [{n, groups, features, count, t, c, lyric_t, s, rank, selected, lyrics, examples},
                ...]}}}

``ngrams`` holds every selected n-gram and, for inspection, the ``keep_top`` best of every length;
``groups`` are the feature values (``features`` the same, readable); ``lyrics`` the most frequent
co-occurring stress n-grams with their counts; ``examples`` two occurrences (song, syllables,
stress, pitches). ``features`` is derived and not read back.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
from typing import Any, Optional, Sequence, Union

import numpy as np

from songglm_jax import atomic
from songglm_jax.data import lexicon_fit, lexicon_ngrams
from songglm_jax.music import skeleton
from songglm_jax.music.song import Song

FORMAT = 'songglm_jax.lexicon'
VERSION = 1
KINDS = skeleton.KINDS


@dataclasses.dataclass(frozen=True)
class LexiconParams:
  """How a lexicon was fitted (see ``data/lexicon_fit.py`` for the meaning of each choice)."""
  max_n: int = 12
  min_span_n: int = 1
  max_span_n: int = 4
  max_rank: float = 0.3
  lyric_mean: str = 'distinct'
  unknown_stress: str = 'skip'
  score: str = 'faithful'
  keep_top: int = 20
  stress_mode: Optional[str] = None

  def __post_init__(self):
    ints = {'max_n': 1, 'min_span_n': 1, 'max_span_n': 1, 'keep_top': 0}
    for k, low in ints.items():
      v = getattr(self, k)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f'lexicon params.{k}: expected an integer >= {low}, got {v!r}')
    if not self.min_span_n <= self.max_span_n <= self.max_n:
      raise ValueError(f'lexicon params: need min_span_n <= max_span_n <= max_n, got '
                       f'{self.min_span_n}, {self.max_span_n}, {self.max_n}')
    r = self.max_rank
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
      raise ValueError(f'lexicon params.max_rank: expected a number in (0, 1], got {r!r}')
    for k, allowed in (('lyric_mean', lexicon_fit.LYRIC_MEANS),
                       ('unknown_stress', lexicon_fit.UNKNOWN_STRESS),
                       ('score', lexicon_fit.SCORES)):
      if getattr(self, k) not in allowed:
        raise ValueError(f'lexicon params.{k}: expected one of {allowed}, '
                         f'got {getattr(self, k)!r}')
    if self.stress_mode is not None and not isinstance(self.stress_mode, str):
      raise ValueError(f'lexicon params.stress_mode: expected a string or null, '
                       f'got {self.stress_mode!r}')


@dataclasses.dataclass(frozen=True)
class Example:
  """One occurrence of an n-gram: song name, syllables, stress patterns, pitch names."""
  song: str
  syllables: str
  stress: str
  pitches: str


@dataclasses.dataclass(frozen=True)
class NGram:
  """One scored note n-gram; ``groups`` holds n feature groups (tuples of feature values)."""
  n: int
  groups: tuple[tuple[int, ...], ...]
  count: int
  t: float
  c: float
  lyric_t: float
  s: float
  rank: float
  selected: bool
  lyrics: tuple[tuple[str, int], ...] = ()
  examples: tuple[Example, ...] = ()


@dataclasses.dataclass(frozen=True)
class KindLexicon:
  """The lexicon of one kind: stored n-grams (sorted by length, then rank) and statistics."""
  kind: str
  ngrams: tuple[NGram, ...]
  lengths: tuple[dict, ...] = ()
  stats: dict = dataclasses.field(default_factory=dict)

  @property
  def feature_names(self) -> tuple[str, ...]:
    return skeleton.feature_names(self.kind)

  def features_text(self, ngram: NGram) -> str:
    """Readable note features, syllables separated by ' | ': e.g. ``'peak | -,-'``."""
    names = self.feature_names
    return ' | '.join(','.join(names[f] for f in g) for g in ngram.groups)

  @functools.cached_property
  def matcher(self) -> lexicon_ngrams.Matcher:
    return lexicon_ngrams.Matcher([g.groups for g in self.ngrams if g.selected],
                                  len(self.feature_names))


@dataclasses.dataclass(frozen=True)
class Lexicon:
  """Both kinds' lexicons with the parameters and corpus summary they were fitted with."""
  params: LexiconParams
  corpus: dict
  kinds: dict


# ---- spans ---------------------------------------------------------------------------------------
SongOrArrays = Union[Song, tuple]


def _features(kind: str, song_or_arrays: SongOrArrays) -> tuple[np.ndarray, np.ndarray]:
  if isinstance(song_or_arrays, Song):
    return skeleton.note_features(song_or_arrays, kind), song_or_arrays.note_syllable
  try:
    features, note_syllable = song_or_arrays
  except (TypeError, ValueError):
    raise ValueError('song_spans: expected a Song or a pair (note_features [N], '
                     f'note_syllable [N]), got {type(song_or_arrays).__name__}') from None
  features, note_syllable = np.asarray(features), np.asarray(note_syllable)
  if features.shape != note_syllable.shape or features.ndim != 1 or len(features) == 0:
    raise ValueError(f'song_spans: note_features {features.shape} and note_syllable '
                     f'{note_syllable.shape} must be equal non-empty 1-D shapes')
  d = np.diff(note_syllable)
  if note_syllable[0] != 0 or np.any((d != 0) & (d != 1)):
    raise ValueError('song_spans: note_syllable must start at 0 and step by 0 or 1')
  if features.min() < 0 or features.max() >= len(skeleton.feature_names(kind)):
    raise ValueError(f'song_spans: {kind} note features must lie in '
                     f'0..{len(skeleton.feature_names(kind)) - 1}')
  return features, note_syllable


def song_spans(lex: Lexicon, kind: str, song_or_arrays: SongOrArrays) -> np.ndarray:
  """Harmonized n-gram spans of one song: int32 ``[K, 2]`` ``[start, end)`` note indices.

  Args:
    lex: a fitted or loaded lexicon.
    kind: 'smr' or 'srr'.
    song_or_arrays: a Song, or ``(note_features, note_syllable)`` with the kind's per-note
      features (``skeleton.note_features``) and the syllable index of each note.
  """
  if kind not in lex.kinds:
    raise ValueError(f'song_spans: kind {kind!r} not in the lexicon ({sorted(lex.kinds)})')
  features, note_syllable = _features(kind, song_or_arrays)
  s = int(note_syllable[-1]) + 1
  matcher = lex.kinds[kind].matcher
  units = matcher.units(features, note_syllable, s)
  start, end = lexicon_ngrams.spans_from_selection(
      matcher.selection(units, np.full(s, s, dtype=np.int64)))
  first = np.searchsorted(note_syllable, np.arange(s + 1), side='left')
  return np.stack([first[start], first[end]], axis=1).astype(np.int32).reshape(-1, 2)


def covered_notes(spans: np.ndarray, num_notes: int) -> np.ndarray:
  """bool ``[num_notes]``: the note lies inside at least one span."""
  mark = np.zeros(num_notes + 1, dtype=np.int64)
  np.add.at(mark, spans[:, 0], 1)
  np.add.at(mark, spans[:, 1], -1)
  return np.cumsum(mark[:-1]) > 0


def lexicon_coverage(lex: Lexicon, songs: Sequence[Song]) -> dict[str, float]:
  """Fraction of the songs' note tokens inside selected spans, per kind: ``{'smr': x, ...}``."""
  total = sum(song.num_notes for song in songs)
  out = {}
  for kind in lex.kinds:
    inside = sum(int(covered_notes(song_spans(lex, kind, song), song.num_notes).sum())
                 for song in songs)
    out[kind] = inside / total if total else 0.0
  return out


def score_comparison(lex: Lexicon) -> dict[str, dict]:
  """Per kind, how the spans of the fitting corpus differ under the other score (for a faithful
  lexicon: the public code's collapsed ``t = sqrt(T p / (1 - p))``), as measured at fit time:
  ``{kind: {other_score, spans, spans_other, only_this, only_other, differ, songs_differ,
  selected_ngrams_differ}}``."""
  return {kind: dict(k.stats.get('score_comparison', {})) for kind, k in lex.kinds.items()}


# ---- JSON ----------------------------------------------------------------------------------------
def _ngram_doc(kl: KindLexicon, g: NGram) -> dict:
  return {'n': g.n, 'groups': [list(x) for x in g.groups], 'features': kl.features_text(g),
          'count': g.count, 't': g.t, 'c': g.c, 'lyric_t': g.lyric_t, 's': g.s, 'rank': g.rank,
          'selected': g.selected, 'lyrics': [[text, n] for text, n in g.lyrics],
          'examples': [dataclasses.asdict(e) for e in g.examples]}


def dumps_lexicon(lex: Lexicon) -> str:
  """The JSON text of a lexicon (one n-gram per line; deterministic)."""
  dump = lambda x: json.dumps(x, sort_keys=True, allow_nan=False, ensure_ascii=False)
  head = {'format': FORMAT, 'version': VERSION, 'params': dataclasses.asdict(lex.params),
          'corpus': lex.corpus}
  lines = ['{' + dump(head)[1:-1] + ',', '"kinds": {']
  for i, kind in enumerate(sorted(lex.kinds)):
    kl = lex.kinds[kind]
    meta = {'feature_names': list(kl.feature_names), 'lengths': list(kl.lengths),
            'stats': kl.stats}
    lines.append(f'{dump(kind)}: {{' + dump(meta)[1:-1] + ', "ngrams": [')
    rows = [dump(_ngram_doc(kl, g)) for g in kl.ngrams]
    lines.append(',\n'.join(rows))
    lines.append(']}' + (',' if i < len(lex.kinds) - 1 else ''))
  lines.append('}}')
  return '\n'.join(lines) + '\n'


def save_lexicon(lex: Lexicon, path: Union[str, os.PathLike]) -> None:
  """Write the lexicon as JSON, atomically (temporary file in the same folder, then rename)."""
  atomic.write_text(path, dumps_lexicon(lex))


def _need(where: str, obj: Any, key: str, types, check=None) -> Any:
  if not isinstance(obj, dict) or key not in obj:
    raise ValueError(f'{where}: missing field {key!r}')
  v = obj[key]
  ok = isinstance(v, types) and (bool in _tuple(types) or not isinstance(v, bool))
  if ok and check is not None:
    ok = check(v)
  if not ok:
    raise ValueError(f'{where}.{key}: unexpected value {str(v)[:80]!r}')
  return v


def _tuple(types) -> tuple:
  return types if isinstance(types, tuple) else (types,)


_NUM = (int, float)
_COMPARISON_FIELDS = ('other_score', 'spans', 'spans_other', 'only_this', 'only_other', 'differ',
                      'songs_differ', 'selected_ngrams_differ')


def _load_ngram(where: str, d: dict, num_values: int) -> NGram:
  n = _need(where, d, 'n', int, lambda v: v >= 1)
  groups = _need(where, d, 'groups', list, lambda v: len(v) == n and all(
      isinstance(g, list) and g and all(isinstance(f, int) and not isinstance(f, bool)
                                        and 0 <= f < num_values for f in g) for g in v))
  floats = {k: float(_need(where, d, k, _NUM, math.isfinite)) for k in ('t', 'c', 'lyric_t', 's')}
  lyrics = _need(where, d, 'lyrics', list, lambda v: all(
      isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) and isinstance(x[1], int)
      for x in v))
  examples = _need(where, d, 'examples', list, lambda v: all(
      isinstance(e, dict) and set(e) == {f.name for f in dataclasses.fields(Example)}
      and all(isinstance(x, str) for x in e.values()) for e in v))
  return NGram(n=n, groups=tuple(tuple(g) for g in groups),
               count=_need(where, d, 'count', int, lambda v: v >= 1),
               rank=float(_need(where, d, 'rank', _NUM, lambda v: 0 < v <= 1)),
               selected=_need(where, d, 'selected', bool), lyrics=tuple((a, b) for a, b in lyrics),
               examples=tuple(Example(**e) for e in examples), **floats)


def loads_lexicon(text: str, where: str = 'lexicon') -> Lexicon:
  """Parse and validate lexicon JSON text (``ValueError`` naming the bad field otherwise)."""
  try:
    doc = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f'{where}: not valid JSON ({e})') from None
  if not isinstance(doc, dict) or doc.get('format') != FORMAT:
    raise ValueError(f'{where}: not a songglm_jax lexicon (field "format" != {FORMAT!r})')
  if doc.get('version') != VERSION:
    raise ValueError(f'{where}: lexicon format version {doc.get("version")!r}, this code reads '
                     f'version {VERSION}')
  p = _need(where, doc, 'params', dict)
  names = {f.name for f in dataclasses.fields(LexiconParams)}
  if set(p) != names:
    raise ValueError(f'{where}.params: expected fields {sorted(names)}, got {sorted(p)}')
  try:
    params = LexiconParams(**p)
  except ValueError as e:
    raise ValueError(f'{where}: {e}') from None
  corpus = _need(where, doc, 'corpus', dict)
  kinds_doc = _need(where, doc, 'kinds', dict, lambda v: set(v) <= set(KINDS) and v)
  kinds = {}
  for kind, kd in kinds_doc.items():
    kw = f'{where}.kinds.{kind}'
    num_values = len(skeleton.feature_names(kind))
    _need(kw, kd, 'feature_names', list, lambda v: tuple(v) == skeleton.feature_names(kind))
    lengths = _need(kw, kd, 'lengths', list, lambda v: all(isinstance(x, dict) for x in v))
    stats = _need(kw, kd, 'stats', dict)
    if 'coverage' in stats:
      _need(f'{kw}.stats', stats, 'coverage', _NUM, lambda v: 0 <= v <= 1)
    if 'score_comparison' in stats:
      cmp = _need(f'{kw}.stats', stats, 'score_comparison', dict)
      for key in _COMPARISON_FIELDS:
        _need(f'{kw}.stats.score_comparison', cmp, key, str if key == 'other_score' else int)
    rows = _need(kw, kd, 'ngrams', list)
    ngrams = tuple(_load_ngram(f'{kw}.ngrams[{i}]', d, num_values) for i, d in enumerate(rows))
    for i, g in enumerate(ngrams):
      if g.selected and not params.min_span_n <= g.n <= params.max_span_n:
        raise ValueError(f'{kw}.ngrams[{i}]: selected n-gram of length {g.n} outside '
                         f'[min_span_n, max_span_n]')
    kinds[kind] = KindLexicon(kind=kind, ngrams=ngrams, lengths=tuple(lengths), stats=stats)
  return Lexicon(params=params, corpus=corpus, kinds=kinds)


def load_lexicon(path: Union[str, os.PathLike]) -> Lexicon:
  """Read a lexicon written by :func:`save_lexicon` (``ValueError`` for a bad path or file)."""
  try:
    text = pathlib.Path(path).read_text(encoding='utf-8')
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f'{path}: cannot read lexicon ({e.__class__.__name__}: '
                     f'{getattr(e, "strerror", None) or e})') from None
  return loads_lexicon(text, where=str(path))
