"""Read scores with lyrics (music21) as Songs; write Songs as MusicXML.

Formats: whatever music21 parses with lyrics under notes -- MusicXML (``.musicxml``, ``.xml``,
``.mxl``), Humdrum ``.krn`` (``**text``/``**lyrics`` spines; music21 attaches them through
``*staffN`` tandems), ABC with ``w:`` lines (UTF-8, else Latin-1; aligned by ``abc_lyrics``,
since music21 drops them). ``path#N`` reads only the ABC tune ``X:N``.

Reading rules (repairs are counted in the returned stats):
- Works: a file is one work, except an ABC file with several tunes: when all tunes share their
  title they are the voices of one work (the Josquin files of music21's corpus); otherwise each
  tune is a work of its own, named ``<name>_x<N>``, and a tune that fails is counted
  (``tunes_skipped_<reason>``) unless all fail.
- The part: the first (top) part whose lyrics are words. A part's lyrics are words when at least
  half of its lyric texts contain a letter (figured-bass numerals such as ``6``, ``6/5``,
  ``9 8`` are not). No part with lyrics -> ``no_lyrics``; parts with lyrics but none with words
  -> ``lyrics_not_words``; a work without notes -> ``no_notes``.
- Lyric text: :func:`clean_lyric`, then hyphenation marks (``-``, ``_``) at either end removed
  (``mar-`` -> ``mar``; a bare ``-`` or ``_`` becomes empty); an empty text is no lyric.
- Notes: chord symbols ignored; grace notes (``grace_notes_dropped``) and unpitched notes
  (``unpitched_notes_dropped``) dropped; a chord keeps its highest pitch (``chords_reduced``);
  of notes starting together (several voices in one staff) the one with a lyric, else the
  highest, is kept (``polyphony_notes_dropped``); a note still sounding when the next starts is
  cut there (``overlaps_trimmed``); a note tied from the previous note of the same pitch that
  carries no lyric is merged into it (``ties_merged``). Rests are gaps: time advances.
- Time: ticks = quarterLength * 480, rounded, from the part's start. A pickup (a first measure
  shorter than its bar; music21 marks it with ``paddingLeft``) shifts everything so that bar
  lines fall where ``meter.py`` puts them: a one-beat pickup in 4/4 starts at tick 1440.
- Time signatures: one row per time signature at the start of its measure, the first at tick 0
  (4/4 when the first measure has none); a measure that does not start where the map puts a bar
  line (an incomplete or overfull measure) gets a row of its own, so bars stay aligned with the
  score's measures (``irregular_bars``). A signature ``meter.py`` cannot hold ->
  ``bad_time_signature``.
- Tempo: the first MetronomeMark in the part, else in the other parts, else 120 qpm.
  Velocity: the note's velocity, else 80.
- Verses: one song per lyric number (``<name>``, ``<name>_v2``, ``<name>_v3``, ...). Verse k
  takes each note's lyric number k; a note without one continues the previous syllable (a
  melisma). Notes before the verse's first lyric are dropped (``notes_before_first_lyric``), and
  so are the notes from the first one after its last lyric that carries another verse's lyric
  (``notes_after_last_lyric``: a Bach chorale's first verse ends at the repeat where only the
  second verse goes on; a melisma on the last syllable is kept). A verse with fewer than a tenth
  of the syllables of the longest verse is a stray lyric (an OCR slip in the Monteverdi
  madrigals puts one syllable on lyric line 2) and is dropped (``stray_verses``).
- ``syllable_phrase`` is all zeros (phrases are segmented later). A verse that breaks a Song
  invariant is skipped (``verse_skipped_<reason>``); when none is left, the first reason is
  raised as :class:`SongSkip` (``invalid_song`` for a broken invariant).
Unreadable files raise ``SongSkip('unreadable')``, empty ones ``SongSkip('empty_file')``.

Writing: see :mod:`songglm_jax.music.score_writer` (re-exported here as :func:`write_musicxml`).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import re
import unicodedata
import warnings

import numpy as np
from music21 import chord, converter, harmony, note, stream, tempo
from music21 import meter as m21meter

from songglm_jax.music import abc_lyrics, meter
from songglm_jax.music.corpus import music21_corpus_paths, music21_corpus_root  # noqa: F401
from songglm_jax.music.score_writer import write_musicxml  # noqa: F401
from songglm_jax.music.song import Song, SongSkip, TPQ, clean_lyric

DEFAULT_VELOCITY = 80
DEFAULT_TEMPO = 120.0
_NUMBERED = re.compile(r'^(.*)#(\d+)$')


def lyric_text(text) -> str:
  """A lyric as stored in a Song: :func:`clean_lyric` without hyphenation marks at the ends."""
  return clean_lyric(text or '').strip('-_').strip()


def _is_letter(ch: str) -> bool:
  return unicodedata.category(ch)[0] == 'L'


def lyrics_are_words(texts: list[str]) -> bool:
  """True when at least half of the (non-empty) lyric texts contain a letter."""
  with_letter = sum(any(_is_letter(c) for c in t) for t in texts)
  return 2 * with_letter >= len(texts) > 0


def _ticks(ql) -> int:
  return int(round(float(ql) * TPQ))


@dataclasses.dataclass
class _Note:
  onset: int
  offset: int
  pitch: int
  velocity: int
  lyrics: dict[int, str]
  tie_next: bool  # tied to the following note
  tie_prev: bool  # tied from the previous note


# ---- loading ------------------------------------------------------------------------------------
def _load(src, name: str) -> list[tuple[str, list[stream.Stream]]]:
  """The works of a path or music21 stream: ``[(song name, parts)]``."""
  if isinstance(src, stream.Stream):
    base = name or (src.metadata.title if src.metadata and src.metadata.title else 'score')
    return _works_of_stream(src, base)
  where = os.fspath(src)
  path, number = where, None
  match = _NUMBERED.match(where)
  if match and not os.path.exists(where):
    path, number = match.group(1), int(match.group(2))
  p = pathlib.Path(path)
  if not p.is_file():
    raise SongSkip('unreadable', f'{where}: no such file')
  if p.stat().st_size == 0:
    raise SongSkip('empty_file', f'{where}: empty file')
  base = name or (p.stem + (f'_x{number}' if number is not None else ''))
  if p.suffix.lower() == '.abc':
    data = p.read_bytes()
    try:
      text = data.decode('utf-8')
    except UnicodeDecodeError:
      text = data.decode('latin-1')  # older ABC files
    tunes = abc_lyrics.read_abc(text, where, number)
    if len(tunes) > 1 and len({t for t, _, _ in tunes}) == 1:
      return [(base, [part for _, _, parts in tunes for part in parts])]
    if len(tunes) == 1:
      return [(base, tunes[0][2])]
    return [(f'{base}_x{x if x is not None else i + 1}', parts)
            for i, (_, x, parts) in enumerate(tunes)]
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      parsed = converter.parseFile(p, number=number, forceSource=True, storePickle=False)
  except Exception as e:  # music21 raises many exception types on broken files
    raise SongSkip('unreadable', f'{where}: {type(e).__name__}: {str(e)[:200]}')
  return _works_of_stream(parsed, base)


def _works_of_stream(s: stream.Stream, base: str) -> list[tuple[str, list[stream.Stream]]]:
  if isinstance(s, stream.Opus):
    scores = list(s.scores)
    return [(base if len(scores) == 1 else f'{base}_x{i + 1}', _parts(sc))
            for i, sc in enumerate(scores)]
  return [(base, _parts(s))]


def _parts(s: stream.Stream) -> list[stream.Stream]:
  if isinstance(s, stream.Score):
    return list(s.parts) or [s]
  return [s]


# ---- one part -> notes ------------------------------------------------------------------------
def _music_notes(part: stream.Stream):
  return [n for n in part.recurse().notes if not isinstance(n, harmony.Harmony)]


def _ts_pair(ts, where: str) -> tuple[int, int]:
  num, den = int(ts.numerator), int(ts.denominator)
  if not (1 <= num <= 64 and 1 <= den <= 64 and den & (den - 1) == 0):
    raise SongSkip('bad_time_signature', f'{where}: time signature {num}/{den} (expected '
                   'a numerator in 1..64 and a power-of-two denominator up to 64)')
  return num, den


def _meter_map(part: stream.Stream, name: str, stats) -> tuple[int, np.ndarray]:
  """(pickup shift in ticks, time-signature map [K, 3]) from the part's measures."""
  measures = list(part.getElementsByClass(stream.Measure))
  if not measures:
    flat = part.flatten()
    rows = [[_ticks(flat.elementOffset(ts)), *_ts_pair(ts, name)]
            for ts in flat.getElementsByClass(m21meter.TimeSignature)]
    if not rows or rows[0][0] > 0:
      rows.insert(0, [0, 4, 4])
    return 0, meter.validate_time_signatures(np.array(rows, dtype=np.int64))
  ts0 = measures[0].timeSignature
  cur = _ts_pair(ts0, name) if ts0 is not None else (4, 4)
  bar = cur[0] * 4 * TPQ // cur[1]
  shift = _ticks(measures[0].paddingLeft or 0)
  if not shift and len(measures) > 1:
    span = _ticks(part.elementOffset(measures[1]) - part.elementOffset(measures[0]))
    shift = bar - span if 0 < span < bar else 0
  rows = [[0, *cur]]
  for m in measures[1:]:
    t = _ticks(part.elementOffset(m)) + shift
    if t < rows[-1][0]:
      continue
    ts = m.timeSignature
    new = _ts_pair(ts, name) if ts is not None else cur
    if ts is not None or (t - rows[-1][0]) % bar:
      stats['irregular_bars'] += int(ts is None)
      if t == rows[-1][0]:
        rows.pop()
      rows.append([t, *new])
      cur, bar = new, new[0] * 4 * TPQ // new[1]
  return shift, meter.validate_time_signatures(np.array(rows, dtype=np.int64))


