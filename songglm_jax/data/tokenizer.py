"""Song <-> compound tokens: one int32 row of named fields per syllable and per note.

Layout of a song: ``[BOS] syllables [EOS] [BOS] notes [EOS]``.

Fields (columns, in this order; see :data:`FIELDS`):
  type      LYRIC or NOTE (or the special itself on special rows)
  syllable  syllable id from the fitted vocabulary (UNK when unseen); NA on notes
  stress    stress-pattern id from the fitted vocabulary (UNK when unknown); NA on notes
  bar       bar index of the note's onset from the start of the song (window); NA on syllables
  position  onset inside the bar on the grid below; NA on syllables
  duration  duration on the grid below, clipped to the length of the note's bar; NA on syllables
  pitch     MIDI pitch 0..127; NA on syllables
  word_id   the syllable index (a note: the syllable it is sung on) -- 2D alignment, dim 1
  phrase_id the phrase index of that syllable -- 2D alignment, dim 2

Every field starts with the same special ids (:data:`SPECIALS`): PAD, BOS, EOS, MASK, LMASK (the
long-span mask), SEP, UNK, and NA ("this field does not apply to this kind of token"). A special
row holds its special id in every field. A real value ``v`` of a field is stored as
``NUM_SPECIAL + v`` (for syllable/stress: ``NUM_SPECIAL +`` vocabulary index).

Time grid: the union of the 64th-note grid (30 ticks) and the 32nd-triplet grid (40 ticks) at 480
ticks per quarter (in every 120 ticks: 0, 30, 40, 60, 80, 90). Positions are grid points inside a
bar (bars up to ``max_bar_ticks``); durations are grid values from 30 ticks up to
``max_bar_ticks``, clipped to the length of the note's own bar. :func:`quantize` puts a song on
this grid (nearest point; an onset that would collide with the previous one moves to the next
point; a duration is cut to the gap before the next onset when it would overlap it), so that
``detokenize(tokenize(song)) == quantize(song)`` exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from typing import Iterable, Optional

import numpy as np

from songglm_jax.music import meter
from songglm_jax.music.song import Song, SongSkip

SPECIALS = ('PAD', 'BOS', 'EOS', 'MASK', 'LMASK', 'SEP', 'UNK', 'NA')
PAD, BOS, EOS, MASK, LMASK, SEP, UNK, NA = range(len(SPECIALS))
NUM_SPECIAL = len(SPECIALS)
LYRIC, NOTE = NUM_SPECIAL, NUM_SPECIAL + 1  # values of the type field

FIELDS = ('type', 'syllable', 'stress', 'bar', 'position', 'duration', 'pitch', 'word_id',
          'phrase_id')
F = dataclasses.make_dataclass('FieldIndex', [(f, int) for f in FIELDS], frozen=True)(
    *range(len(FIELDS)))
"""Column of each field: ``tokens[:, F.pitch]``."""
NOTE_FIELDS = ('bar', 'position', 'duration', 'pitch')

GRID_UNIT = 10  # ticks; every grid point is a multiple
_GRID_PATTERN = np.array([0, 30, 40, 60, 80, 90])  # grid points in each 120 ticks
VOCAB_VERSION = 1


def time_grid(max_ticks: int) -> np.ndarray:
  """All grid points in ``[0, max_ticks]`` (int64, sorted)."""
  blocks = np.arange(0, max_ticks + 120, 120)[:, None] + _GRID_PATTERN[None, :]
  g = blocks.ravel()
  return g[g <= max_ticks]


def _snap(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
  """Index of the nearest grid point to each value (ties go to the lower point)."""
  i = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1)
  lower_closer = values - grid[i - 1] <= grid[i] - values
  return np.where(lower_closer, i - 1, i)


_STRIP = '.,!?;:"\'()[]{}«»“”‘’-_'


def normalize_syllable(text: str) -> str:
  """Vocabulary key of a syllable: lower case, surrounding punctuation stripped."""
  return text.lower().strip().strip(_STRIP)


@dataclasses.dataclass(frozen=True)
class Vocab:
  """Fitted vocabularies of the two open fields and the grid limits (saved as JSON)."""
  syllables: tuple[str, ...]
  stress: tuple[str, ...]
  max_bars: int = 512
  max_bar_ticks: int = 3840
  min_count: int = 2

  def to_json(self) -> str:
    return json.dumps({'version': VOCAB_VERSION, 'fields': FIELDS, 'specials': SPECIALS,
                       **dataclasses.asdict(self)}, indent=1, ensure_ascii=False,
                      sort_keys=True) + '\n'

  @classmethod
  def from_json(cls, text: str, where: str = 'vocab') -> 'Vocab':
    try:
      d = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f'{where}: not JSON ({e})')
    if d.get('version') != VOCAB_VERSION:
      raise ValueError(f'{where}: vocabulary version {d.get("version")!r}, '
                       f'expected {VOCAB_VERSION}')
    if tuple(d.get('fields', ())) != FIELDS or tuple(d.get('specials', ())) != SPECIALS:
      raise ValueError(f'{where}: written for other token fields/specials')
    return cls(syllables=tuple(d['syllables']), stress=tuple(d['stress']),
               max_bars=int(d['max_bars']), max_bar_ticks=int(d['max_bar_ticks']),
               min_count=int(d['min_count']))


class VocabCounter:
  """:func:`fit_vocab` one song at a time: memory holds one count per distinct syllable and
  stress pattern, never the songs (``prepare`` counts while it reads)."""

  def __init__(self):
    self.syllables: collections.Counter = collections.Counter()
    self.stress: collections.Counter = collections.Counter()

  def add(self, song: Song) -> None:
    self.syllables.update(normalize_syllable(t) for t in song.syllables)
    if song.syllable_stress is not None:
      self.stress.update(p for p in song.syllable_stress if p != '?')

  def vocab(self, *, min_count: int = 2, max_bars: int = 512, max_bar_ticks: int = 3840) -> Vocab:
    """The vocabulary of the songs added so far (see :func:`fit_vocab`)."""
    order = lambda c: sorted((k for k, v in c.items() if v >= min_count and k),
                             key=lambda k: (-c[k], k))
    return Vocab(syllables=tuple(order(self.syllables)), stress=tuple(order(self.stress)),
                 max_bars=max_bars, max_bar_ticks=max_bar_ticks, min_count=min_count)


def fit_vocab(songs: Iterable[Song], *, min_count: int = 2, max_bars: int = 512,
              max_bar_ticks: int = 3840) -> Vocab:
  """Syllables seen at least ``min_count`` times and every stress pattern seen (sorted by
  descending count, then text, so the result does not depend on song order)."""
  counter = VocabCounter()
  for song in songs:
    counter.add(song)
  return counter.vocab(min_count=min_count, max_bars=max_bars, max_bar_ticks=max_bar_ticks)


@dataclasses.dataclass
class QuantizeStats:
  onsets_snapped: int = 0
  durations_snapped: int = 0
  durations_clipped: int = 0
  onsets_moved: int = 0
  durations_cut_at_next: int = 0


def quantize(song: Song, max_bar_ticks: int = 3840,
             stats: Optional[QuantizeStats] = None) -> Song:
  """The song with onsets and durations on the token grid (see the module docstring).

  Raises:
    SongSkip: a bar of the song is longer than ``max_bar_ticks`` (reason ``bar_too_long``).
  """
  ts = song.time_signatures
  if meter.bar_lengths(ts).max() > max_bar_ticks:
    raise SongSkip('bar_too_long', f'{song.name}: a bar is longer than {max_bar_ticks} ticks')
  bar, pos = meter.bar_and_position(song.onset, ts)
  pgrid = time_grid(max_bar_ticks)
  pos_q = pgrid[_snap(pos, pgrid)]
  start = meter.bar_start(bar, ts)
  onset = start + pos_q  # may land on the next bar's start: still a valid tick
  if np.any(np.diff(onset) <= 0):  # rare: two notes snapped to one point
    fixed = onset.copy()
    for i in range(1, len(fixed)):
      if fixed[i] <= fixed[i - 1]:
        b, p = meter.bar_and_position(np.array([fixed[i - 1]]), ts)
        nxt = pgrid[np.searchsorted(pgrid, p[0], side='right')]
        fixed[i] = meter.bar_start(b, ts)[0] + nxt
    if stats is not None:
      stats.onsets_moved += int(np.sum(fixed != onset))
    onset = fixed
  dgrid = time_grid(max_bar_ticks)[1:]  # 30 .. max_bar_ticks
  dur = song.duration
  dur_q = dgrid[_snap(dur, dgrid)]
  bar_len = meter.bar_length_at(onset, ts)
  clipped = dur_q > bar_len
  dur_q = np.minimum(dur_q, bar_len)
  gap = np.append(np.diff(onset), np.iinfo(np.int64).max)
  over = dur_q > gap
  if np.any(over):
    under = dgrid[np.maximum(np.searchsorted(dgrid, gap[over], side='right') - 1, 0)]
    dur_q[over] = under
  if stats is not None:
    stats.onsets_snapped += int(np.sum(pos_q != pos))
    stats.durations_snapped += int(np.sum(dgrid[_snap(dur, dgrid)] != dur))
    stats.durations_clipped += int(clipped.sum())
    stats.durations_cut_at_next += int(over.sum())
  # A syllable's lyric event sits on its first note once quantized (the token stream has no
  # separate lyric time).
  return song.replace(onset=onset, offset=onset + dur_q,
                      syllable_onset=onset[song.syllable_first_note])


class Tokenizer:
  """Maps songs to token arrays and back with a fitted :class:`Vocab`."""

  def __init__(self, vocab: Vocab):
    self.vocab = vocab
    self._syl = {s: i for i, s in enumerate(vocab.syllables)}
    self._stress = {s: i for i, s in enumerate(vocab.stress)}
    self.position_grid = time_grid(vocab.max_bar_ticks)
    self.duration_grid = self.position_grid[1:]
    self._pos_index = np.full(vocab.max_bar_ticks // GRID_UNIT + 1, -1, np.int64)
    self._pos_index[self.position_grid // GRID_UNIT] = np.arange(len(self.position_grid))

  @property
  def field_sizes(self) -> dict[str, int]:
    """Vocabulary size of every field, specials included."""
    v = self.vocab
    return {'type': NUM_SPECIAL + 2, 'syllable': NUM_SPECIAL + len(v.syllables),
            'stress': NUM_SPECIAL + len(v.stress), 'bar': NUM_SPECIAL + v.max_bars,
            'position': NUM_SPECIAL + len(self.position_grid),
            'duration': NUM_SPECIAL + len(self.duration_grid), 'pitch': NUM_SPECIAL + 128,
            'word_id': NUM_SPECIAL + 256, 'phrase_id': NUM_SPECIAL + 128}

  def tokenize(self, song: Song, stats: Optional[QuantizeStats] = None) -> np.ndarray:
    """Token rows of a song: int32 ``[S + N + 4, len(FIELDS)]``.

    Raises:
      SongSkip: the song exceeds a cap (``too_many_syllables``, ``too_many_phrases``,
        ``too_many_bars``, ``bar_too_long``); split it with ``phrases.split_windows`` first.
    """
    s, n = song.num_syllables, song.num_notes
    if s > 256:
      raise SongSkip('too_many_syllables', f'{song.name}: {s} syllables > 256')
    if song.num_phrases > 128:
      raise SongSkip('too_many_phrases', f'{song.name}: {song.num_phrases} phrases > 128')
    q = quantize(song, self.vocab.max_bar_ticks, stats)
    bar, pos = meter.bar_and_position(q.onset, q.time_signatures)
    if bar[-1] >= self.vocab.max_bars:
      raise SongSkip('too_many_bars', f'{song.name}: {bar[-1] + 1} bars > {self.vocab.max_bars}')
    out = np.empty((s + n + 4, len(FIELDS)), dtype=np.int32)
    for row, special in ((0, BOS), (s + 1, EOS), (s + 2, BOS), (s + n + 3, EOS)):
      out[row] = special
    lyr = out[1:s + 1]
    lyr[:, F.type] = LYRIC
    lyr[:, F.syllable] = [NUM_SPECIAL + self._syl[k] if k in self._syl else UNK
                          for k in map(normalize_syllable, song.syllables)]
    if song.syllable_stress is None:
      lyr[:, F.stress] = UNK
    else:
      lyr[:, F.stress] = [NUM_SPECIAL + self._stress[p] if p in self._stress else UNK
                          for p in song.syllable_stress]
    lyr[:, F.bar:F.pitch + 1] = NA
    lyr[:, F.word_id] = NUM_SPECIAL + np.arange(s)
    lyr[:, F.phrase_id] = NUM_SPECIAL + song.syllable_phrase
    notes = out[s + 3:s + 3 + n]
    notes[:, F.type] = NOTE
    notes[:, F.syllable] = NA
    notes[:, F.stress] = NA
    notes[:, F.bar] = NUM_SPECIAL + bar
    notes[:, F.position] = NUM_SPECIAL + self._pos_index[pos // GRID_UNIT]
    dur = q.offset - q.onset
    notes[:, F.duration] = NUM_SPECIAL + np.searchsorted(self.duration_grid, dur)
    notes[:, F.pitch] = NUM_SPECIAL + song.pitch
    notes[:, F.word_id] = NUM_SPECIAL + song.note_syllable
    notes[:, F.phrase_id] = NUM_SPECIAL + song.note_phrase
    return out

  def detokenize(self, tokens: np.ndarray, *, time_signatures: Optional[np.ndarray] = None,
                 tempo: float = 120.0, name: str = '', velocity: int = 80) -> Song:
    """The Song of a token array laid out as :meth:`tokenize` writes it.

    Syllable texts are the vocabulary keys ('<unk>' for unknown ids); velocity is constant.

    Raises:
      ValueError: the array is not a song layout or holds values outside a field's range.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] != len(FIELDS):
      raise ValueError(f'detokenize: expected [T, {len(FIELDS)}] tokens, got {tokens.shape}')
    types = tokens[:, F.type]
    lyr, notes = tokens[types == LYRIC], tokens[types == NOTE]
    if len(lyr) == 0 or len(notes) == 0:
      raise ValueError('detokenize: needs at least one syllable and one note')
    ts = meter.DEFAULT_TIME_SIGNATURES if time_signatures is None else time_signatures
    v = lambda a, field: a[:, getattr(F, field)].astype(np.int64) - NUM_SPECIAL
    pos_i, dur_i = v(notes, 'position'), v(notes, 'duration')
    if (pos_i.min() < 0 or pos_i.max() >= len(self.position_grid) or dur_i.min() < 0
        or dur_i.max() >= len(self.duration_grid) or v(notes, 'bar').min() < 0):
      raise ValueError('detokenize: a note has a special or out-of-range bar/position/duration')
    onset = meter.bar_start(v(notes, 'bar'), ts) + self.position_grid[pos_i]
    syl_i = v(lyr, 'syllable')
    texts = tuple(self.vocab.syllables[i] if 0 <= i < len(self.vocab.syllables) else '<unk>'
                  for i in syl_i.tolist())
    stress_i = v(lyr, 'stress')
    stress = tuple(self.vocab.stress[i] if 0 <= i < len(self.vocab.stress) else '?'
                   for i in stress_i.tolist())
    return Song(pitch=v(notes, 'pitch'), onset=onset,
                offset=onset + self.duration_grid[dur_i],
                velocity=np.full(len(notes), velocity), note_syllable=v(notes, 'word_id'),
                syllables=texts, syllable_phrase=v(lyr, 'phrase_id'), syllable_stress=stress,
                tempo=tempo, time_signatures=ts, name=name)


def tokens_to_text(tokens: np.ndarray, vocab: Vocab, limit: int = 40) -> str:
  """A readable rendering of token rows, for logs and debugging."""
  lines = []
  for row in np.asarray(tokens)[:limit]:
    t = int(row[F.type])
    if t < NUM_SPECIAL:
      lines.append(SPECIALS[t])
    elif t == LYRIC:
      i = int(row[F.syllable]) - NUM_SPECIAL
      lines.append(f'syl {vocab.syllables[i] if i >= 0 else SPECIALS[i + NUM_SPECIAL]!r} '
                   f'w{row[F.word_id] - NUM_SPECIAL} p{row[F.phrase_id] - NUM_SPECIAL}')
    else:
      lines.append(f'note bar{row[F.bar] - NUM_SPECIAL} pos{row[F.position] - NUM_SPECIAL} '
                   f'dur{row[F.duration] - NUM_SPECIAL} pitch{row[F.pitch] - NUM_SPECIAL} '
                   f'w{row[F.word_id] - NUM_SPECIAL} p{row[F.phrase_id] - NUM_SPECIAL}')
  return '\n'.join(lines)
