"""Write a Song as MusicXML (music21), a score a singer can read, with the syllables under the notes.

Layout: one voice part ("Voice", a vocal instrument: ``voice.vocals``, MIDI program 54), one
measure per bar of the song's time-signature map (a bar cut short by a change is written as a
short measure), up to the last note or the last time-signature row, whichever comes later; a
song whose first note falls inside a full-length bar 0 starts with a pickup measure, otherwise
leading bars hold rests. Gaps are rests; the last measure is filled with a rest. The tempo is a
metronome mark (quarter = ``song.tempo``) in the first measure; each time-signature row is a time
signature on its measure. The title is the ``title`` given (``generate``: ``--title`` or the
lyrics' first line), else the song's first words (:func:`default_title`); no composer is written
(music21 would put its own name there).

Rhythm (:func:`notation`): every bar is cut into beats of a quarter note (the last one of a bar may
be shorter). A beat whose note and rest boundaries are all on the 128th grid (multiples of 15
ticks) is written in plain and dotted values; a quarter or eighth beat whose boundaries are all on
its triplet-16th grid (multiples of 80 ticks) is one triplet group (one ``3`` bracket, 3:2 of
eighths or of 16ths) -- the only tuplets written. Any other beat (times of the 40-tick grid that
do not make a triplet rhythm, off-grid ticks of a file) is moved to the nearer of those two grids
(64ths or the triplet grid, least total movement, 64ths on a tie, at most 15 or 40 ticks per
boundary), or to 128ths when that would swallow a note; only a beat that fits no grid keeps its
exact ticks, written with the fewest plain, dotted and triplet values and, for 1 to 9 ticks, a
128th in an odd tuplet (:func:`note_values`). The MIDI file keeps the exact ticks. A note is
split at bar lines and at the edges of triplet (and exact) beats, the pieces tied.

Lyrics: each syllable under the first note of the syllable (lyric number 1); its other notes carry
none (a melisma). Word structure (``syllabic``): a syllable ending in ``-`` (the hyphen
convention of MIDI lyric events that ``music/syllabify.py`` writes for typed text: ``Twin-``
``kle``) or followed by one starting with ``/`` (the data's mark, see ``music/stress.py``)
continues into the next; a syllable is ``begin`` when it continues and is not a continuation,
``middle`` when both, ``end`` when it is a continuation only, otherwise ``single``. The text is
written without the trailing ``-`` (notation programs draw the hyphen). Velocities are written
as each note's ``dynamics``.

Round trip: ``read_score`` gives back :func:`notation_song` (the song with its written ticks; the
song itself when every beat is plain or a triplet group): the same pitches, onsets, offsets,
syllables (texts without hyphenation marks at their ends, as the reader strips those), note ->
syllable alignment, tempo, time signatures and velocities. Not kept: ``syllable_onset`` before a
syllable's first note (it becomes that note's onset), phrases and stress (not part of a score),
and the meter of a song whose first bar is cut short by a change (it reads back as a pickup).
The file is written atomically (a temporary file, then ``os.replace``).

Tried in notation programs: MuseScore 3.2 (Debian ``musescore3``, ``mscore3 -o song.png
song.musicxml``) renders these files with the syllables hyphenated under the notes, the title,
no composer and the Voice instrument.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools
import os
import pathlib
import warnings
from typing import Optional

import numpy as np
from music21 import defaults, duration, instrument, metadata, note, stream, tempo, tie
from music21 import meter as m21meter
from music21.musicxml import m21ToXml

from songglm_jax.music import meter, syllabify
from songglm_jax.atomic import write_bytes as atomic_write
from songglm_jax.music.song import Song, TPQ, clean_lyric

_UNIT = 5  # ticks: the greatest common divisor of the note values below
_PLAIN = tuple(3840 >> k for k in range(9))  # breve .. 128th
_DOTTED = tuple(v * 3 // 2 for v in _PLAIN[:-1])
_TRIPLET = tuple(v * 2 // 3 for v in _PLAIN)
_BEAT = TPQ  # rhythm is laid out beat by beat (quarter notes)
_FINE = 15  # the 128th grid: plain and dotted values write every multiple
_TRIPLET_GRID = 80  # triplet 16ths
_TRIPLET_BEATS = {TPQ: 'eighth', TPQ // 2: '16th'}  # beat length -> the group's normal type
_TYPES = {3840 >> k: t for k, t in enumerate(
    ['breve', 'whole', 'half', 'quarter', 'eighth', '16th', '32nd', '64th', '128th'])}
PLAIN, TRIPLET, EXACT = 'plain', 'triplet', 'exact'


@functools.lru_cache(maxsize=4096)
def note_values(length: int, triplets: bool = True) -> tuple[int, ...]:
  """Split ``length`` ticks into written note values, longest first.

  ``triplets=False`` (a multiple of 15 ticks): the fewest plain and dotted values. Otherwise the
  fewest pieces, triplet values counting a little more than plain or dotted ones (every multiple
  of 10 ticks splits so); what is left -- 1 to 9 ticks when the length is not a multiple of 5,
  or exactly 5 -- ends the list as one short piece, written as a 128th note in a tuplet (see
  :func:`_duration`).
  """
  if length <= 0:
    raise ValueError(f'note_values: length must be positive, got {length}')
  if not triplets and length % _FINE:
    raise ValueError(f'note_values: {length} ticks is not a multiple of {_FINE}')
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
  coins = [(v // _UNIT, 1.0) for v in _PLAIN + _DOTTED]
  if triplets:
    coins += [(v // _UNIT, 1.25) for v in _TRIPLET]
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


# ---- rhythm: which beats are plain, triplet groups or exact ---------------------------------------
@dataclasses.dataclass(frozen=True)
class Notation:
  """How a song's rhythm is written (see the module docstring).

  Attributes:
    onset, offset: int64 [N] written ticks of the notes.
    bounds: int64 [W + 1] beat boundaries (bar lines and quarter notes inside bars).
    kinds: W of PLAIN / TRIPLET / EXACT, one per beat.
  """
  onset: np.ndarray
  offset: np.ndarray
  bounds: np.ndarray
  kinds: tuple[str, ...]


def _beats(song: Song) -> np.ndarray:
  ts = song.time_signatures
  end = int(song.offset.max())
  last_bar = int(meter.bar_and_position(np.array([end - 1, ts[-1, 0]]), ts)[0].max())
  starts = meter.bar_start(np.arange(last_bar + 2), ts).tolist()
  out = [t for a, z in zip(starts[:-1], starts[1:]) for t in range(a, z, _BEAT)]
  return np.array(out + [starts[-1]], np.int64)


def _snap(rel: np.ndarray, grid: int) -> np.ndarray:
  return (rel + grid // 2) // grid * grid


def _collapses(times: np.ndarray, new: np.ndarray, idx: np.ndarray, n: int) -> bool:
  """Would moving ``times[idx]`` to ``new`` make a note end where it starts?"""
  moved = times.copy()
  moved[idx] = new
  notes = np.unique(idx % n)
  return bool(np.any(moved[notes] >= moved[notes + n]))


def notation(song: Song) -> Notation:
  """The written rhythm of ``song``: each beat plain, a triplet group or exact, and the note
  ticks moved onto the grid chosen (module docstring)."""
  bounds = _beats(song)
  n = song.num_notes
  times = np.concatenate([song.onset, song.offset]).astype(np.int64)
  beat = np.searchsorted(bounds, times, side='right') - 1
  inner = times > bounds[np.clip(beat, 0, len(bounds) - 1)]
  written = times.copy()
  kinds = []
  for w in range(len(bounds) - 1):
    a, length = int(bounds[w]), int(bounds[w + 1] - bounds[w])
    idx = np.flatnonzero((beat == w) & inner)
    rel = times[idx] - a
    if length % _FINE == 0 and not np.any(rel % _FINE):
      kinds.append(PLAIN)
      continue
    if length in _TRIPLET_BEATS and not np.any(rel % _TRIPLET_GRID):
      kinds.append(TRIPLET)
      continue
    options = []
    grids = [(30, PLAIN)] + ([(_TRIPLET_GRID, TRIPLET)] if length in _TRIPLET_BEATS else [])
    for order, (grid, kind) in enumerate(grids):
      new = _snap(rel, grid)
      if length % grid == 0 and not _collapses(written, a + new, idx, n):
        options.append((int(np.abs(new - rel).sum()), order, kind, new))
    if not options and length % _FINE == 0:
      new = _snap(rel, _FINE)
      if not _collapses(written, a + new, idx, n):
        options.append((0, 0, PLAIN, new))
    if options:
      _, _, kind, new = min(options, key=lambda o: o[:2])
      written[idx] = a + new
      kinds.append(kind)
    else:
      kinds.append(EXACT)
  bad = written[:n] >= written[n:]  # a note moved to nothing across two beats: keep both exact
  while bad.any():
    for w in np.unique(np.concatenate([beat[:n][bad], beat[n:][bad]])):
      kinds[w] = EXACT
      sel = (beat == w) & inner
      written[sel] = times[sel]
    bad = written[:n] >= written[n:]
  return Notation(written[:n], written[n:], bounds, tuple(kinds))


def notation_song(song: Song) -> Song:
  """The song with the ticks its score is written at (what ``read_score`` gives back)."""
  nota = notation(song)
  if np.array_equal(nota.onset, song.onset) and np.array_equal(nota.offset, song.offset):
    return song
  return song.replace(onset=nota.onset, offset=nota.offset, syllable_onset=None)


def _values(nota: Notation, p: int, q: int) -> list[tuple[int, str, int]]:
  """Written pieces ``(ticks, kind, beat)`` of the span [p, q): plain runs of beats in plain and
  dotted values, a triplet beat in triplet values, an exact beat as :func:`note_values`."""
  out = []
  while p < q:
    w = int(np.searchsorted(nota.bounds, p, side='right')) - 1
    kind = nota.kinds[w]
    e = min(q, int(nota.bounds[w + 1]))
    if kind == PLAIN:
      while e < q and nota.kinds[w + 1] == PLAIN:
        w += 1
        e = min(q, int(nota.bounds[w + 1]))
      out += [(v, PLAIN, w) for v in note_values(e - p, triplets=False)]
    elif kind == TRIPLET:
      left = e - p
      for v in (4 * _TRIPLET_GRID, 2 * _TRIPLET_GRID, _TRIPLET_GRID):
        while left >= v:
          out.append((v, TRIPLET, w))
          left -= v
    else:
      out += [(v, EXACT, w) for v in note_values(e - p)]
    p = e
  return out


def _duration(ticks: int, kind: str = EXACT, beat_length: int = _BEAT) -> duration.Duration:
  """A written duration: a plain or dotted value; in a triplet beat a triplet value (3:2 of
  eighths in a quarter beat, of 16ths in an eighth beat); else also below 10 ticks (not 5) a
  128th note (15 ticks) in a 15:ticks tuplet (music21 would pick unwritable 2048ths)."""
  if kind == TRIPLET:
    normal = _TRIPLET_BEATS[beat_length]
    d = duration.Duration(_TYPES[ticks * 3 // 2])
    d.appendTuplet(duration.Tuplet(3, 2, normal, normal))
    return d
  if ticks % _UNIT == 0 and ticks != _UNIT:
    return duration.Duration(fractions.Fraction(ticks, TPQ))
  d = duration.Duration('128th')
  d.appendTuplet(duration.Tuplet(_PLAIN[-1], ticks, '128th', '128th'))
  return d


def _bracket(placed: list) -> None:
  """One bracket per triplet beat: start on its first piece, stop on its last."""
  groups: dict[int, list] = {}
  for el, kind, beat in placed:
    if kind == TRIPLET:
      groups.setdefault(beat, []).append(el)
  for els in groups.values():
    for el in els:
      el.duration.tuplets[0].type = None
    els[0].duration.tuplets[0].type = 'start'
    els[-1].duration.tuplets[0].type = 'stop' if len(els) > 1 else 'startStop'


# ---- lyrics and title -------------------------------------------------------------------------------
def _syllabic(syllables: tuple[str, ...]) -> list[str]:
  more = [s.endswith(syllabify.CONTINUES) and len(s) > 1 for s in syllables]
  more = [m or (i + 1 < len(syllables) and syllables[i + 1].startswith('/'))
          for i, m in enumerate(more)]
  out = []
  for i in range(len(syllables)):
    first = i == 0 or not more[i - 1]
    out.append(('begin' if more[i] else 'single') if first else
               ('middle' if more[i] else 'end'))
  return out


def default_title(song: Song, max_words: int = 8) -> str:
  """A title from the song's first words: up to the first sentence end (``. ! ? ; :``) or
  ``max_words`` words (``...`` when cut), a trailing comma or stop dropped; the song's name
  (``_`` as spaces) or 'Song' when it has no word."""
  words = []
  for w in syllabify.words_of(song.syllables[:64]):
    words.append(w)
    if w.rstrip('"\'”’)').endswith(('.', '!', '?', ';', ':')) or len(words) > max_words:
      break
  cut = len(words) > max_words
  text = ' '.join(words[:max_words]).strip().rstrip('.,;:').strip()
  if text:
    return text + ('...' if cut else '')
  return song.name.replace('_', ' ').strip() or 'Song'


# ---- the score --------------------------------------------------------------------------------------
def to_music21(song: Song, title: Optional[str] = None) -> stream.Score:
  """The song as a music21 Score (see the module docstring for the layout)."""
  nota = notation(song)
  onset, offset = nota.onset, nota.offset
  ts = song.time_signatures
  end = int(offset.max())
  last_bar = int(meter.bar_and_position(np.array([end - 1, ts[-1, 0]]), ts)[0].max())
  starts = meter.bar_start(np.arange(last_bar + 2), ts)
  full = meter.bar_length_at(starts[:-1], ts)
  first = int(onset[0])
  pickup = 0 < first < starts[1] and starts[1] == meter.bar_lengths(ts)[0]
  row_at = {int(t): (int(n), int(d)) for t, n, d in ts}
  first_note = set(song.syllable_first_note.tolist())
  syllabic = _syllabic(song.syllables)
  beat_len = np.diff(nota.bounds)

  def pieces(p, q, make, placed):
    out = []
    for v, kind, w in _values(nota, p, q):
      el = make(_duration(v, kind, int(beat_len[w])))
      placed.append((el, kind, w))
      out.append(el)
    return out

  part = stream.Part(id='voice')
  part.partName = 'Voice'
  voice = instrument.Vocalist()
  voice.instrumentSound = 'voice.vocals'
  part.insert(0, voice)
  i, n_notes = 0, song.num_notes
  for b in range(last_bar + 1):
    a, z = (first if pickup and b == 0 else int(starts[b])), int(starts[b + 1])
    m = stream.Measure(number=b if pickup else b + 1)
    placed: list = []
    if int(starts[b]) in row_at:
      m.timeSignature = m21meter.TimeSignature('%d/%d' % row_at[int(starts[b])])
    if b == 0:
      mark = tempo.MetronomeMark(number=song.tempo, referent=duration.Duration(1.0))
      mark.placement = 'above'
      m.insert(0, mark)
    t = a
    while i < n_notes and onset[i] < z:
      on, off = max(int(onset[i]), a), min(int(offset[i]), z)
      if on > t:
        m.append(pieces(t, on, lambda d: note.Rest(duration=d), placed))
      notes = pieces(on, off, lambda d: note.Note(duration=d), placed)
      for k, piece in enumerate(notes):
        piece.pitch.midi = int(song.pitch[i])
        piece.volume.velocity = int(song.velocity[i])
        starts_here, ends_here = k == 0 and on == onset[i], k == len(notes) - 1
        tied_in, tied_out = not starts_here, not (ends_here and off == offset[i])
        if tied_in or tied_out:
          piece.tie = tie.Tie('continue' if tied_in and tied_out else
                              'start' if tied_out else 'stop')
      if on == onset[i] and i in first_note:
        s = int(song.note_syllable[i])
        notes[0].lyrics.append(note.Lyric(text=syllabify.plain(song.syllables[s]), number=1,
                                          syllabic=syllabic[s], applyRaw=True))
      m.append(notes)
      t = off
      if off < offset[i]:
        break  # the note goes on in the next measure
      i += 1
    if z > t:
      m.append(pieces(t, z, lambda d: note.Rest(duration=d), placed))
    _bracket(placed)
    if pickup and b == 0:
      m.paddingLeft = fractions.Fraction(first, TPQ)
      m.showNumber = stream.enums.ShowNumber.NEVER  # implicit="yes": a pickup is not counted
    short = int(full[b]) - (int(starts[b + 1]) - int(starts[b]))
    if short > 0:  # a bar cut short by a change: keep music21 from filling it with rests
      m.paddingRight = fractions.Fraction(short, TPQ)
    part.append(m)
  score = stream.Score()
  md = metadata.Metadata()
  md.title = title or default_title(song)
  score.insert(0, md)
  score.insert(0, part)
  return score


def write_musicxml(song: Song, path: str | os.PathLike, *, title: Optional[str] = None) -> None:
  """Write ``song`` as an uncompressed MusicXML file at ``path`` (atomically); ``title``
  defaults to :func:`default_title`.

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
  author = defaults.author
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    try:
      defaults.author = ''  # else music21 writes itself as the composer
      data = m21ToXml.GeneralObjectExporter(to_music21(song, title)).parse()
    finally:
      defaults.author = author
  atomic_write(path, data)
