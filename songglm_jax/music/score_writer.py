"""Write a Song as MusicXML (music21), with the syllables under the notes.

Layout: one part ("Voice"), one measure per bar of the song's time-signature map (a bar cut
short by a change is written as a short measure), up to the last note or the last
time-signature row, whichever comes later; a song whose first note falls inside a
full-length bar 0 starts with a pickup measure, otherwise leading bars hold rests. Gaps are
rests; the last measure is filled with a rest. Every note and rest is split at bar lines and
into plain, dotted and triplet note values (fewest pieces, plain values preferred), the pieces of
one note tied. The tempo is a metronome mark (quarter = ``song.tempo``) in the first measure;
each time-signature row is a time signature on its measure.

Lyrics: each syllable's text, as it is, under the first note of the syllable (lyric number 1),
its other notes carry none (a melisma). ``syllabic`` is derived from the one word-structure hint
a Song has -- the data's convention that a syllable starting with ``/`` continues the previous
word (see ``music/stress.py``): a syllable is ``begin`` when the next one continues it,
``middle`` when it continues and is continued, ``end`` when it continues and is not continued,
otherwise ``single``. Velocities are written as each note's ``dynamics``.

Round trip: ``read_score`` gives back the same pitches, onsets, offsets, syllables (texts without
hyphenation marks at their ends, as the reader strips those), note -> syllable alignment,
tempo, time signatures and velocities. Not kept: ``syllable_onset`` before a syllable's first note
(it becomes that note's onset), phrases and stress (not part of a score), and the meter of a
song whose first bar is cut short by a change (it reads back as a pickup). The file is written
atomically (a temporary file, then ``os.replace``).
"""

from __future__ import annotations

import fractions
import functools
import os
import pathlib
import warnings

import numpy as np
from music21 import duration, metadata, note, stream, tempo, tie
from music21 import meter as m21meter
from music21.musicxml import m21ToXml

from songglm_jax.music import meter
from songglm_jax.atomic import write_bytes as atomic_write
from songglm_jax.music.song import Song, TPQ, clean_lyric