def _velocity(el) -> int:
  v = el.volume.velocity if el.hasVolumeInformation() else None
  return DEFAULT_VELOCITY if v is None else int(min(127, max(1, round(v))))


def _notes(part: stream.Stream, shift: int, stats) -> list[_Note]:
  flat = part.flatten()
  raw = []
  for el in flat.notes:
    if isinstance(el, harmony.Harmony):
      continue
    if el.duration.isGrace:
      stats['grace_notes_dropped'] += 1
      continue
    if isinstance(el, chord.Chord):
      pitched = [n for n in el.notes if hasattr(n, 'pitch')]
      if not pitched:
        stats['unpitched_notes_dropped'] += 1
        continue
      top = max(pitched, key=lambda n: n.pitch.ps)
      stats['chords_reduced'] += int(len(pitched) > 1)
      pitch, tie = top.pitch.midi, top.tie or el.tie
    elif isinstance(el, note.Note):
      pitch, tie = el.pitch.midi, el.tie
    else:
      stats['unpitched_notes_dropped'] += 1
      continue
    off = flat.elementOffset(el)
    onset, offset = _ticks(off) + shift, _ticks(off + el.duration.quarterLength) + shift
    if offset <= onset:
      stats['zero_length_notes'] += 1
      continue
    lyrics: dict[int, str] = {}
    for lyr in el.lyrics:
      text = lyric_text(lyr.text)
      if text:
        lyrics.setdefault(int(lyr.number or 1), text)
    kind = tie.type if tie is not None else ''
    raw.append(_Note(onset, offset, int(pitch), _velocity(el), lyrics,
                     kind in ('start', 'continue'), kind in ('stop', 'continue')))
  raw.sort(key=lambda n: (n.onset, not n.lyrics, -n.pitch))
  out: list[_Note] = []
  for n in raw:
    if out and n.onset == out[-1].onset:
      stats['polyphony_notes_dropped'] += 1
      continue
    if out:
      prev = out[-1]
      if (prev.offset == n.onset and prev.pitch == n.pitch and (prev.tie_next or n.tie_prev)
          and not n.lyrics):
        prev.offset, prev.tie_next = n.offset, n.tie_next
        stats['ties_merged'] += 1
        continue
      if prev.offset > n.onset:
        prev.offset = n.onset
        stats['overlaps_trimmed'] += 1
    out.append(n)
  return out


