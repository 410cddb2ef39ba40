"""Tiny hand-made songs for tests."""

from __future__ import annotations

import numpy as np

from songglm_jax.music.song import Song


def make_song(pitches, onsets, durations, note_syllable, syllables, phrases=None,
              time_signatures=((0, 4, 4),), tempo=100.0, name='test') -> Song:
  """A Song from plain lists (phrases default to one phrase)."""
  s = len(syllables)
  return Song(pitch=np.array(pitches), onset=np.array(onsets),
              offset=np.array(onsets) + np.array(durations), velocity=np.full(len(pitches), 90),
              note_syllable=np.array(note_syllable), syllables=tuple(syllables),
              syllable_phrase=np.zeros(s, int) if phrases is None else np.array(phrases),
              tempo=tempo, time_signatures=np.array(time_signatures), name=name)


def scale_song(n_syllables: int = 8, notes_per_syllable=None, step: int = 480,
               punctuation_every: int = 0, name: str = 'scale') -> Song:
  """A song of quarter notes walking up and down a scale; syllables 'la0', 'la1', ..."""
  nps = notes_per_syllable or [1 + (i % 3 == 2) for i in range(n_syllables)]
  note_syllable = np.repeat(np.arange(n_syllables), nps)
  n = len(note_syllable)
  scale = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62]
  pitches = [scale[i % len(scale)] for i in range(n)]
  syl = [f'la{i}' for i in range(n_syllables)]
  if punctuation_every:
    syl = [t + (',' if (i + 1) % punctuation_every == 0 else '') for i, t in enumerate(syl)]
  return make_song(pitches, np.arange(n) * step, [step] * n, note_syllable, syl, name=name)
