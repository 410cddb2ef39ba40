"""Melodic peaks and the rhythm skeleton: the per-note features of the SMR and SRR lexicons.

Both are computed on the melody's note sequence alone (rests are gaps between notes, never
notes), vectorized over the notes of a song.

Melodic peak (SMR, syllable Stress <-> Melodic peak Relationship), :func:`melodic_peaks`:
  note i is a peak when ``pitch[i] > pitch[i-1]`` and ``pitch[i] >= pitch[i+1]``; the first and
  the last note are never peaks (they lack a neighbour). A plateau after a rise peaks at its first
  note only (the next equal note is not higher than its predecessor). Rests between notes are
  ignored: the neighbours are the previous and the next sung note.

Rhythm skeleton (SRR, syllable Stress <-> Rhythm skeleton Relationship), :func:`rhythm_classes`.
Every note gets one of six classes from three properties:
- **Beats.** Bars come from the song's time-signature map (``music/meter.py``; a map may change
  inside a song and each change starts a new bar). The beat is one denominator unit
  (``meter.beat_lengths``), except in compound meters -- numerator 6, 9, 12, 15, 18, 21 or 24 over a
  denominator of 8 or more -- where it is three such units (a dotted quarter in 6/8), as
  musicians count them. Beats are counted from each bar start; a bar cut short by a change ends
  at the change, which is also the next beat.
- **Length.** A note's length runs from its onset to the next note's onset when the gap after it
  is shorter than an eighth note (240 ticks: articulation, not a rest -- the same threshold as
  the phrase rules in ``music/phrases.py``); after a gap of an eighth or more (a rest), and for
  the last note, the length is the sounding duration ``offset - onset``. The sample corpus has
  many articulation gaps of 30-210 ticks (a quarter sung as 450 ticks), which would otherwise
  blur "long".
- **downbeat**: the onset is exactly on the first beat of a bar (position 0 in the bar).
- **long** ("notably longer than its neighbours"): the note's length is at least ``LONG_RATIO``
  = 2 times the length of each neighbouring note (previous and next; the first and last note
  compare with their one neighbour; a one-note song has no long note). Why a ratio: it is
  scale-free (a half among quarters, a quarter among eighths, an eighth among sixteenths are
  all heard as long) and robust to articulation noise; "longer than both and at least a quarter"
  would call a quarter between two dotted eighths long and a held eighth among sixteenths not.
- **syncopated**: the onset is off the beat (not a multiple of the beat from the bar start) and
  the note is held across the next beat: ``onset + length > next beat``. A note ending exactly
  on the beat is not syncopated. A downbeat is on a beat, so it is never syncopated.
- class: downbeat+long, long+syncopated, downbeat, long, syncopated, else normal (the six
  combinations that can occur).

The public SongGLM code differs (for the record, not followed here): its "long" is the longest
note of each bar, its downbeats are beats 1 and 3 of a hard-coded 4/4 bar, and its syncopations
are a fixed list of 4/4 grid positions; notes shorter than a sixteenth get no class there.
"""

from __future__ import annotations

import numpy as np

from songglm_jax.music import meter
from songglm_jax.music.song import Song

KINDS = ('smr', 'srr')

NORMAL, DOWNBEAT, LONG, SYNCOPATED, DOWNBEAT_LONG, LONG_SYNCOPATED = range(6)
RHYTHM_CLASS_NAMES = ('normal', 'downbeat', 'long', 'syncopated', 'downbeat+long',
                      'long+syncopated')
PEAK_NAMES = ('-', 'peak')

LONG_RATIO = 2
REST_MIN_TICKS = meter.TPQ // 2  # a gap of an eighth note or more is a rest
_COMPOUND_NUMERATORS = (6, 9, 12, 15, 18, 21, 24)


def melodic_peaks(pitch: np.ndarray) -> np.ndarray:
  """Peak flags of a melody: bool ``[N]`` (the rule of the module docstring)."""
  pitch = np.asarray(pitch)
  if pitch.ndim != 1:
    raise ValueError(f'melodic_peaks: expected a 1-D pitch array, got shape {pitch.shape}')
  peaks = np.zeros(len(pitch), dtype=bool)
  if len(pitch) >= 3:
    mid = pitch[1:-1]
    peaks[1:-1] = (mid > pitch[:-2]) & (mid >= pitch[2:])
  return peaks


