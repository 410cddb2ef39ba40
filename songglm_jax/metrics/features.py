"""Per-song features of the objective metrics (SongMASS / TeleMelody / SongGLM), vectorized.

Every feature is computed from a song's notes and syllables, ticks at 480 per quarter note
(``music.song.TPQ``; the readers normalise to it). For a set of songs the notes are concatenated
and each feature is one ``np.bincount`` / reduction over (song, bin) ids, so a set of any size is
a handful of array operations.

- **A** (alignment histogram): for each syllable, the number of notes sung on it, counted into 6
  bins for 1, 2, 3, 4, 5 and >= 6 notes. Raw counts, not normalised. (A syllable without notes
  cannot occur in a ``Song``; the reader drops such syllables.)
- **PCH** (pitch-class histogram): 12 bins of ``pitch % 12`` divided by the number of notes.
- **IOI**: the mean inter-onset interval in ticks, ``mean(diff(sort(onset)))``; 0 for one note.
- **DD** (duration histogram): the fraction of notes whose duration equals each of the 69
  :data:`DURATION_CLASSES` (``30 k`` ticks for k = 1..64 and the triplet durations 40, 80, 160,
  320, 640, sorted); a duration that matches no class counts in no bin (the row may sum to < 1).
- **MD series**: the pitch of every note repeated ``duration // MD_UNIT`` times (``MD_UNIT`` =
  10 ticks, the gcd of the duration classes), minus the series' mean. A note shorter than 10
  ticks contributes nothing. :func:`md_runs` gives the same series run-length encoded, which is
  what the DTW of ``metrics/distance.py`` works on.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from songglm_jax.music.song import Song

ALIGNMENT_BINS = 6
PITCH_CLASSES = 12
DURATION_CLASSES = np.array(sorted(set(30 * k for k in range(1, 65)) | {40, 80, 160, 320, 640}),
                            dtype=np.int64)
MD_UNIT = math.gcd(*DURATION_CLASSES.tolist())  # 10 ticks
FEATURES = ('A', 'PCH', 'IOI', 'DD')
FEATURE_SIZES = {'A': ALIGNMENT_BINS, 'PCH': PITCH_CLASSES, 'IOI': 1, 'DD': len(DURATION_CLASSES)}

assert len(DURATION_CLASSES) == 69 and MD_UNIT == 10


# ---- one song ------------------------------------------------------------------------------
def alignment_histogram(song: Song) -> np.ndarray:
  """A: float64 ``[6]`` raw counts of syllables with 1, 2, 3, 4, 5 and >= 6 notes."""
  per_syllable = np.bincount(song.note_syllable, minlength=song.num_syllables)
  per_syllable = per_syllable[per_syllable > 0]
  return np.bincount(np.minimum(per_syllable, ALIGNMENT_BINS) - 1,
                     minlength=ALIGNMENT_BINS).astype(np.float64)


def pitch_class_histogram(song: Song) -> np.ndarray:
  """PCH: float64 ``[12]``, fraction of notes in each pitch class (sums to 1)."""
  return np.bincount(song.pitch % PITCH_CLASSES, minlength=PITCH_CLASSES) / song.num_notes


def mean_ioi(song: Song) -> float:
  """IOI: mean inter-onset interval in ticks (0.0 for a one-note song)."""
  onset = np.sort(song.onset)
  return float(np.diff(onset).mean()) if len(onset) > 1 else 0.0


def duration_class_index(duration: np.ndarray) -> np.ndarray:
  """Index into :data:`DURATION_CLASSES` of each duration (ticks), -1 where none matches."""
  duration = np.asarray(duration, dtype=np.int64)
  k = np.searchsorted(DURATION_CLASSES, duration)
  k_clip = np.minimum(k, len(DURATION_CLASSES) - 1)
  return np.where(DURATION_CLASSES[k_clip] == duration, k_clip, -1)


def duration_histogram(song: Song) -> np.ndarray:
  """DD: float64 ``[69]``, fraction of notes whose duration equals each class."""
  k = duration_class_index(song.duration)
  return np.bincount(k[k >= 0], minlength=len(DURATION_CLASSES)) / song.num_notes


def md_runs(song: Song) -> tuple[np.ndarray, np.ndarray]:
  """The MD series run-length encoded, before the mean is subtracted.

  Returns:
    ``(values, lengths)``: int64 ``[K]`` pitches and int64 ``[K]`` repeat counts (>= 1) of the
    maximal runs of equal pitch in ``repeat(pitch, duration // MD_UNIT)``; both empty when every
    note is shorter than ``MD_UNIT`` ticks.
  """
  reps = song.duration // MD_UNIT
  keep = reps > 0
  pitch, reps = song.pitch[keep].astype(np.int64), reps[keep].astype(np.int64)
  if len(pitch) == 0:
    return pitch, reps
  starts = np.flatnonzero(np.concatenate([[True], pitch[1:] != pitch[:-1]]))
  return pitch[starts], np.add.reduceat(reps, starts)


def md_series(song: Song) -> np.ndarray:
  """The MD series: float64 ``[L]``, each note's pitch repeated ``duration // 10`` times, minus
  the series' mean (empty when every note is shorter than 10 ticks)."""
  values, lengths = md_runs(song)
  series = np.repeat(values.astype(np.float64), lengths)
  return series - series.mean() if len(series) else series


# ---- a set of songs --------------------------------------------------------------------------
def feature_matrices(songs: Sequence[Song]) -> dict[str, np.ndarray]:
  """The four features of every song, vectorized over the set.

  Returns:
    ``{'A': [G, 6], 'PCH': [G, 12], 'IOI': [G, 1], 'DD': [G, 69]}`` float64 (row i = song i).
  """
  g = len(songs)
  if g == 0:
    return {k: np.zeros((0, n)) for k, n in FEATURE_SIZES.items()}
  notes = np.array([s.num_notes for s in songs], dtype=np.int64)
  syls = np.array([s.num_syllables for s in songs], dtype=np.int64)
  song_of_note = np.repeat(np.arange(g), notes)
  pitch = np.concatenate([s.pitch for s in songs]).astype(np.int64)
  onset = np.concatenate([s.onset for s in songs])
  duration = np.concatenate([s.duration for s in songs])
  syl_offset = np.concatenate([[0], np.cumsum(syls)[:-1]])
  global_syllable = np.concatenate([s.note_syllable for s in songs]) + syl_offset[song_of_note]
  per_syllable = np.bincount(global_syllable, minlength=int(syls.sum()))
  song_of_syllable = np.repeat(np.arange(g), syls)
  has = per_syllable > 0
  a_bin = np.minimum(per_syllable[has], ALIGNMENT_BINS) - 1
  a = np.bincount(song_of_syllable[has] * ALIGNMENT_BINS + a_bin,
                  minlength=g * ALIGNMENT_BINS).reshape(g, ALIGNMENT_BINS).astype(np.float64)
  pch = np.bincount(song_of_note * PITCH_CLASSES + pitch % PITCH_CLASSES,
                    minlength=g * PITCH_CLASSES).reshape(g, PITCH_CLASSES) / notes[:, None]
  # Onsets of a Song are strictly increasing, so the mean IOI is (last - first) / (n - 1).
  first = np.concatenate([[0], np.cumsum(notes)[:-1]])
  last = first + notes - 1
  span = (onset[last] - onset[first]).astype(np.float64)
  ioi = np.where(notes > 1, span / np.maximum(notes - 1, 1), 0.0)[:, None]
  k = duration_class_index(duration)
  ok = k >= 0
  nd = len(DURATION_CLASSES)
  dd = np.bincount(song_of_note[ok] * nd + k[ok], minlength=g * nd).reshape(g, nd) / notes[:, None]
  return {'A': a, 'PCH': pch, 'IOI': ioi, 'DD': dd}
