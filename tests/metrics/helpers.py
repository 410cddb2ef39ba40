"""Random and hand-made songs for the metrics tests."""

from __future__ import annotations

import numpy as np

from songglm_jax.music.song import Song
from tests.songs import make_song

DURATIONS = (120, 160, 240, 320, 360, 480, 720, 960, 250)  # 250 matches no duration class
WORDS = ('ba', 'na', 'na', 'is', 'sweet', 'hel', 'lo', 'my', 'love', 'and', 'the', 'sun')


def random_song(rng: np.random.Generator, n_syllables: int = 12, name: str = 'song',
                time_signatures=((0, 4, 4),), punctuation: bool = False) -> Song:
  """Notes on a grid of the DURATIONS, 1-3 notes per syllable, pitches 55..76, gaps sometimes."""
  nps = rng.integers(1, 4, n_syllables)
  n = int(nps.sum())
  dur = rng.choice(DURATIONS, n)
  gap = np.where(rng.random(n) < 0.2, rng.choice([0, 120, 240, 480], n), 0)
  onset = np.concatenate([[0], np.cumsum(dur + gap)[:-1]])
  syl = [WORDS[i % len(WORDS)] + (',' if punctuation and i % 4 == 3 else '')
         for i in range(n_syllables)]
  return make_song(rng.integers(55, 77, n).tolist(), onset.tolist(), dur.tolist(),
                   np.repeat(np.arange(n_syllables), nps).tolist(), syl,
                   time_signatures=time_signatures, name=name)


def random_set(rng: np.random.Generator, count: int, prefix: str = 's') -> dict[str, Song]:
  return {f'{prefix}{i}': random_song(rng, int(rng.integers(6, 16)), name=f'{prefix}{i}')
          for i in range(count)}


def transposed(song: Song, semitones: int, every: int = 1) -> Song:
  """The song with every ``every``-th note moved by ``semitones``."""
  pitch = song.pitch.copy()
  pitch[::every] += semitones
  return song.replace(pitch=pitch)
