"""Score reading (music21, ABC w: lines), MusicXML writing and the embedded corpus listing."""

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from music21 import chord, meter, note, stream, tempo, tie

from songglm_jax.music import abc_lyrics, corpus, score_writer, scores, syllabify
from songglm_jax.music.song import Song, SongSkip
from tests.music import score_xml
from tests.songs import make_song


def _n(name, ql, *lyrics, tie_type=None):
  """A note (or a chord when ``name`` is a list) with lyrics ``(number, text)``."""
  n = chord.Chord(name, quarterLength=ql) if isinstance(name, list) else note.Note(
      name, quarterLength=ql)
  for number, text in lyrics:
    n.lyrics.append(note.Lyric(text, number=number))
  if tie_type:
    n.tie = tie.Tie(tie_type)
  return n


def _part(*measures, ts='4/4', qpm=None):
  part = stream.Part()
  for k, content in enumerate(measures):
    m = stream.Measure(number=k)
    if k == 0:
      m.insert(0, meter.TimeSignature(ts))
      if qpm:
        m.insert(0, tempo.MetronomeMark(number=qpm))
    m.append(content)
    part.append(m)
  return part


def _hand_built():
  grace = note.Note('F5').getGrace()
  return stream.Score([_part(
      [_n('G4', 1, (1, 'Oh'), (2, 'Ah'))],  # a one-beat pickup
      [_n('C5', 2, (1, 'say'), (2, 'sing')), note.Rest(quarterLength=1),
       _n(['E4', 'A4'], 1, (1, 'can'), (2, 'a'))],
      [grace, _n('B4', 2, (1, 'you'), (2, 'song')), _n('D5', 2, (1, 'see'), tie_type='start')],
      [_n('D5', 1, tie_type='stop'), _n('E5', 1), _n('C5', 2, (1, 'me'), (2, 'now'))],
      qpm=100), _part([_n('C3', 4)], [_n('C3', 4)])])


def test_hand_built_stream_notes_and_verses():
  songs, stats = scores.read_score(_hand_built(), name='hand')
  assert [s.name for s in songs] == ['hand', 'hand_v2']
  v1, v2 = songs
  np.testing.assert_array_equal(v1.pitch, [67, 72, 69, 71, 74, 76, 72])
  np.testing.assert_array_equal(v1.onset, [1440, 1920, 3360, 3840, 4800, 6240, 6720])
  np.testing.assert_array_equal(v1.offset, [1920, 2880, 3840, 4800, 6240, 6720, 7680])
  assert v1.syllables == ('Oh', 'say', 'can', 'you', 'see', 'me')
  np.testing.assert_array_equal(v1.note_syllable, [0, 1, 2, 3, 4, 4, 5])
  assert v2.syllables == ('Ah', 'sing', 'a', 'song', 'now')
  np.testing.assert_array_equal(v2.note_syllable, [0, 1, 2, 3, 3, 3, 4])
  np.testing.assert_array_equal(v2.onset, v1.onset)
  for s in songs:
    assert s.tempo == 100 and s.time_signatures.tolist() == [[0, 4, 4]]
    assert np.all(s.velocity == scores.DEFAULT_VELOCITY) and np.all(s.syllable_phrase == 0)
  assert stats['chords_reduced'] == 1 and stats['grace_notes_dropped'] == 1
  assert stats['ties_merged'] == 1 and stats['verses'] == 2


def test_pickup_puts_first_downbeat_on_a_bar_line():
  song = scores.read_score(_hand_built())[0][0]
  from songglm_jax.music import meter as m
  bars, pos = m.bar_and_position(song.onset[:2], song.time_signatures)
  assert bars.tolist() == [0, 1] and pos.tolist() == [1440, 0]


def test_two_voices_in_one_staff_reduced_to_one_melody():
  upper = stream.Voice([_n('C5', 2, (1, 'a')), _n('D5', 2, (1, 'b'))])
  lower = stream.Voice([_n('E5', 1), _n('G4', 2), note.Rest(quarterLength=1)])
  m = stream.Measure()
  for element in (meter.TimeSignature('4/4'), upper, lower):
    m.insert(0, element)
  (song,), stats = scores.read_score(stream.Part([m]), name='v')
  assert song.pitch.tolist() == [72, 67, 74]
  assert song.onset.tolist() == [0, 480, 960] and song.offset.tolist() == [480, 960, 1920]
  assert song.note_syllable.tolist() == [0, 0, 1]
  assert stats['polyphony_notes_dropped'] == 1 and stats['overlaps_trimmed'] == 2


