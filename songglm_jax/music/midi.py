"""Read and write MIDI files with lyric events (symusic).

Input format (``../shared/data/songglm_sample/README.md``): lyric meta events, one per sung
syllable, usually on a track of their own; a monophonic melody track; a syllable is sung on the
notes from its lyric event up to the next lyric event.

Reading rules (each deviation from the format is repaired and counted in the returned stats):
- Ticks are rescaled to 480 per quarter note (rounded).
- The melody track: the non-drum track with notes whose name says lead/melody/vocal/voice/sing,
  else the track with the most notes; notes on other tracks are ignored (``other_track_notes``).
- Polyphony: of the notes starting at one tick the highest is kept (``polyphony_notes_dropped``);
  a note still sounding when the next starts is cut there (``overlaps_trimmed``); zero-length
  notes are dropped (``zero_length_notes``).
- Lyric events are gathered from every track, sorted by time (stable). Text is UTF-8; an event
  that is not valid UTF-8 is read again from the file's bytes and decoded as cp1252 (Windows
  Western, the usual 8-bit lyric encoding; ``lyrics_decoded_cp1252``) or, when cp1252 leaves a
  byte undefined, latin-1 (``lyrics_decoded_latin1``); only when the event cannot be found in the
  bytes are the undecodable characters removed (``lyrics_undecodable``). Text then goes through
  :func:`clean_lyric`; events empty after cleaning are dropped (``empty_lyrics``). Case, accents
  and punctuation are kept as written (a trailing ``-`` is the hyphen convention for a syllable
  that the next one continues: ``twin-`` ``kle``).
- Notes before the first lyric event are dropped (``notes_before_first_lyric``); a syllable with
  no note before the next event (or after the last note) is dropped
  (``syllables_without_notes``); when none is left the file is skipped (``lyrics_without_notes``).
- Tempo: the first tempo event (120 qpm when none). Time signatures: all events, a 4/4 row added
  at tick 0 when the first comes later.

Bad files raise :class:`SongSkip` with a stable reason: ``empty_file``, ``not_midi``,
``unreadable``, ``too_long`` (checked on the file size and the note count before any array is
built), ``no_notes``, ``no_lyrics``, ``lyrics_without_notes``, ``invalid_song``.

Writing: MIDI at 480 ticks per quarter, one track ("Lead") holding tempo, time signatures, the
melody and one lyric event per syllable at its onset -- on the melody track itself, because
music21 attaches lyrics only to notes of the same track (symusic and miditoolkit read them from
any track). Text is written as UTF-8, as the song holds it (a syllable ending in ``-``
continues into the next; see ``music/syllabify.py``) (symusic and music21 decode it; miditoolkit decodes latin-1, so non-ASCII syllables come back as
``text.encode('latin-1').decode('utf-8')`` there). Files are written atomically.
"""

from __future__ import annotations

import collections
import os
import pathlib
import re

import numpy as np
import symusic

from songglm_jax import atomic
from songglm_jax.music.song import Song, SongSkip, clean_lyric, TPQ

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NOTES = 20_000
_MELODY_NAME = re.compile(r'lead|melod|vocal|voice|sing', re.IGNORECASE)


