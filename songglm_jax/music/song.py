"""The ``Song`` value: a monophonic melody aligned to syllables, as NumPy arrays.

A song has N notes and S syllables. Every note is sung on exactly one syllable
(``note_syllable``), every syllable on one or more consecutive notes, and every syllable belongs to
one phrase (``syllable_phrase``). These two maps are the 2D alignment (word id = syllable index,
phrase id = phrase index) that the tokenizer and the model use. Ticks are normalised to
``TPQ`` = 480 per quarter note.

Invariants, checked on construction (a violation raises one ``ValueError`` naming the field):
- ``pitch``, ``onset``, ``offset``, ``velocity``, ``note_syllable``: 1-D, length N >= 1;
  pitch in 0..127, velocity in 1..127, onset >= 0, onsets strictly increasing, offset > onset.
- ``note_syllable`` starts at 0, ends at S - 1 and steps by 0 or 1 (so every syllable has a note).
- ``syllables``: S strings; ``syllable_onset``: S ticks, each at or before the syllable's first
  note and after the previous syllable's last onset (it defaults to the first note's onset).
- ``syllable_phrase`` starts at 0 and steps by 0 or 1.
- ``syllable_stress`` is None (not computed) or S stress-pattern strings (see ``music/stress.py``).
- ``tempo`` (quarter notes per minute) > 0; ``time_signatures`` a map as in ``music/meter.py``.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Optional

import numpy as np

from songglm_jax.music import meter

TPQ = meter.TPQ


class SongSkip(ValueError):
  """A song (or file) that cannot be used; ``reason`` is a short stable key for report.json.

  ``str(error)`` is the human-readable detail. Readers and ``prepare`` raise this for bad input so
  that one bad file is counted and skipped instead of stopping the run.
  """

  def __init__(self, reason: str, detail: str = ''):
    super().__init__(detail or reason)
    self.reason = reason


def clean_lyric(text: str) -> str:
  """A lyric syllable as stored in a Song: NFC-normalised, control characters and surrounding
  whitespace removed, inner whitespace collapsed to one space. May return ''."""
  text = unicodedata.normalize('NFC', str(text))
  text = ''.join(ch for ch in text if unicodedata.category(ch)[0] != 'C')
  return ' '.join(text.split())


def _array(name: str, value, dtype) -> np.ndarray:
  arr = np.asarray(value)
  if arr.ndim != 1:
    raise ValueError(f'Song.{name}: expected a 1-D array, got shape {arr.shape}')
  if arr.size and not np.issubdtype(arr.dtype, np.integer):
    if not np.all(np.equal(np.mod(arr, 1), 0)):
      raise ValueError(f'Song.{name}: expected integers')
  out = arr.astype(dtype)
  out.setflags(write=False)
  return out


def _steps_by_0_or_1(name: str, arr: np.ndarray) -> None:
  if arr[0] != 0:
    raise ValueError(f'Song.{name}: must start at 0, starts at {arr[0]}')
  d = np.diff(arr)
  if np.any((d != 0) & (d != 1)):
    i = int(np.flatnonzero((d != 0) & (d != 1))[0])
    raise ValueError(f'Song.{name}: must step by 0 or 1; at index {i + 1} it goes '
                     f'{arr[i]} -> {arr[i + 1]}')


@dataclasses.dataclass(frozen=True, eq=False)
class Song:
  """An aligned melody; see the module docstring for the invariants."""
  pitch: np.ndarray
  onset: np.ndarray
  offset: np.ndarray
  velocity: np.ndarray
  note_syllable: np.ndarray
  syllables: tuple[str, ...]
  syllable_phrase: np.ndarray
  syllable_onset: Optional[np.ndarray] = None
  syllable_stress: Optional[tuple[str, ...]] = None
  tempo: float = 120.0
  time_signatures: np.ndarray = dataclasses.field(
      default_factory=lambda: meter.DEFAULT_TIME_SIGNATURES.copy())
  name: str = ''

  def __post_init__(self):
    put = lambda k, v: object.__setattr__(self, k, v)  # frozen dataclass
    put('pitch', _array('pitch', self.pitch, np.int32))
    put('onset', _array('onset', self.onset, np.int64))
    put('offset', _array('offset', self.offset, np.int64))
    put('velocity', _array('velocity', self.velocity, np.int32))
    put('note_syllable', _array('note_syllable', self.note_syllable, np.int32))
    put('syllable_phrase', _array('syllable_phrase', self.syllable_phrase, np.int32))
    put('syllables', tuple(str(s) for s in self.syllables))
    n = len(self.pitch)
    if n == 0:
      raise ValueError('Song: has no notes')
    for k in ('onset', 'offset', 'velocity', 'note_syllable'):
      if len(getattr(self, k)) != n:
        raise ValueError(f'Song.{k}: length {len(getattr(self, k))}, expected {n} (one per note)')
    if self.pitch.min() < 0 or self.pitch.max() > 127:
      raise ValueError('Song.pitch: must be in 0..127')
    if self.velocity.min() < 1 or self.velocity.max() > 127:
      raise ValueError('Song.velocity: must be in 1..127')
    if self.onset[0] < 0:
      raise ValueError('Song.onset: must be >= 0')
    if np.any(np.diff(self.onset) <= 0):
      raise ValueError('Song.onset: must be strictly increasing (one melody note at a time)')
    if np.any(self.offset <= self.onset):
      raise ValueError('Song.offset: every note must end after it starts')
    s = len(self.syllables)
    if s == 0:
      raise ValueError('Song: has no syllables')
    _steps_by_0_or_1('note_syllable', self.note_syllable)
    if self.note_syllable[-1] != s - 1:
      raise ValueError(f'Song.note_syllable: ends at {self.note_syllable[-1]} but there are {s} '
                       'syllables (every syllable needs at least one note)')
    if len(self.syllable_phrase) != s:
      raise ValueError(f'Song.syllable_phrase: length {len(self.syllable_phrase)}, expected {s}')
    _steps_by_0_or_1('syllable_phrase', self.syllable_phrase)
    first = self.syllable_first_note
    if self.syllable_onset is None:
      put('syllable_onset', _array('syllable_onset', self.onset[first], np.int64))
    else:
      put('syllable_onset', _array('syllable_onset', self.syllable_onset, np.int64))
      if len(self.syllable_onset) != s:
        raise ValueError(f'Song.syllable_onset: length {len(self.syllable_onset)}, expected {s}')
      if np.any(self.syllable_onset > self.onset[first]):
        raise ValueError("Song.syllable_onset: a syllable starts after its first note")
      last_prev = self.onset[first[1:] - 1]
      if np.any(self.syllable_onset[1:] <= last_prev) or self.syllable_onset[0] < 0:
        raise ValueError("Song.syllable_onset: a syllable starts before the previous "
                         "syllable's last note")
    if self.syllable_stress is not None:
      put('syllable_stress', tuple(str(x) for x in self.syllable_stress))
      if len(self.syllable_stress) != s:
        raise ValueError(f'Song.syllable_stress: length {len(self.syllable_stress)}, '
                         f'expected {s}')
    if not np.isfinite(self.tempo) or self.tempo <= 0:
      raise ValueError(f'Song.tempo: must be a positive number, got {self.tempo}')
    put('tempo', float(self.tempo))
    ts = meter.validate_time_signatures(self.time_signatures)
    ts.setflags(write=False)
    put('time_signatures', ts)
    put('name', str(self.name))

  # ---- derived views -------------------------------------------------------------------------
  @property
  def num_notes(self) -> int:
    return len(self.pitch)

  @property
  def num_syllables(self) -> int:
    return len(self.syllables)

  @property
  def num_phrases(self) -> int:
    return int(self.syllable_phrase[-1]) + 1

  @property
  def duration(self) -> np.ndarray:
    return self.offset - self.onset

  @property
  def syllable_first_note(self) -> np.ndarray:
    """Index of each syllable's first note: ``[S]``."""
    return np.searchsorted(self.note_syllable, np.arange(len(self.syllables)), side='left')

  @property
  def notes_per_syllable(self) -> np.ndarray:
    return np.bincount(self.note_syllable, minlength=len(self.syllables))

  @property
  def note_phrase(self) -> np.ndarray:
    """Phrase id of every note (the phrase of the syllable it is sung on): ``[N]``."""
    return self.syllable_phrase[self.note_syllable]

  def replace(self, **changes) -> 'Song':
    return dataclasses.replace(self, **changes)

  def window(self, syl_start: int, syl_end: int) -> 'Song':
    """The syllables ``[syl_start, syl_end)`` and their notes as a song of their own.

    Time is shifted so that the window starts at the bar that holds its first syllable (its bar
    numbers then start at 0 and positions inside bars are unchanged); phrase ids restart at 0.
    """
    if not 0 <= syl_start < syl_end <= self.num_syllables:
      raise ValueError(f'Song.window: bad syllable range [{syl_start}, {syl_end}) of '
                       f'{self.num_syllables}')
    first = self.syllable_first_note
    n0 = int(first[syl_start])
    n1 = int(first[syl_end]) if syl_end < self.num_syllables else self.num_notes
    start_tick = int(min(self.syllable_onset[syl_start], self.onset[n0]))
    bar, _ = meter.bar_and_position(np.array([start_tick]), self.time_signatures)
    shift = int(meter.bar_start(bar, self.time_signatures)[0])
    ts = self.time_signatures
    k = int(meter.segment_of(np.array([shift]), ts)[0])
    new_ts = ts[k:].copy()
    new_ts[:, 0] -= shift
    new_ts[0, 0] = 0
    phrases = self.syllable_phrase[syl_start:syl_end]
    stress = None if self.syllable_stress is None else self.syllable_stress[syl_start:syl_end]
    return Song(pitch=self.pitch[n0:n1], onset=self.onset[n0:n1] - shift,
                offset=self.offset[n0:n1] - shift, velocity=self.velocity[n0:n1],
                note_syllable=self.note_syllable[n0:n1] - syl_start,
                syllables=self.syllables[syl_start:syl_end],
                syllable_phrase=phrases - phrases[0],
                syllable_onset=self.syllable_onset[syl_start:syl_end] - shift,
                syllable_stress=stress, tempo=self.tempo, time_signatures=new_ts,
                name=self.name)

  def same_as(self, other: 'Song', *, check_name: bool = False,
              check_velocity: bool = True) -> bool:
    """True when both songs hold the same notes, syllables, alignment and meter."""
    arrays = ['pitch', 'onset', 'offset', 'note_syllable', 'syllable_phrase', 'syllable_onset',
              'time_signatures']
    if check_velocity:
      arrays.append('velocity')
    if any(not np.array_equal(getattr(self, k), getattr(other, k)) for k in arrays):
      return False
    if self.syllables != other.syllables or abs(self.tempo - other.tempo) > 1e-6 * self.tempo:
      return False
    return not check_name or self.name == other.name

  def __repr__(self) -> str:
    return (f'Song(name={self.name!r}, notes={self.num_notes}, syllables={self.num_syllables}, '
            f'phrases={self.num_phrases}, tempo={self.tempo:g}, '
            f'time_signatures={self.time_signatures.tolist()})')