def test_notes_before_first_lyric_dropped_and_counted():
  part = _part([_n('C4', 1), _n('D4', 1), _n('E4', 1, (1, 'la')), _n('F4', 1)])
  songs, stats = scores.read_score(part, name='x')
  assert songs[0].pitch.tolist() == [64, 65] and songs[0].onset.tolist() == [960, 1440]
  assert stats['notes_before_first_lyric'] == 2


def test_verse_ends_where_only_other_verses_go_on():
  # A repeated first line (verses 1 and 2), then a continuation that only verse 2 sings.
  part = _part([_n('C4', 1, (1, 'a'), (2, 'b')), _n('D4', 1, (1, 'c'), (2, 'd')), _n('E4', 1),
                _n('F4', 1, (2, 'e'))], [_n('G4', 4, (2, 'f'))])
  (v1, v2), stats = scores.read_score(part, name='r')
  assert v1.syllables == ('a', 'c') and v1.note_syllable.tolist() == [0, 1, 1]
  assert v2.syllables == ('b', 'd', 'e', 'f') and v2.num_notes == 5
  assert stats['notes_after_last_lyric'] == 2


def test_stray_verse_dropped():
  sung = [_n(p, 1, (1, f's{i}')) for i, p in enumerate(['C4', 'D4', 'E4', 'F4', 'G4', 'A4', 'B4',
                                                        'C5', 'D5', 'E5', 'F5', 'G5'])]
  sung[2].lyrics.append(note.Lyric('stray', number=2))
  (song,), stats = scores.read_score(_part(*[sung[i:i + 4] for i in range(0, 12, 4)]), name='t')
  assert song.num_syllables == 12 and stats['stray_verses'] == 1


def test_first_time_signature_later_gives_4_4_from_0():
  part = stream.Part([_n('C4', 1, (1, 'a')), _n('D4', 1, (1, 'b'))])
  part.insert(1.0, meter.TimeSignature('3/4'))
  song = scores.read_score(part, name='t')[0][0]
  assert song.time_signatures.tolist() == [[0, 4, 4], [480, 3, 4]]


def test_lyric_text_strips_hyphenation_marks():
  assert scores.lyric_text(' mar- ') == 'mar'
  assert scores.lyric_text('-des-') == 'des'
  assert scores.lyric_text('well-known') == 'well-known'
  assert scores.lyric_text('_') == '' and scores.lyric_text(None) == ''


def test_figured_bass_lyrics_rejected():
  figures = ['6', '6/5', '5', '#', '9 8', '7', '4 3', 'b']
  bass = _part([_n('C3', 1, (1, f)) for f in figures[:4]], [_n('D3', 1, (1, f))
                                                           for f in figures[4:]])
  violin = _part([_n('C5', 4)], [_n('D5', 4)])
  with pytest.raises(SongSkip) as e:
    scores.read_score(stream.Score([violin, bass]), name='corelli')
  assert e.value.reason == 'lyrics_not_words'


def test_part_with_words_preferred_over_figures_above_it():
  figures = _part([_n('C4', 1, (1, '6')), _n('D4', 1, (1, '5'))])
  voice = _part([_n('E4', 1, (1, 'so')), _n('F4', 1, (1, 'la'))])
  song = scores.read_score(stream.Score([figures, voice]), name='v')[0][0]
  assert song.syllables == ('so', 'la') and song.pitch.tolist() == [64, 65]


@pytest.mark.parametrize('score, reason', [
    (lambda: stream.Score([_part([_n('C4', 4)])]), 'no_lyrics'),
    (lambda: stream.Score([_part([note.Rest(quarterLength=4)])]), 'no_notes'),
])
def test_reject_reasons(score, reason):
  with pytest.raises(SongSkip) as e:
    scores.read_score(score(), name='bad')
  assert e.value.reason == reason


def test_unreadable_and_empty_files(tmp_path):
  bad = tmp_path / 'bad.musicxml'
  bad.write_text('<score-partwise><part id="P1"><measure')
  empty = tmp_path / 'empty.xml'
  empty.write_bytes(b'')
  for path, reason in [(bad, 'unreadable'), (empty, 'empty_file'),
                       (tmp_path / 'missing.mxl', 'unreadable')]:
    with pytest.raises(SongSkip) as e:
      scores.read_score(path)
    assert e.value.reason == reason