def _tempo(parts: list[stream.Stream]) -> float:
  for part in parts:
    for mark in part.recurse().getElementsByClass(tempo.MetronomeMark):
      qpm = mark.getQuarterBPM()
      if qpm is not None and np.isfinite(qpm) and qpm > 0:
        return float(qpm)
  return DEFAULT_TEMPO


# ---- one work -> songs -----------------------------------------------------------------------
def _pick_part(parts: list[stream.Stream], name: str) -> stream.Stream:
  with_lyrics, any_notes = [], False
  for part in parts:
    notes = _music_notes(part)
    any_notes = any_notes or bool(notes)
    texts = [t for n in notes for lyr in n.lyrics if (t := lyric_text(lyr.text))]
    if texts:
      with_lyrics.append((part, texts))
  if not any_notes:
    raise SongSkip('no_notes', f'{name}: the score has no notes')
  if not with_lyrics:
    raise SongSkip('no_lyrics', f'{name}: no part has lyrics')
  for part, texts in with_lyrics:
    if lyrics_are_words(texts):
      return part
  examples = collections.Counter(with_lyrics[0][1]).most_common(5)
  raise SongSkip('lyrics_not_words', f'{name}: most lyric texts contain no letter, e.g. '
                 f'{[t for t, _ in examples]}')


