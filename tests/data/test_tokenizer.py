import numpy as np
import pytest

from songglm_jax.data import tokenizer as T
from songglm_jax.music.song import SongSkip
from tests.conftest import require_sample
from tests.songs import make_song, scale_song


def _tok(songs, **kw):
  return T.Tokenizer(T.fit_vocab(songs, min_count=1, **kw))


def test_layout_and_fields():
  s = make_song([60, 62, 64], [0, 480, 1920 + 40], [480, 480, 80], [0, 0, 1], ['Hel', 'lo.'],
                [0, 1])
  tok = _tok([s])
  x = tok.tokenize(s)
  assert x.dtype == np.int32 and x.shape == (2 + 3 + 4, len(T.FIELDS))
  assert x[[0, 3, 4, 8], T.F.type].tolist() == [T.BOS, T.EOS, T.BOS, T.EOS]
  assert (x[0] == T.BOS).all() and (x[8] == T.EOS).all()
  assert x[1:3, T.F.type].tolist() == [T.LYRIC] * 2
  assert [tok.vocab.syllables[i - T.NUM_SPECIAL] for i in x[1:3, T.F.syllable]] == ['hel', 'lo']
  notes = x[5:8] - T.NUM_SPECIAL
  assert notes[:, T.F.bar].tolist() == [0, 0, 1]
  assert tok.position_grid[notes[:, T.F.position]].tolist() == [0, 480, 40]
  assert tok.duration_grid[notes[:, T.F.duration]].tolist() == [480, 480, 80]
  assert notes[:, T.F.pitch].tolist() == [60, 62, 64]
  assert notes[:, T.F.word_id].tolist() == [0, 0, 1]
  assert notes[:, T.F.phrase_id].tolist() == [0, 0, 1]
  assert (x[1:3, T.F.bar] == T.NA).all() and (x[5:8, T.F.syllable] == T.NA).all()


def test_grid_is_64ths_and_triplets():
  g = T.time_grid(480)
  assert set(range(0, 481, 30)) <= set(g.tolist()) and set(range(0, 481, 40)) <= set(g.tolist())
  assert len(g) == 25  # 24 points per quarter plus the end point


def test_round_trip_exact_up_to_grid_and_stats():
  s = make_song([60, 62, 64, 65], [0, 455, 1000, 1930], [470, 500, 500, 3000], [0, 1, 2, 3],
                list('abcd'), [0, 0, 1, 1])
  tok = _tok([s])
  st = T.QuantizeStats()
  q = T.quantize(s, stats=st)
  assert q.onset.tolist() == [0, 450, 1000, 1920]
  # 470 snaps to 480 but is cut at the next onset (450); 500 snaps to 510 (nearest of 480,
  # 510); 3000 is clipped to one 4/4 bar.
  assert (q.offset - q.onset).tolist() == [450, 510, 510, 1920]
  assert st.onsets_snapped == 2 and st.durations_clipped == 1 and st.durations_cut_at_next == 1
  back = tok.detokenize(tok.tokenize(s), time_signatures=s.time_signatures, tempo=s.tempo)
  for k in ('pitch', 'onset', 'offset', 'note_syllable', 'syllable_phrase', 'syllable_onset'):
    assert np.array_equal(getattr(back, k), getattr(q, k)), k


def test_triple_meter_and_meter_change_round_trip():
  ts = ((0, 3, 4), (2880, 6, 8))
  s = make_song([60, 62, 64, 65], [0, 1440, 2880, 2880 + 1440 + 160], [480, 1440, 480, 160],
                [0, 1, 2, 3], list('abcd'), time_signatures=ts)
  tok = _tok([s])
  x = tok.tokenize(s)
  assert (x[7:11, T.F.bar] - T.NUM_SPECIAL).tolist() == [0, 1, 2, 3]
  back = tok.detokenize(x, time_signatures=s.time_signatures)
  assert back.onset.tolist() == s.onset.tolist() and back.offset.tolist() == s.offset.tolist()


def test_unknown_syllables_map_to_unk():
  a, b = scale_song(4), scale_song(4).replace(syllables=('la0', 'zzz', 'la2', 'la3'))
  tok = _tok([a])
  x = tok.tokenize(b)
  assert x[2, T.F.syllable] == T.UNK
  assert tok.detokenize(x).syllables[1] == '<unk>'


def test_vocab_is_order_independent_and_json_round_trips():
  songs = [scale_song(5, name=str(i)).replace(syllables=tuple(f'w{i + j}' for j in range(5)))
           for i in range(6)]
  v1, v2 = T.fit_vocab(songs), T.fit_vocab(songs[::-1])
  assert v1 == v2 and v1.syllables[:3] == ('w4', 'w5', 'w3')
  assert T.Vocab.from_json(v1.to_json()) == v1
  with pytest.raises(ValueError, match='version'):
    T.Vocab.from_json('{"version": 99}')


def test_caps_raise_skip():
  tok = _tok([scale_song(4)])
  long = scale_song(300, [1] * 300, step=120)
  with pytest.raises(SongSkip) as e:
    tok.tokenize(long)
  assert e.value.reason == 'too_many_syllables'
  wide = make_song([60], [0], [480], [0], ['a'], time_signatures=((0, 12, 4),))
  with pytest.raises(SongSkip) as e:
    tok.tokenize(wide)
  assert e.value.reason == 'bar_too_long'


def test_detokenize_rejects_garbage():
  tok = _tok([scale_song(4)])
  with pytest.raises(ValueError):
    tok.detokenize(np.zeros((5, 3), np.int32))
  x = tok.tokenize(scale_song(4))
  x[-2, T.F.position] = T.MASK
  with pytest.raises(ValueError, match='out-of-range'):
    tok.detokenize(x)


def test_round_trip_on_every_shared_song():
  from songglm_jax.music import midi, phrases
  root = require_sample()
  songs = []
  for f in sorted(root.glob('*/*.mid')):
    songs.extend(phrases.split_windows(phrases.segment_phrases(midi.read_midi(f)[0])))
  tok = T.Tokenizer(T.fit_vocab(songs))
  st = T.QuantizeStats()
  mismatched = 0
  for s in songs:
    x = tok.tokenize(s, st)
    q = T.quantize(s)
    d = tok.detokenize(x, time_signatures=s.time_signatures, tempo=s.tempo)
    mismatched += not (np.array_equal(d.onset, q.onset) and np.array_equal(d.offset, q.offset)
                       and np.array_equal(d.pitch, q.pitch)
                       and np.array_equal(d.note_syllable, q.note_syllable)
                       and np.array_equal(d.syllable_phrase, q.syllable_phrase))
  assert len(songs) >= 1900 and mismatched == 0
  # The shared data is on the grid already (measured): nothing is snapped or clipped.
  assert st.onsets_snapped == 0 and st.durations_clipped == 0
