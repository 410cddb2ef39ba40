import pytest
import symusic

from songglm_jax.music import midi
from songglm_jax.music.song import SongSkip
from tests.conftest import require_sample
from tests.songs import scale_song


def _write_raw(path, lyrics, notes, lyric_track_separate=True, tpq=480):
  """A MIDI file in the sample format: lyric events on track 0, melody on track 1."""
  score = symusic.Score(tpq)
  lyr = symusic.Track('', 0, False)
  for t, text in lyrics:
    lyr.lyrics.append(symusic.TextMeta(t, text))
  lead = symusic.Track('Lead', 0, False)
  for t, d, p in notes:
    lead.notes.append(symusic.Note(t, d, p, 100))
  score.tracks.append(lyr)
  score.tracks.append(lead)
  score.dump_midi(str(path))


def test_reads_sample_format(tmp_path):
  p = tmp_path / 'x.mid'
  _write_raw(p, [(0, 'al'), (480, 'a'), (720, 'bam.')],
             [(0, 480, 60), (480, 120, 62), (600, 120, 64), (720, 960, 65)])
  song, stats = midi.read_midi(p)
  assert song.syllables == ('al', 'a', 'bam.')
  assert song.note_syllable.tolist() == [0, 1, 1, 2]
  assert song.offset.tolist() == [480, 600, 720, 1680]
  assert stats == {}


def test_rescales_ticks_to_480(tmp_path):
  p = tmp_path / 'x.mid'
  _write_raw(p, [(0, 'a'), (96, 'b')], [(0, 96, 60), (96, 192, 62)], tpq=96)
  song, _ = midi.read_midi(p)
  assert song.onset.tolist() == [0, 480] and song.offset.tolist() == [480, 1440]


def test_repairs_are_counted(tmp_path):
  p = tmp_path / 'x.mid'
  # a note before the first lyric, a chord (highest kept), an overlap, a syllable without notes
  _write_raw(p, [(480, 'one'), (960, 'lost'), (961, 'two'), (5000, 'after')],
             [(0, 240, 50), (480, 600, 60), (480, 600, 67), (961, 480, 62)])
  song, stats = midi.read_midi(p)
  assert song.pitch.tolist() == [67, 62]
  assert song.syllables == ('one', 'two')
  assert stats == {'notes_before_first_lyric': 1, 'polyphony_notes_dropped': 1,
                   'overlaps_trimmed': 1, 'syllables_without_notes': 2}
  assert song.offset[0] == 961


@pytest.mark.parametrize('content, reason', [
    (b'', 'empty_file'), (b'not a midi file at all', 'not_midi'),
    (b'MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x01\x00', 'unreadable')])
def test_bad_files_raise_skip_with_reason(tmp_path, content, reason):
  p = tmp_path / 'bad.mid'
  p.write_bytes(content)
  with pytest.raises(SongSkip) as e:
    midi.read_midi(p)
  assert e.value.reason == reason


def test_no_lyrics_and_too_long(tmp_path):
  p = tmp_path / 'x.mid'
  _write_raw(p, [], [(0, 480, 60)])
  with pytest.raises(SongSkip, match='lyric') as e:
    midi.read_midi(p)
  assert e.value.reason == 'no_lyrics'
  _write_raw(p, [(0, 'a')], [(i * 10, 10, 60) for i in range(50)])
  with pytest.raises(SongSkip) as e:
    midi.read_midi(p, max_notes=20)
  assert e.value.reason == 'too_long'


def test_non_ascii_and_control_characters(tmp_path):
  p = tmp_path / 'x.mid'
  _write_raw(p, [(0, 'grü\x07'), (480, '\x01'), (960, 'ße')], [(0, 480, 60), (960, 480, 62)])
  song, stats = midi.read_midi(p)
  assert song.syllables == ('grü', 'ße') and stats == {'empty_lyrics': 1}


