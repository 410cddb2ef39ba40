"""What to regenerate in a song: ``--regenerate=SPEC`` -> syllable spans (``infill.py`` decodes
them).

SPEC is one or more items joined by ``,``; numbers count from 1 and ranges include both ends, as
a musician counts:

  phrase:3        the third phrase          phrases:2-4     phrases 2, 3 and 4
  syllable:10     the tenth syllable        syllables:10-17 syllables 10 .. 17
  bar:5           bar 5                     bars:5-8        the syllables whose first note
                                                            starts in bars 5 .. 8

Phrases are the song's ``syllable_phrase`` (for a song read from a file: segmented as ``prepare``
does, :func:`read_song`). A span always holds whole syllables (with all their notes): the
regenerated notes must sing exactly those syllables. Items that touch merge into one span (as the
pre-training masks do: a span is a maximal run of masked notes); items that overlap are refused.

Every problem is one ``ValueError`` line naming the item: an unknown kind, a bad number or range,
a phrase / syllable the song does not have, bars holding no syllable's first note, two items
that overlap, a song without lyrics.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from songglm_jax.music import meter
from songglm_jax.music.song import Song, SongSkip

KINDS = {'phrase': 'phrase', 'phrases': 'phrase', 'syllable': 'syllable',
         'syllables': 'syllable', 'bar': 'bar', 'bars': 'bar'}
_ITEM = re.compile(r'^([a-z]+):(\d+)(?:-(\d+))?$')


@dataclasses.dataclass(frozen=True)
class Span:
  """Syllables ``first .. end - 1`` (0-based, end exclusive) and the SPEC items they come from."""
  first: int
  end: int
  items: tuple[str, ...]

  @property
  def num_syllables(self) -> int:
    return self.end - self.first

  def describe(self, song: Song) -> dict:
    """What ``generate.json`` lists: 1-based inclusive syllables, phrases, bars, original notes."""
    notes = np.flatnonzero((song.note_syllable >= self.first) & (song.note_syllable < self.end))
    bars, _ = meter.bar_and_position(song.onset[notes], song.time_signatures)
    return {'items': list(self.items), 'syllables': [self.first + 1, self.end],
            'phrases': [int(song.syllable_phrase[self.first]) + 1,
                        int(song.syllable_phrase[self.end - 1]) + 1],
            'bars': [int(bars.min()) + 1, int(bars.max()) + 1],
            'original_notes': len(notes),
            'text': ' '.join(song.syllables[self.first:self.end])}


def _item_syllables(song: Song, item: str) -> tuple[int, int]:
  """[first, end) syllables of one SPEC item."""
  m = _ITEM.match(item)
  if not m or m.group(1) not in KINDS:
    raise ValueError(f'--regenerate: bad item {item!r}; expected phrase:N, phrases:A-B, '
                     'syllables:A-B or bars:A-B (numbers from 1)')
  kind = KINDS[m.group(1)]
  a = int(m.group(2))
  b = int(m.group(3)) if m.group(3) else a
  if a < 1 or b < a:
    raise ValueError(f'--regenerate: bad range in {item!r}; expected 1 <= A <= B')
  if kind == 'syllable':
    s = song.num_syllables
    if b > s:
      raise ValueError(f'--regenerate: {item!r}: the song has {s} syllables')
    return a - 1, b
  if kind == 'phrase':
    p = song.num_phrases
    if b > p:
      missing = f'phrase {b} does not exist' if a == b else f'phrases {a}-{b} go past the last'
      raise ValueError(f'--regenerate: {item!r}: {missing}; the song has {p} phrases')
    syl = np.flatnonzero((song.syllable_phrase >= a - 1) & (song.syllable_phrase <= b - 1))
    return int(syl[0]), int(syl[-1]) + 1
  first_bar, _ = meter.bar_and_position(song.onset[song.syllable_first_note],
                                        song.time_signatures)
  syl = np.flatnonzero((first_bar >= a - 1) & (first_bar <= b - 1))
  if len(syl) == 0:
    last = int(meter.bar_and_position(song.onset[-1:], song.time_signatures)[0][0]) + 1
    raise ValueError(f'--regenerate: {item!r}: no syllable starts in '
                     f'{"bar " + str(a) if a == b else f"bars {a}-{b}"}; the song has {last} bars')
  return int(syl[0]), int(syl[-1]) + 1


def parse_spec(song: Song, spec: str) -> list[Span]:
  """The spans of ``spec`` in song order (touching items merged).

  Raises:
    ValueError: one line naming the bad item (module docstring).
  """
  items = [x.strip().lower().replace(' ', '') for x in str(spec or '').split(',')]
  items = [x for x in items if x]
  if not items:
    raise ValueError('--regenerate: empty; expected e.g. phrase:3, phrases:2-4, syllables:10-17 '
                     'or bars:5-8')
  ranges = sorted((*_item_syllables(song, x), x) for x in items)
  for (a0, b0, x0), (a1, b1, x1) in zip(ranges, ranges[1:]):
    if a1 < b0:
      raise ValueError(f'--regenerate: {x0!r} and {x1!r} overlap (syllables {a1 + 1}-'
                       f'{min(b0, b1)}); give each syllable once')
  spans: list[Span] = []
  for a, b, x in ranges:
    if spans and spans[-1].end == a:
      spans[-1] = Span(spans[-1].first, b, spans[-1].items + (x,))
    else:
      spans.append(Span(a, b, (x,)))
  return spans


def spans_from_ranges(song: Song, ranges) -> list[Span]:
  """Spans from 0-based ``(first, end)`` syllable ranges (the Python API), checked and merged
  like SPEC items."""
  spec = ','.join(f'syllables:{int(a) + 1}-{int(b)}' for a, b in ranges)
  return parse_spec(song, spec)


def read_song(path: str | os.PathLike, *, stress_lookup: str = 'word') -> tuple[Song, str]:
  """The song of a MIDI / MusicXML file to infill, prepared as ``prepare`` prepares training
  songs (stress with ``stress_lookup``, phrases by ``phrases.segment_phrases``), and a note
  (empty, or which verse was taken).

  Raises:
    ValueError: unreadable, or no lyrics (one line).
  """
  # pylint: disable-next=import-outside-toplevel
  from songglm_jax.music import io as song_io, phrases, stress
  try:
    songs, _ = song_io.read_songs(path)
  except SongSkip as e:
    if e.reason in ('no_lyrics', 'lyrics_without_notes', 'lyrics_not_words'):
      raise ValueError(f'--song {path}: the song has no lyrics ({e.reason}); infilling needs '
                       'the syllables each note is sung on') from None
    raise ValueError(f'--song {path}: cannot use it ({e.reason}: {e})') from None
  note = f'verse 1 of {len(songs)}' if len(songs) > 1 else ''
  song = songs[0]
  if not any(t.strip() for t in song.syllables):
    raise ValueError(f'--song {path}: the song has no lyrics (every syllable is empty)')
  song = song.replace(syllable_stress=stress.syllable_stress(song.syllables, mode=stress_lookup))
  return phrases.segment_phrases(song), note