def test_song_invariant_violation_is_a_skip():
  part = stream.Part()
  part.insert(-2, _n('C4', 1, (1, 'a')))  # before the part's start: a negative onset
  part.insert(0, _n('D4', 1, (1, 'b')))
  with pytest.raises(SongSkip) as e:
    scores.read_score(part, name='neg')
  assert e.value.reason == 'invalid_song' and 'onset' in str(e.value)


def test_bad_time_signature_is_a_skip_not_a_traceback():
  part = _part([_n('C4', 1, (1, 'a')), _n('D4', 2, (1, 'b'))], ts='3/3')
  with pytest.raises(SongSkip) as e:
    scores.read_score(part, name='odd')
  assert e.value.reason == 'bad_time_signature'


ABC = """X:1
T:Test
M:3/4
L:1/4
Q:1/4=90
K:G
D | G2 A | B2- B | z A G | A3 |]
w: Oh say can you_ see | by
w: Ah sing* a song now too
"""


def test_abc_w_lines_two_verses(tmp_path):
  path = tmp_path / 'tune.abc'
  path.write_text(ABC)
  (v1, v2), _ = scores.read_score(path)
  assert (v1.name, v2.name) == ('tune', 'tune_v2')
  assert v1.pitch.tolist() == [62, 67, 69, 71, 69, 67, 69]
  assert v1.onset.tolist() == [960, 1440, 2400, 2880, 4800, 5280, 5760]
  assert v1.offset.tolist() == [1440, 2400, 2880, 4320, 5280, 5760, 7200]
  assert v1.syllables == ('Oh', 'say', 'can', 'you', 'see', 'by')
  assert v1.note_syllable.tolist() == [0, 1, 2, 3, 3, 4, 5]
  assert v2.syllables == ('Ah', 'sing', 'a', 'song', 'now', 'too')
  assert v2.note_syllable.tolist() == [0, 1, 1, 2, 3, 4, 5]
  assert v1.tempo == 90 and v1.time_signatures.tolist() == [[0, 3, 4]]


def test_abc_notes_after_the_last_w_block_are_not_sung(tmp_path):
  path = tmp_path / 'incipit.abc'
  path.write_text('X:1\nT:Incipit\nM:2/4\nL:1/4\nK:C\nC D | E2 |\nw: Ky-ri-e\n'
                  'G A | B2 |\nc d | e2 |]\n')
  (song,), _ = scores.read_score(path)
  assert song.syllables == ('Ky', 'ri', 'e') and song.pitch.tolist() == [60, 62, 64]


def test_humdrum_text_spine(tmp_path):
  path = tmp_path / 'hum.krn'
  path.write_text('**kern\t**text\n*staff1\t*staff1\n*M3/4\t*\n=1\t=1\n4c\tHel-\n4d\t-lo\n'
                  '4e\tworld\n=2\t=2\n2.f\tyes\n*-\t*-\n')
  (song,), _ = scores.read_score(path)
  assert song.syllables == ('Hel', 'lo', 'world', 'yes')
  assert song.onset.tolist() == [0, 480, 960, 1440] and song.offset[-1] == 2880
  assert song.time_signatures.tolist() == [[0, 3, 4]]


def test_abc_lyric_items():
  items = abc_lyrics.lyric_items(r'Hel-lo wor_ ld -- a~b c\-d * |')
  assert items == [('syl', 'Hel'), ('syl', 'lo'), ('syl', 'wor'), ('hold', ''), ('syl', 'ld'),
                   ('hold', ''), ('hold', ''), ('syl', 'a b'), ('syl', 'c-d'), ('hold', ''),
                   ('bar', '')]


def test_abc_tune_book_one_work_per_tune_and_number_selects(tmp_path):
  path = tmp_path / 'book.abc'
  path.write_text('X:1\nT:One\nM:2/4\nL:1/4\nK:C\nC D | E2 |]\nw: a b c\n\n'
                  'X:2\nT:Two\nM:2/4\nL:1/4\nK:C\nG A | B2 |]\nw: d e f\n')
  songs, _ = scores.read_score(path)
  assert [(s.name, s.syllables) for s in songs] == [('book_x1', ('a', 'b', 'c')),
                                                    ('book_x2', ('d', 'e', 'f'))]
  (only,), _ = scores.read_score(f'{path}#2')
  assert only.name == 'book_x2' and only.pitch.tolist() == [67, 69, 71]