def _raw_midi(lyrics: list[bytes]) -> bytes:
  """A type-0 MIDI file, byte by byte: lyric events holding the given bytes, one quarter note
  after each (symusic cannot write text that is not UTF-8)."""
  def vlq(n):
    out = [n & 0x7F]
    while n > 127:
      n >>= 7
      out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))
  body = b''
  for k, text in enumerate(lyrics):
    body += b'\x00\xff\x05' + vlq(len(text)) + text + b'\x00\x90' + bytes([60 + k, 80])
    body += vlq(480) + b'\x80' + bytes([60 + k, 0])
  body += b'\x00\xff\x2f\x00'
  return (b'MThd' + (6).to_bytes(4, 'big') + b'\x00\x00\x00\x01\x01\xe0' + b'MTrk' +
          len(body).to_bytes(4, 'big') + body)


def test_lyrics_not_utf8_decoded_as_cp1252_or_latin1_and_counted(tmp_path):
  p = tmp_path / 'x.mid'
  p.write_bytes(_raw_midi(['Grüße'.encode('cp1252'), 'café'.encode('utf-8'),
                           '“été”'.encode('cp1252'), b'na\x81\xefve']))
  song, stats = midi.read_midi(p)
  # 0x81 is not a cp1252 character: latin-1 reads it as a control character, which is removed
  assert song.syllables == ('Grüße', 'café', '“été”', 'naïve')
  assert stats == {'lyrics_decoded_cp1252': 2, 'lyrics_decoded_latin1': 1}


def test_hyphen_convention_and_case_kept_in_lyric_events(tmp_path):
  song = scale_song(4, [1, 1, 1, 1]).replace(syllables=('Twin-', 'kle,', 'I', 'Don’t'))
  midi.write_midi(song, tmp_path / 'h.mid')
  events = [l.text for t in symusic.Score(str(tmp_path / 'h.mid')).tracks for l in t.lyrics]
  assert events == ['Twin-', 'kle,', 'I', 'Don’t']
  back, stats = midi.read_midi(tmp_path / 'h.mid')
  assert back.same_as(song) and stats == {}


def test_write_read_round_trip_and_other_readers(tmp_path):
  import miditoolkit
  import music21
  song = scale_song(6, [1, 2, 1, 3, 1, 1], step=240)
  song = song.replace(syllables=('twin', 'kle', 'twin', 'kle', 'lit', 'tle.'))
  p = tmp_path / 'out.mid'
  midi.write_midi(song, p)
  back, stats = midi.read_midi(p)
  assert back.same_as(song) and stats == {}
  m = miditoolkit.MidiFile(str(p))
  assert [l.text for l in m.lyrics] == list(song.syllables)
  assert [n.pitch for n in m.instruments[0].notes] == song.pitch.tolist()
  part = music21.converter.parse(str(p)).parts[0].stripTies()
  notes = list(part.recurse().notes)
  assert [n.pitch.midi for n in notes] == song.pitch.tolist()
  assert [round(n.getOffsetInHierarchy(part) * 480) for n in notes] == song.onset.tolist()
  assert [n.lyric for n in notes if n.lyric] == list(song.syllables)


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
  p = tmp_path / 'keep.mid'
  p.write_bytes(b'old content')
  song = scale_song(3)
  monkeypatch.setattr(midi, 'to_score', lambda s: (_ for _ in ()).throw(RuntimeError('boom')))
  with pytest.raises(RuntimeError):
    midi.write_midi(song, p)
  assert p.read_bytes() == b'old content'
  assert list(tmp_path.iterdir()) == [p]


def test_all_shared_songs_read_and_round_trip(tmp_path):
  root = require_sample()
  files = sorted(root.glob('*/*.mid'))
  assert len(files) == 1900
  bad = []
  for i, f in enumerate(files):
    song, _ = midi.read_midi(f)
    assert song.num_syllables > 0
    if i % 10 == 0:  # write/read a tenth of them
      midi.write_midi(song, tmp_path / 'rt.mid')
      if not midi.read_midi(tmp_path / 'rt.mid')[0].same_as(song):
        bad.append(f.name)
  assert bad == []