_UNIT = 5  # ticks: the greatest common divisor of the note values below
_PLAIN = tuple(3840 >> k for k in range(9))  # breve .. 128th
_DOTTED = tuple(v * 3 // 2 for v in _PLAIN[:-1])
_TRIPLET = tuple(v * 2 // 3 for v in _PLAIN)


@functools.lru_cache(maxsize=4096)
def note_values(length: int) -> tuple[int, ...]:
  """Split ``length`` ticks into written note values, longest first.

  Fewest pieces, triplet values counting a little more than plain or dotted ones (every multiple
  of 10 ticks splits so). What is left -- 1 to 9 ticks when the length is not a multiple of 5,
  or exactly 5 -- ends the list as one short piece, written as a 128th note in a tuplet (see
  :func:`_duration`).
  """
  if length <= 0:
    raise ValueError(f'note_values: length must be positive, got {length}')
  tail = length % _UNIT
  if length - tail == _UNIT:
    tail = length
  if tail:
    return (note_values(length - tail) if length > tail else ()) + (tail,)
  head = []
  while length > 2 * _PLAIN[0]:
    head.append(_PLAIN[0])
    length -= _PLAIN[0]
  units = length // _UNIT
  coins = [(v // _UNIT, 1.0) for v in _PLAIN + _DOTTED] + [(v // _UNIT, 1.25) for v in _TRIPLET]
  cost = np.full(units + 1, np.inf)
  pick = np.zeros(units + 1, np.int64)
  cost[0] = 0.0
  for u in range(1, units + 1):
    for c, w in coins:
      if c <= u and cost[u - c] + w < cost[u]:
        cost[u], pick[u] = cost[u - c] + w, c
  if not np.isfinite(cost[units]):
    raise AssertionError(f'note_values: no split for {length} ticks')  # unreachable: units >= 2
  out = []
  while units:
    out.append(int(pick[units]) * _UNIT)
    units -= int(pick[units])
  return tuple(head + sorted(out, reverse=True))


def _syllabic(syllables: tuple[str, ...]) -> list[str]:
  cont = [s.startswith('/') for s in syllables] + [False]
  out = []
  for i in range(len(syllables)):
    first, more = not cont[i], cont[i + 1]
    out.append(('begin' if more else 'single') if first else ('middle' if more else 'end'))
  return out


def _duration(ticks: int) -> duration.Duration:
  """A written duration of ``ticks``: a plain, dotted or triplet value, or (below 10 ticks, not
  10) a 128th note (15 ticks) in a 15:ticks tuplet (music21 would pick unwritable 2048ths)."""
  if ticks % _UNIT == 0 and ticks != _UNIT:
    return duration.Duration(fractions.Fraction(ticks, TPQ))
  d = duration.Duration('128th')
  d.appendTuplet(duration.Tuplet(_PLAIN[-1], ticks, '128th', '128th'))
  return d


def _pieces(length: int, make) -> list:
  return [make(_duration(v)) for v in note_values(length)]


def _rests(length: int) -> list:
  return _pieces(length, lambda d: note.Rest(duration=d))


def to_music21(song: Song) -> stream.Score:
  """The song as a music21 Score (see the module docstring for the layout)."""
  ts = song.time_signatures
  end = int(song.offset.max())
  last_bar = int(meter.bar_and_position(np.array([end - 1, ts[-1, 0]]), ts)[0].max())
  starts = meter.bar_start(np.arange(last_bar + 2), ts)
  full = meter.bar_length_at(starts[:-1], ts)
  first = int(song.onset[0])
  pickup = 0 < first < starts[1] and starts[1] == meter.bar_lengths(ts)[0]
  row_at = {int(t): (int(n), int(d)) for t, n, d in ts}
  first_note = set(song.syllable_first_note.tolist())
  syllabic = _syllabic(song.syllables)
  part = stream.Part(id='voice')
  part.partName = 'Voice'
  i, n_notes = 0, song.num_notes
  for b in range(last_bar + 1):
    a, z = (first if pickup and b == 0 else int(starts[b])), int(starts[b + 1])
    m = stream.Measure(number=b if pickup else b + 1)
    if int(starts[b]) in row_at:
      m.timeSignature = m21meter.TimeSignature('%d/%d' % row_at[int(starts[b])])
    if b == 0:
      m.insert(0, tempo.MetronomeMark(number=song.tempo, referent=duration.Duration(1.0)))
    t = a
    while i < n_notes and song.onset[i] < z:
      on, off = max(int(song.onset[i]), a), min(int(song.offset[i]), z)
      if on > t:
        m.append(_rests(on - t))
      pieces = _pieces(off - on, lambda d: note.Note(duration=d))
      for k, piece in enumerate(pieces):
        piece.pitch.midi = int(song.pitch[i])
        piece.volume.velocity = int(song.velocity[i])
        starts_here, ends_here = k == 0 and on == song.onset[i], k == len(pieces) - 1
        tied_in, tied_out = not starts_here, not (ends_here and off == song.offset[i])
        if tied_in or tied_out:
          piece.tie = tie.Tie('continue' if tied_in and tied_out else
                              'start' if tied_out else 'stop')
      if on == song.onset[i] and i in first_note:
        s = int(song.note_syllable[i])
        pieces[0].lyrics.append(note.Lyric(text=song.syllables[s], number=1,
                                           syllabic=syllabic[s], applyRaw=True))
      m.append(pieces)
      t = off
      if off < song.offset[i]:
        break  # the note goes on in the next measure
      i += 1
    if z > t:
      m.append(_rests(z - t))
    if pickup and b == 0:
      m.paddingLeft = fractions.Fraction(first, TPQ)
    short = int(full[b]) - (int(starts[b + 1]) - int(starts[b]))
    if short > 0:  # a bar cut short by a change: keep music21 from filling it with rests
      m.paddingRight = fractions.Fraction(short, TPQ)
    part.append(m)
  score = stream.Score()
  score.insert(0, metadata.Metadata(title=song.name or 'song'))
  score.insert(0, part)
  return score


def write_musicxml(song: Song, path: str | os.PathLike) -> None:
  """Write ``song`` as an uncompressed MusicXML file at ``path`` (atomically).

  Raises:
    ValueError: ``path`` ends in ``.mxl`` (compressed MusicXML is not written), or a syllable
      is empty after :func:`clean_lyric` (it could not be read back as a syllable).
  """
  path = pathlib.Path(path)
  if path.suffix.lower() == '.mxl':
    raise ValueError(f'{path}: write_musicxml writes uncompressed MusicXML (.musicxml or .xml)')
  empty = [k for k, s in enumerate(song.syllables) if not clean_lyric(s).strip('-_').strip()]
  if empty:
    raise ValueError(f'{path}: song {song.name!r} has empty syllables at {empty[:5]}; a score '
                     'cannot hold them')
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    data = m21ToXml.GeneralObjectExporter(to_music21(song)).parse()
  atomic_write(path, data)