def _verse(notes: list[_Note], verse: int, stats) -> tuple[list[_Note], list[str], np.ndarray]:
  has = np.array([verse in n.lyrics for n in notes])
  other = np.array([bool(n.lyrics) and verse not in n.lyrics for n in notes])
  first = int(np.argmax(has))
  last = len(notes) - 1 - int(np.argmax(has[::-1]))
  later = np.flatnonzero(other[last + 1:])
  end = last + 1 + int(later[0]) if later.size else len(notes)
  stats['notes_before_first_lyric'] += first
  stats['notes_after_last_lyric'] += len(notes) - end
  sel = notes[first:end]
  return sel, [n.lyrics[verse] for n in sel if verse in n.lyrics], np.cumsum(has[first:end]) - 1


def _read_work(name: str, parts: list[stream.Stream], stats) -> list[Song]:
  part = _pick_part(parts, name)
  shift, ts = _meter_map(part, name, stats)
  notes = _notes(part, shift, stats)
  verses = sorted({v for n in notes for v in n.lyrics})
  if not verses:
    raise SongSkip('no_lyrics', f'{name}: no lyric is left on a sung note')
  qpm = _tempo([part] + [p for p in parts if p is not part])
  counts = collections.Counter(v for n in notes for v in n.lyrics)
  stray = [v for v in verses if 10 * counts[v] < max(counts.values())]
  stats['stray_verses'] += len(stray)
  verses = [v for v in verses if v not in stray]
  songs, skips = [], []
  for k, verse in enumerate(verses):
    sel, syllables, note_syllable = _verse(notes, verse, stats)
    song_name = name if k == 0 else f'{name}_v{k + 1}'
    try:
      songs.append(Song(
          pitch=np.array([n.pitch for n in sel]), onset=np.array([n.onset for n in sel]),
          offset=np.array([n.offset for n in sel]), velocity=np.array([n.velocity for n in sel]),
          note_syllable=note_syllable, syllables=tuple(syllables),
          syllable_phrase=np.zeros(len(syllables), np.int32), tempo=qpm, time_signatures=ts,
          name=song_name))
    except ValueError as e:
      skip = SongSkip('invalid_song', f'{song_name}: {e}')
      stats[f'verse_skipped_{skip.reason}'] += 1
      skips.append(skip)
  if not songs:
    raise skips[0]
  stats['verses'] += len(songs)
  return songs


def read_score(path_or_score, *, name: str = '') -> tuple[list[Song], dict[str, int]]:
  """The songs (one per verse) of a score file (or ``file.abc#N``) or a music21 stream.

  Args:
    path_or_score: a path, or a music21 ``Score``/``Part``/``Opus``.
    name: the songs' name (verses add ``_v2``, ...); default the file stem or the title.

  Returns:
    ``(songs, stats)``: stats counts the repairs (see the module docstring).

  Raises:
    SongSkip: the input gives no song; ``reason`` says why.
  """
  stats: collections.Counter = collections.Counter()
  works = _load(path_or_score, name)
  songs, skips = [], []
  for work_name, parts in works:
    try:
      songs.extend(_read_work(work_name, parts, stats))
    except SongSkip as e:
      if len(works) == 1:
        raise
      stats[f'tunes_skipped_{e.reason}'] += 1
      skips.append(e)
  if not songs:
    raise skips[0] if skips else SongSkip('no_notes', f'{path_or_score}: no work found')
  return songs, {k: v for k, v in stats.items() if v}
