"""Phrase segmentation (as SongGLM does it) and windowing of long songs.

Segmentation (:func:`segment_phrases`):
1. Punctuation. A syllable "ends in punctuation" when its text, after trailing quotes and closing
   brackets are stripped, ends in one of ``. , ! ? ; :``. When at least 1/12 of the song's
   syllables do, a phrase ends at each of them.
2. Otherwise melodic boundaries, found on notes:
   - the longest note of each bar (bar of its onset; the first of equals) when it lasts longer
     than a quarter note (> 480 ticks), and
   - every note followed by a rest of at least an eighth (next onset - offset >= 240 ticks).
   When two candidates are adjacent notes only one is kept: the first if an eighth rest follows
   it or it is strictly longer than the second, else the second. Candidates are resolved left to
   right, so in a run of adjacent candidates each is compared with the one kept before it.
   A boundary note ends the phrase at the syllable it is sung on.
3. The last syllable always ends a phrase.

Windowing (:func:`split_windows`): the model's alignment embeddings have 256 word ids and 128
phrase ids (the paper's caps), the tokenizer a bounded bar field. A song that exceeds any cap is
cut into consecutive windows at phrase boundaries, greedily: phrases are added to the current
window while it stays within ``max_syllables`` syllables, ``max_phrases`` phrases and
``max_bars`` bars; a single phrase that alone exceeds a cap is cut at syllable boundaries into
pieces that fit. Each window is a Song of its own (``Song.window``: time shifted to the bar of
its first syllable, ids restarting at 0) named ``NAME#k``; a song within every cap is returned
as it is.
"""

from __future__ import annotations

import numpy as np

from songglm_jax.music import meter
from songglm_jax.music.song import Song

PUNCTUATION = '.,!?;:'
_TRAILING = '"\'”’»)]}'
PUNCTUATION_MIN_FRACTION = 1 / 12
QUARTER = meter.TPQ
EIGHTH = meter.TPQ // 2


def ends_in_punctuation(text: str) -> bool:
  text = text.rstrip(_TRAILING)
  return bool(text) and text[-1] in PUNCTUATION


def melodic_boundaries(song: Song) -> np.ndarray:
  """Indices of the notes that end a phrase by the melodic rule (sorted, int64)."""
  n = song.num_notes
  dur = song.duration
  rest_after = np.zeros(n, dtype=bool)
  rest_after[:-1] = song.onset[1:] - song.offset[:-1] >= EIGHTH
  bars, _ = meter.bar_and_position(song.onset, song.time_signatures)
  # Longest note of each bar: sort by (bar, -duration, index) and take the first of each bar.
  order = np.lexsort((np.arange(n), -dur, bars))
  first_of_bar = np.ones(n, dtype=bool)
  first_of_bar[1:] = bars[order][1:] != bars[order][:-1]
  longest = np.zeros(n, dtype=bool)
  longest[order[first_of_bar]] = True
  candidate = rest_after | (longest & (dur > QUARTER))
  cand = np.flatnonzero(candidate)
  if len(cand) < 2 or not np.any(np.diff(cand) == 1):
    return cand
  kept: list[int] = []
  for i in cand.tolist():
    if kept and kept[-1] == i - 1:
      prev = kept[-1]
      if not (rest_after[prev] or dur[prev] > dur[i]):
        kept[-1] = i
    else:
      kept.append(i)
  return np.asarray(kept, dtype=np.int64)


def phrase_ends(song: Song) -> np.ndarray:
  """Boolean ``[S]``: True where a syllable ends a phrase (the rules of the module docstring)."""
  s = song.num_syllables
  punct = np.fromiter((ends_in_punctuation(t) for t in song.syllables), dtype=bool, count=s)
  if punct.sum() >= PUNCTUATION_MIN_FRACTION * s:
    ends = punct
  else:
    ends = np.zeros(s, dtype=bool)
    ends[song.note_syllable[melodic_boundaries(song)]] = True
  ends[-1] = True
  return ends


def segment_phrases(song: Song) -> Song:
  """The song with ``syllable_phrase`` set by :func:`phrase_ends`."""
  ends = phrase_ends(song)
  phrase = np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int32)
  return song.replace(syllable_phrase=phrase)


def split_windows(song: Song, *, max_syllables: int = 256, max_phrases: int = 128,
                  max_bars: int = 512) -> list[Song]:
  """Cut a song into windows within the caps (see the module docstring)."""
  if min(max_syllables, max_phrases, max_bars) < 1:
    raise ValueError('split_windows: caps must be >= 1')
  bars, _ = meter.bar_and_position(song.onset, song.time_signatures)
  first = song.syllable_first_note
  last = np.append(first[1:] - 1, song.num_notes - 1)
  syl_bar0 = meter.bar_and_position(song.syllable_onset, song.time_signatures)[0]
  syl_bar1 = bars[last]
  if (song.num_syllables <= max_syllables and song.num_phrases <= max_phrases
      and syl_bar1[-1] - syl_bar0[0] < max_bars):
    return [song]
  # Units: whole phrases, or pieces of an over-long phrase.
  phrase_start = np.flatnonzero(np.diff(song.syllable_phrase, prepend=-1))
  phrase_end = np.append(phrase_start[1:], song.num_syllables)
  units: list[tuple[int, int]] = []
  for a, b in zip(phrase_start.tolist(), phrase_end.tolist()):
    while a < b:
      c = a + 1
      while c < b and c - a < max_syllables and syl_bar1[c] - syl_bar0[a] < max_bars:
        c += 1
      units.append((a, c))
      a = c
  windows: list[tuple[int, int]] = []
  start, count = units[0][0], 0
  for a, b in units:
    fits = (b - start <= max_syllables and count + 1 <= max_phrases
            and syl_bar1[b - 1] - syl_bar0[start] < max_bars)
    if not fits:
      windows.append((start, a))
      start, count = a, 0
    count += 1
  windows.append((start, units[-1][1]))
  out = []
  for k, (a, b) in enumerate(windows):
    w = song.window(a, b)
    out.append(w.replace(name=f'{song.name}#{k}'))
  return out