def beat_lengths(time_signatures: np.ndarray) -> np.ndarray:
  """Counted beat in ticks of each row of a time-signature map: ``[K]`` int64 (compound meters
  count dotted beats; see the module docstring)."""
  ts = np.asarray(time_signatures, dtype=np.int64)
  beat = meter.beat_lengths(ts)
  compound = np.isin(ts[:, 1], _COMPOUND_NUMERATORS) & (ts[:, 2] >= 8)
  return np.where(compound, 3 * beat, beat)


def note_lengths(onset: np.ndarray, offset: np.ndarray,
                 rest_min_ticks: int = REST_MIN_TICKS) -> np.ndarray:
  """Length of each note in ticks, articulation gaps absorbed: int64 ``[N]``."""
  onset = np.asarray(onset, dtype=np.int64)
  length = np.asarray(offset, dtype=np.int64) - onset
  if len(onset) > 1:
    ioi = np.diff(onset)
    gap = onset[1:] - np.asarray(offset, dtype=np.int64)[:-1]
    length[:-1] = np.where(gap < rest_min_ticks, ioi, length[:-1])
  return length


def long_notes(length: np.ndarray, ratio: float = LONG_RATIO) -> np.ndarray:
  """True where a note is at least ``ratio`` times as long as each neighbour: bool ``[N]``."""
  length = np.asarray(length, dtype=np.float64)
  n = len(length)
  if n < 2:
    return np.zeros(n, dtype=bool)
  big = np.full(n, -np.inf)
  big[1:] = length[:-1]  # previous neighbour
  longest_neighbour = big.copy()
  longest_neighbour[:-1] = np.maximum(big[:-1], length[1:])  # and the next one
  return length >= ratio * longest_neighbour


def rhythm_flags(onset: np.ndarray, offset: np.ndarray, time_signatures: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Downbeat, long and syncopated flags of each note: three bool ``[N]`` arrays."""
  onset = np.asarray(onset, dtype=np.int64)
  ts = meter.validate_time_signatures(time_signatures)
  length = note_lengths(onset, offset)
  bar, pos = meter.bar_and_position(onset, ts)
  beat = beat_lengths(ts)[meter.segment_of(onset, ts)]
  bar_start = onset - pos
  bar_end = meter.bar_start(bar + 1, ts)
  next_beat = np.minimum(bar_start + (pos // beat + 1) * beat, bar_end)
  downbeat = pos == 0
  off_beat = pos % beat != 0
  syncopated = off_beat & (onset + length > next_beat)
  return downbeat, long_notes(length), syncopated


def rhythm_classes(song: Song) -> np.ndarray:
  """Rhythm-skeleton class of every note (``NORMAL`` .. ``LONG_SYNCOPATED``): int8 ``[N]``."""
  downbeat, long, syncopated = rhythm_flags(song.onset, song.offset, song.time_signatures)
  cls = np.full(song.num_notes, NORMAL, dtype=np.int8)
  cls[syncopated] = SYNCOPATED
  cls[downbeat] = DOWNBEAT
  cls[long] = LONG
  cls[downbeat & long] = DOWNBEAT_LONG
  cls[syncopated & long] = LONG_SYNCOPATED
  return cls


def feature_names(kind: str) -> tuple[str, ...]:
  """Readable name of each feature value of a lexicon kind ('smr' or 'srr')."""
  if kind == 'smr':
    return PEAK_NAMES
  if kind == 'srr':
    return RHYTHM_CLASS_NAMES
  raise ValueError(f'kind: expected one of {KINDS}, got {kind!r}')


def note_features(song: Song, kind: str) -> np.ndarray:
  """Per-note feature of a lexicon kind: int8 ``[N]`` (peak flag 0/1 for 'smr', rhythm class
  0..5 for 'srr')."""
  if kind == 'smr':
    return melodic_peaks(song.pitch).astype(np.int8)
  if kind == 'srr':
    return rhythm_classes(song)
  raise ValueError(f'kind: expected one of {KINDS}, got {kind!r}')