def test_abc_voices_as_tunes_with_one_title_are_one_work(tmp_path):
  path = tmp_path / 'voices.abc'
  path.write_text('X:1\nT:Song\nM:2/4\nL:1/4\nK:C\nG A | B2 |]\nw: up-per voice\n\n'
                  'X:2\nT:Song\nM:2/4\nL:1/4\nK:C\nC D | E2 |]\nw: low-er voice\n')
  (song,), _ = scores.read_score(path)
  assert song.name == 'voices' and song.syllables == ('up', 'per', 'voice')


def test_write_musicxml_round_trip(tmp_path):
  song = make_song([60, 62, 64, 65, 67, 69], [1440, 1920, 2400, 3000, 3840, 4800],
                   [480, 480, 600, 840, 480, 960], [0, 1, 1, 2, 3, 3],
                   ['Hel', '/lo', 'wörld,', 'ça'], time_signatures=((0, 4, 4), (3840, 3, 4)),
                   tempo=96.5, name='rt')
  path = tmp_path / 'rt.musicxml'
  scores.write_musicxml(song, path)
  (back,), _ = scores.read_score(path)
  assert back.same_as(song), (back, back.onset, back.offset)
  assert back.name == 'rt'
  text = path.read_text()
  assert '<syllabic>begin</syllabic>' in text and '<syllabic>end</syllabic>' in text
  assert [p.name for p in tmp_path.iterdir()] == ['rt.musicxml']  # no temporary file left


_SYLLABLES = ['la', 'Hel', '/lo', 'wörld,', 'ça', "o'er", 'a b', 'end.', '¿qué?', '日本']