def _rescale(ticks: np.ndarray, tpq: int) -> np.ndarray:
  ticks = np.asarray(ticks, dtype=np.int64)
  if tpq == TPQ:
    return ticks
  return (ticks * TPQ + tpq // 2) // tpq


def _load(path: str | os.PathLike, max_file_bytes: int) -> tuple[symusic.Score, bytes]:
  path = pathlib.Path(path)
  size = path.stat().st_size
  if size == 0:
    raise SongSkip('empty_file', f'{path}: empty file')
  if size > max_file_bytes:
    raise SongSkip('too_long', f'{path}: {size} bytes > {max_file_bytes}')
  data = path.read_bytes()
  if data[:4] not in (b'MThd', b'RIFF'):
    raise SongSkip('not_midi', f'{path}: not a MIDI file (header {data[:4]!r})')
  try:  # from bytes: symusic picks the format by extension and would refuse .kar
    return symusic.Score.from_midi(data), data
  except Exception as e:  # symusic raises RuntimeError with its own message on broken files
    raise SongSkip('unreadable', f'{path}: {str(e).splitlines()[0] if str(e) else type(e)}')


def _pick_melody(score: symusic.Score, stats: collections.Counter) -> symusic.Track:
  tracks = [t for t in score.tracks if len(t.notes) and not t.is_drum]
  if not tracks:
    raise SongSkip('no_notes', 'no (non-drum) notes')
  named = [t for t in tracks if _MELODY_NAME.search(t.name or '')]
  pool = named or tracks
  best = max(range(len(pool)), key=lambda i: (len(pool[i].notes), -i))
  melody = pool[best]
  stats['other_track_notes'] += sum(len(t.notes) for t in score.tracks) - len(melody.notes)
  return melody


def _monophonic(time, dur, pitch, vel, stats):
  """Highest note per onset, overlaps cut, zero-length dropped. Inputs in any order."""
  order = np.lexsort((-pitch, time))  # by time, then highest pitch first
  time, dur, pitch, vel = time[order], dur[order], pitch[order], vel[order]
  first = np.ones(len(time), dtype=bool)
  first[1:] = time[1:] != time[:-1]
  stats['polyphony_notes_dropped'] += int((~first).sum())
  time, dur, pitch, vel = time[first], dur[first], pitch[first], vel[first]
  end = time + dur
  nxt = np.append(time[1:], np.iinfo(np.int64).max)
  over = end > nxt
  stats['overlaps_trimmed'] += int(over.sum())
  end = np.minimum(end, nxt)
  keep = end > time
  stats['zero_length_notes'] += int((~keep).sum())
  return time[keep], end[keep], pitch[keep], vel[keep]


def read_midi(path: str | os.PathLike, *, max_notes: int = MAX_NOTES,
              max_file_bytes: int = MAX_FILE_BYTES) -> tuple[Song, dict[str, int]]:
  """One song from a MIDI file with lyric events, and counters of what was repaired.

  Raises:
    SongSkip: the file cannot give a song (see the module docstring for the reasons).
  """
  stats: collections.Counter = collections.Counter()
  score, data = _load(path, max_file_bytes)
  if score.note_num() > max_notes:
    raise SongSkip('too_long', f'{path}: {score.note_num()} notes > {max_notes}')
  tpq = score.ticks_per_quarter
  melody = _pick_melody(score, stats)
  arr = melody.notes.numpy()
  time = _rescale(arr['time'], tpq)
  dur = _rescale(arr['time'] + arr['duration'], tpq) - time
  onset, offset, pitch, vel = _monophonic(time, dur, arr['pitch'].astype(np.int64),
                                          arr['velocity'].astype(np.int64), stats)
  if len(onset) == 0:
    raise SongSkip('no_notes', f'{path}: no notes of positive length')

  events = [(l.time, l.text) for t in score.tracks for l in t.lyrics]
  if not events:
    raise SongSkip('no_lyrics', f'{path}: no lyric events')
  events.sort(key=lambda e: e[0])  # stable: keeps file order at equal times
  texts, times = [], []
  raw = _raw_lyrics(data) if any('\ufffd' in text for _, text in events) else {}
  for t, text in events:
    if '\ufffd' in text:
      text, how = _redecode(text, raw.get(t, []))
      stats[f'lyrics_{how}'] += 1
    text = clean_lyric(text)
    if not text:
      stats['empty_lyrics'] += 1
      continue
    texts.append(text)
    times.append(t)
  if not texts:
    raise SongSkip('no_lyrics', f'{path}: every lyric event is empty')
  ltime = _rescale(np.array(times), tpq)

  before = onset < ltime[0]
  stats['notes_before_first_lyric'] += int(before.sum())
  onset, offset, pitch, vel = onset[~before], offset[~before], pitch[~before], vel[~before]
  if len(onset) == 0:
    raise SongSkip('lyrics_without_notes', f'{path}: no note at or after the first lyric')
  syl = np.searchsorted(ltime, onset, side='right') - 1
  has_note = np.bincount(syl, minlength=len(texts)) > 0
  stats['syllables_without_notes'] += int((~has_note).sum())
  new_index = np.cumsum(has_note) - 1
  kept_texts = tuple(t for t, h in zip(texts, has_note) if h)
  syl_onset = ltime[has_note]
  if len(kept_texts) == 0:
    raise SongSkip('lyrics_without_notes', f'{path}: no lyric event has a note')

  tempo = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
  ts_rows = sorted((int(_rescale(np.array([x.time]), tpq)[0]), x.numerator, x.denominator)
                   for x in score.time_signatures)
  ts = _time_signature_map(ts_rows)
  try:
    song = Song(pitch=pitch, onset=onset, offset=offset, velocity=np.clip(vel, 1, 127),
                note_syllable=new_index[syl], syllables=kept_texts,
                syllable_phrase=np.zeros(len(kept_texts), np.int32), syllable_onset=syl_onset,
                tempo=tempo, time_signatures=ts, name=pathlib.Path(path).stem)
  except ValueError as e:
    raise SongSkip('invalid_song', f'{path}: {e}')
  return song, {k: v for k, v in stats.items() if v}


def _vlq(data: bytes, i: int) -> tuple[int, int]:
  value = 0
  for _ in range(4):
    b = data[i]
    i += 1
    value = (value << 7) | (b & 0x7F)
    if b < 0x80:
      return value, i
  raise ValueError('variable-length number longer than 4 bytes')


def _raw_lyrics(data: bytes) -> dict[int, list[bytes]]:
  """The bytes of every lyric meta event (FF 05) of a MIDI file by tick ({} when the file
  cannot be walked; symusic has read it already, so this only recovers the texts)."""
  out: dict[int, list[bytes]] = collections.defaultdict(list)
  i = data.find(b'MTrk')
  try:
    while 0 <= i and i + 8 <= len(data):
      end = i + 8 + int.from_bytes(data[i + 4:i + 8], 'big')
      j, tick, running = i + 8, 0, 0
      while j < min(end, len(data)):
        delta, j = _vlq(data, j)
        tick += delta
        status = running
        if data[j] & 0x80:
          status = data[j]
          j += 1
          if status < 0xF0:
            running = status  # meta and system events leave running status alone
        if status == 0xFF:
          kind = data[j]
          length, j = _vlq(data, j + 1)
          if kind == 0x05:
            out[tick].append(data[j:j + length])
          j += length
        elif status in (0xF0, 0xF7):
          length, j = _vlq(data, j)
          j += length
        else:
          j += 1 if status & 0xF0 in (0xC0, 0xD0) else 2
      i = data.find(b'MTrk', end)
  except (IndexError, ValueError):
    return {}
  return out


def _redecode(text: str, candidates: list[bytes]) -> tuple[str, str]:
  """A lyric that was not UTF-8, decoded again from its bytes (one of the events at its tick
  whose UTF-8 reading matches): (text, 'decoded_cp1252' | 'decoded_latin1' | 'undecodable')."""
  known = text.replace('\ufffd', '')
  for raw in candidates:
    if raw.decode('utf-8', 'replace').replace('\ufffd', '') == known:
      try:
        return raw.decode('cp1252'), 'decoded_cp1252'
      except UnicodeDecodeError:
        return raw.decode('latin-1'), 'decoded_latin1'
  return known, 'undecodable'


def _time_signature_map(rows: list[tuple[int, int, int]]) -> np.ndarray:
  """Rows sorted by tick -> a valid map: last row wins at a tick, repeats merged, 4/4 at 0."""
  by_tick: dict[int, tuple[int, int]] = {}
  for tick, num, den in rows:
    if num >= 1 and den >= 1 and not den & (den - 1):
      by_tick[tick] = (num, den)
  out: list[tuple[int, int, int]] = []
  if 0 not in by_tick:
    out.append((0, 4, 4))
  for tick in sorted(by_tick):
    if out and out[-1][1:] == by_tick[tick]:
      continue
    out.append((tick, *by_tick[tick]))
  return np.array(out, dtype=np.int64)


def to_score(song: Song) -> symusic.Score:
  """A symusic Score of the song as :func:`write_midi` writes it."""
  score = symusic.Score(TPQ)
  score.tempos.append(symusic.Tempo(0, qpm=float(song.tempo)))
  for tick, num, den in song.time_signatures.tolist():
    score.time_signatures.append(symusic.TimeSignature(tick, num, den))
  lead = symusic.Track('Lead', 0, False)
  for on, off, p, v in zip(song.onset.tolist(), song.offset.tolist(), song.pitch.tolist(),
                           song.velocity.tolist()):
    lead.notes.append(symusic.Note(on, off - on, p, v))
  for tick, text in zip(song.syllable_onset.tolist(), song.syllables):
    lead.lyrics.append(symusic.TextMeta(tick, text))
  score.tracks.append(lead)
  return score


def write_midi(song: Song, path: str | os.PathLike) -> None:
  """Write ``song`` as a type-1 MIDI file with lyric events (atomically)."""
  atomic.write_bytes(path, bytes(to_score(song).dumps_midi()))