@st.composite
def grid_songs(draw):
  num, den = draw(st.sampled_from([(4, 4), (3, 4), (6, 8), (2, 2), (5, 8), (7, 16)]))
  bar = num * 1920 // den
  rows = [(0, num, den)]
  if draw(st.booleans()):  # a change at a bar line, or cutting a later bar short
    at = bar * draw(st.integers(1, 3)) + draw(st.sampled_from([0, 0, bar // 2]))
    rows.append((at, *draw(st.sampled_from([(3, 4), (4, 4), (9, 8)]))))
  n = draw(st.integers(1, 14))
  unit = draw(st.sampled_from([30, 40]))
  steps = draw(st.lists(st.integers(1, 24), min_size=2 * n, max_size=2 * n))
  rest = draw(st.lists(st.booleans(), min_size=n, max_size=n))
  t = draw(st.integers(0, 2 * bar // unit)) * unit
  onsets, offsets = [], []
  for i in range(n):
    onsets.append(t)
    t += steps[2 * i] * unit
    offsets.append(t)
    if rest[i]:
      t += steps[2 * i + 1] * unit
  moves = draw(st.lists(st.booleans(), min_size=n - 1, max_size=n - 1))
  note_syllable = np.concatenate([[0], np.cumsum(moves)]).astype(int)
  s = int(note_syllable[-1]) + 1
  return Song(pitch=np.array(draw(st.lists(st.integers(36, 96), min_size=n, max_size=n))),
              onset=np.array(onsets), offset=np.array(offsets),
              velocity=np.array(draw(st.lists(st.integers(1, 127), min_size=n, max_size=n))),
              note_syllable=note_syllable,
              syllables=tuple(draw(st.lists(st.sampled_from(_SYLLABLES), min_size=s,
                                            max_size=s))),
              syllable_phrase=np.zeros(s, int), tempo=draw(st.sampled_from([60, 96.5, 120, 133])),
              time_signatures=np.array(rows), name='g')


@settings(max_examples=25, deadline=None)
@given(grid_songs())
def test_write_read_round_trip_on_grid(tmp_path_factory, song):
  path = tmp_path_factory.mktemp('rt') / 'g.musicxml'
  scores.write_musicxml(song, path)
  (back,), _ = scores.read_score(path)
  written = score_writer.notation_song(song)
  assert back.same_as(written), (song, song.onset, song.offset, back.onset, back.offset,
                                 back.time_signatures)
  moved = np.abs(np.concatenate([written.onset - song.onset, written.offset - song.offset]))
  assert moved.max() <= 40  # the nearer of the 64th and triplet grids
  if not np.any(np.concatenate([song.onset, song.offset]) % 30):
    assert written is song  # on the 64th grid: written as it is


def test_note_values_split_into_written_durations():
  assert score_writer.note_values(480) == (480,)
  assert score_writer.note_values(720) == (720,)  # dotted quarter
  assert score_writer.note_values(600) == (480, 120)
  assert len(score_writer.note_values(70)) == 2 and sum(score_writer.note_values(70)) == 70
  assert score_writer.note_values(11) == (10, 1)  # off-grid: a short tuplet piece at the end
  assert all(sum(score_writer.note_values(n)) == n for n in range(1, 2000))


def test_off_grid_song_round_trip(tmp_path):
  song = make_song([60, 62, 64, 65], [0, 7, 103, 500], [7, 96, 1, 1333], [0, 0, 1, 2],
                   ['a', 'b', 'c'], name='odd')
  scores.write_musicxml(song, tmp_path / 'odd.xml')
  (back,), _ = scores.read_score(tmp_path / 'odd.xml')
  assert back.same_as(score_writer.notation_song(song)), (back.onset, back.offset)
  # the first beat fits no grid without swallowing a note: its exact ticks are kept; the
  # others are moved to the 64th grid
  assert back.onset.tolist() == [0, 7, 103, 510] and back.offset.tolist() == [7, 103, 104, 1830]
  assert score_writer.notation(song).kinds[:4] == ('exact', 'plain', 'plain', 'plain')


def test_write_musicxml_refuses_mxl_and_empty_syllables(tmp_path):
  song = make_song([60], [0], [480], [0], ['la'])
  with pytest.raises(ValueError, match='mxl'):
    scores.write_musicxml(song, tmp_path / 'x.mxl')
  with pytest.raises(ValueError, match='empty syllables'):
    scores.write_musicxml(song.replace(syllables=('-',)), tmp_path / 'x.musicxml')


def test_corpus_listing_sorted_and_filtered():
  paths = corpus.music21_corpus_paths()
  root = corpus.music21_corpus_root()
  rel = [os.path.relpath(p, root).replace(os.sep, '/') for p in paths]
  assert rel == sorted(rel) and len(rel) > 400
  assert 'bach/bwv269.mxl' in rel and 'josquin/milleRegrets.abc' in rel
  assert 'monteverdi/madrigal.3.2.mxl' in rel  # UTF-16 inside the zip
  assert 'bach/bwv1.6.mxl' not in rel  # a chorale without lyrics
  assert 'monteverdi/madrigal.3.1_old.mxl' not in rel
  assert 'trecento/PMFC_04-Cara mi donna.xml' not in rel  # only <lyric-font>, no lyrics


def test_corpus_bach_chorale():
  songs, _ = scores.read_score(corpus.music21_corpus_root() / 'bach' / 'bwv269.mxl')
  first = songs[0]
  assert first.syllables[:5] == ('Aus', 'mei', 'nes', 'Her', 'zens')
  assert first.onset[0] == 960 and first.time_signatures[0].tolist() == [0, 3, 4]
  assert len(songs) == 2 and 30 <= songs[1].num_syllables <= 60


def test_corpus_monteverdi_madrigal():
  (song,), _ = scores.read_score(corpus.music21_corpus_root() / 'monteverdi' /
                                 'madrigal.3.2.mxl')
  assert 100 <= song.num_syllables <= song.num_notes <= 400
  assert all(not s.endswith('-') for s in song.syllables)


# ---- scores a singer can read (issue 13) -----------------------------------------------------------
def _typed_song(text: str, step: int = 480, **kw):
  """A song of one quarter note per syllable of typed lyrics (``lyrics.from_text``)."""
  from songglm_jax.inference import lyrics as lyrics_lib
  lyr = lyrics_lib.from_text(text, **kw)
  s = lyr.num_syllables
  return make_song([60 + i % 12 for i in range(s)], [step * i for i in range(s)], [step] * s,
                   list(range(s)), list(lyr.syllables), phrases=lyr.syllable_phrase, name='x_y')


def test_score_joins_the_syllables_of_a_word(tmp_path):
  song = _typed_song('Twinkle little star, up above, like a beautiful diamond. I')
  scores.write_musicxml(song, tmp_path / 's.musicxml')
  got = score_xml.read(tmp_path / 's.musicxml').lyrics
  assert got == [('begin', 'Twin'), ('end', 'kle'), ('begin', 'lit'), ('end', 'tle'),
                 ('single', 'star,'), ('single', 'up'), ('begin', 'a'), ('end', 'bove,'),
                 ('single', 'like'), ('single', 'a'), ('begin', 'beau'), ('middle', 'ti'),
                 ('end', 'ful'), ('begin', 'dia'), ('end', 'mond.'), ('single', 'I')]
  (back,), _ = scores.read_score(tmp_path / 's.musicxml')
  assert back.syllables == tuple(syllabify.plain(s) for s in song.syllables)


def test_score_title_composer_and_voice_instrument(tmp_path):
  song = _typed_song('Twinkle, twinkle, little star. How I wonder')
  scores.write_musicxml(song, tmp_path / 'a.musicxml')
  x = score_xml.read(tmp_path / 'a.musicxml')
  assert x.title == x.work_title == 'Twinkle, twinkle, little star'  # not the file stem 'x_y'
  assert not [c for c in x.creators if c[0] == 'composer']  # no 'Music21'
  assert x.instruments == ['Voice'] and x.midi_programs == [54]  # MIDI program 54: voice oohs
  scores.write_musicxml(song, tmp_path / 'b.musicxml', title='My Song')
  assert score_xml.read(tmp_path / 'b.musicxml').title == 'My Song'
  cjk = _typed_song('一闪一闪亮晶晶，满天都是小星星')
  scores.write_musicxml(cjk, tmp_path / 'c.musicxml')
  assert score_xml.read(tmp_path / 'c.musicxml').title == '一闪一闪亮晶晶, 满天都是小星星'


def test_tuplets_only_for_triplet_groups(tmp_path):
  # beat 0: a triplet-eighth group; beat 1: 40-tick times that are no triplet rhythm (moved to
  # 64ths); beat 3: a 40-tick note, a 400-tick rest (once written as a 6:5 tuplet), a 40-tick note
  on = [0, 160, 320, 520, 1440, 1880]
  off = [160, 320, 480, 920, 1480, 1920]
  song = make_song([60, 62, 64, 65, 67, 69], on, [b - a for a, b in zip(on, off)],
                   list(range(6)), ['a', 'b', 'c', 'd', 'e', 'f'])
  nota = score_writer.notation(song)
  assert nota.kinds == ('triplet', 'plain', 'plain', 'plain')
  assert nota.onset.tolist() == [0, 160, 320, 510, 1440, 1890]
  assert nota.offset.tolist() == [160, 320, 480, 930, 1470, 1920]
  scores.write_musicxml(song, tmp_path / 't.musicxml')
  x = score_xml.read(tmp_path / 't.musicxml')
  assert x.tuplets == [(3, 2)] * 3 and x.brackets == ['start', 'stop']
  (back,), _ = scores.read_score(tmp_path / 't.musicxml')
  assert back.same_as(score_writer.notation_song(song))
  # a triplet quarter + eighth is a triplet group too; the song is then written as it is
  song = make_song([60, 62, 64], [0, 320, 480], [320, 160, 480], [0, 1, 2], ['a', 'b', 'c'])
  assert score_writer.notation(song).kinds[:2] == ('triplet', 'plain')
  assert score_writer.notation_song(song) is song


def test_pickup_measure_is_implicit(tmp_path):
  song = make_song([60, 62], [1440, 1920], [480, 480], [0, 1], ['Up-', 'on'])
  scores.write_musicxml(song, tmp_path / 'p.musicxml')
  assert score_xml.read(tmp_path / 'p.musicxml').implicit_measures == ['0']


def test_read_songs_bounds_the_file_size_of_every_format(tmp_path):
  from songglm_jax.music import io as song_io
  from songglm_jax.music import midi
  song = make_song([60, 62], [0, 480], [480, 480], [0, 1], ['la', 'la.'])
  for name in ('a.mid', 'a.musicxml'):
    song_io.write_song(song, tmp_path / name)
    size = (tmp_path / name).stat().st_size
    assert len(song_io.read_songs(tmp_path / name, max_file_bytes=size)[0]) == 1
    with pytest.raises(SongSkip) as e:
      song_io.read_songs(tmp_path / name, max_file_bytes=size - 1)
    assert e.value.reason == 'too_long' and name in str(e.value)
  abc = tmp_path / 'big.abc'
  with open(abc, 'wb') as f:
    f.truncate(midi.MAX_FILE_BYTES + 1)  # the default bound
  with pytest.raises(SongSkip, match='bytes >') as e:
    song_io.read_songs(f'{abc}#1')
  assert e.value.reason == 'too_long'
