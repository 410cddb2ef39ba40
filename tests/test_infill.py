"""Melody infilling (infill.py, infill_spec.py): SPEC forms, one-line errors, the pre-training
Part A, kept notes untouched, and valid regenerated spans from an untrained model."""

from __future__ import annotations


import numpy as np
import pytest

from songglm_jax.inference import generation, infill, infill_spec
from songglm_jax.data import masking, records
from songglm_jax.data import tokenizer as tk
from songglm_jax.model import decode as decode_lib
from songglm_jax.music import phrases
from tests.model.test_decode import CFG, tiny
from tests.songs import make_song, scale_song


def _song(n=16, nps=None, every=4):
  """``n`` syllables 'la0,' ... in phrases of ``every`` (punctuation), quarter notes in 4/4."""
  return phrases.segment_phrases(scale_song(n, nps, punctuation_every=every))


def _items(song, spec):
  return [(s.first, s.end) for s in infill_spec.parse_spec(song, spec)]


# ---- SPEC ----------------------------------------------------------------------------------
def test_each_spec_form():
  song = _song()  # 16 syllables, phrases of 4: phrase k holds syllables 4(k-1) .. 4k - 1
  assert _items(song, 'phrase:3') == [(8, 12)]
  assert _items(song, 'phrases:2-3') == [(4, 12)]
  assert _items(song, 'syllables:10-12') == [(9, 12)]
  assert _items(song, 'syllable:1') == [(0, 1)]
  bar_of_syllable = song.onset[song.syllable_first_note] // 1920  # quarter notes, 4 per bar
  want = np.flatnonzero((bar_of_syllable >= 1) & (bar_of_syllable <= 2))
  assert _items(song, 'bars:2-3') == [(int(want[0]), int(want[-1]) + 1)]
  assert _items(song, 'bar:2') == [(int(np.flatnonzero(bar_of_syllable == 1)[0]),
                                    int(np.flatnonzero(bar_of_syllable == 1)[-1]) + 1)]


def test_several_items_sorted_and_touching_ones_merged():
  song = _song()
  spans = infill_spec.parse_spec(song, 'syllables:15-16, phrase:1,phrase:2')
  assert [(s.first, s.end, s.items) for s in spans] == [
      (0, 8, ('phrase:1', 'phrase:2')), (14, 16, ('syllables:15-16',))]
  assert spans[0].describe(song)['syllables'] == [1, 8]
  assert spans[0].describe(song)['phrases'] == [1, 2]


@pytest.mark.parametrize('spec, message', [
    ('phrase:5', "'phrase:5': phrase 5 does not exist; the song has 4 phrases"),
    ('phrases:3-9', "'phrases:3-9': phrases 3-9 go past the last; the song has 4 phrases"),
    ('phrases:2-4,syllables:10-11', "'phrases:2-4' and 'syllables:10-11' overlap "
                                    '(syllables 10-11)'),
    ('phrase:2,phrase:2', "'phrase:2' and 'phrase:2' overlap"),
    ('syllables:10-40', "'syllables:10-40': the song has 16 syllables"),
    ('bars:40-41', "'bars:40-41': no syllable starts in bars 40-41; the song has"),
    ('syllables:5-3', "bad range in 'syllables:5-3'"),
    ('phrase:0', "bad range in 'phrase:0'"),
    ('verse:2', "bad item 'verse:2'"),
    ('phrase 3', "bad item 'phrase3'"),
    ('', 'empty'),
])
def test_bad_specs_are_one_line_errors(spec, message):
  with pytest.raises(ValueError) as e:
    infill_spec.parse_spec(_song(), spec)
  text = str(e.value)
  assert '\n' not in text and text.startswith('--regenerate: ') and message in text, text


def test_a_song_without_lyrics_is_a_one_line_error(tmp_path):
  import symusic
  score = symusic.Score(480)
  track = symusic.Track('Lead', 0, False)
  track.notes.append(symusic.Note(0, 480, 60, 100))
  score.tracks.append(track)
  score.dump_midi(str(tmp_path / 'x.mid'))
  with pytest.raises(ValueError) as e:
    infill_spec.read_song(tmp_path / 'x.mid')
  assert str(e.value) == (f'--song {tmp_path / "x.mid"}: the song has no lyrics (no_lyrics); '
                          'infilling needs the syllables each note is sung on')


def test_a_span_without_room_is_a_one_line_error():
  tok, _, _ = tiny()
  song = make_song([60, 62, 64, 65], [0, 480, 520, 960], [480, 40, 40, 480], [0, 1, 2, 3],
                   ['a', 'b', 'c', 'd'])
  with pytest.raises(ValueError, match=r"^--regenerate syllables:2-3: 2 syllables need 600 "
                     r"ticks between the kept notes, there are 480 \(ticks 480..960\); "
                     r"--allow_shift lets it move the rest$") as e:
    infill.plan(song, 'syllables:2-3', tok, CFG, step=300)
  assert '\n' not in str(e.value)
  assert infill.plan(song, 'syllables:2-3', tok, CFG).start_tick == [480]


# ---- Part A as pre-training lays it out ------------------------------------------------------
def _record(song, tok):
  return records.SongRecord(tokens=tok.tokenize(song), time_signatures=song.time_signatures,
                            spans_smr=np.zeros((0, 2), np.int32),
                            spans_srr=np.zeros((0, 2), np.int32))


@pytest.mark.parametrize('task', ['phrase', 'song'])
def test_part_a_is_the_pretraining_layout(task):
  """The phrase task's example (MASK per span) and the song-level task's (one LMASK span) on a
  song with one note per syllable, so their masks are whole syllables: infilling the same
  syllables gives the same Part A, and its SEP rows the same ids."""
  tok, _, _ = tiny()
  song = _song(16, [1] * 16)
  for key in range(5):
    ex = masking.make_examples([_record(song, tok)], np.array([key], np.uint64),
                               masking.MaskingOptions(shuffle_spans=False), task=task).example(0)
    a = int(ex['is_part_a'].sum())
    cue = np.isin(ex['tokens'][:a, tk.F.type], [tk.MASK, tk.LMASK])
    seps = np.flatnonzero(ex['block_position_ids'] == 1)
    # Part B rows are [SEP] notes per span; their word ids are the syllables (1 note each)
    masked = sorted(int(w) for w, b in zip(ex['word_ids'], ex['block_position_ids']) if b >= 2)
    spec = ','.join(f'syllable:{w + 1}' for w in masked)
    p = infill.plan(song, spec, tok, CFG, mask='auto' if task == 'song' else 'MASK')
    assert p.masks == [('LMASK' if task == 'song' else 'MASK')] * cue.sum()
    if len(p.spans) > 1:  # several spans: MASK by itself
      assert infill.plan(song, spec, tok, CFG).masks == p.masks
    for k in p.part_a:
      np.testing.assert_array_equal(p.part_a[k], ex[k][:a], err_msg=k)
      np.testing.assert_array_equal(np.stack([s[k] for s in p.seps]), ex[k][seps], err_msg=k)


# ---- decoding ------------------------------------------------------------------------------
def _generator(**kw):
  tok, graphdef, params = tiny()
  return generation.Generator(CFG, tok.field_sizes, tok, graphdef, params,
                              generation.GenerateOptions(**kw))


def test_prompt_rows_before_a_span_are_the_training_layout():
  """Span 2's prompt holds Part A and span 1 as training's Part B (song order) lays them out."""
  tok, _, _ = tiny()
  song = _song(16, [1] * 16)
  p = infill.plan(song, 'syllables:2-3,syllables:7-8', tok, CFG)
  notes = tok.tokenize(song)[16 + 3:16 + 3 + 16]
  cols = [getattr(tk.F, f) for f in ('bar', 'position', 'duration', 'pitch', 'word_id')]
  part_b = infill._part_b_rows(p.seps[0], notes[1:3][:, cols], song.syllable_phrase)
  got = infill._prompts(p, 1, [[part_b]], 64)
  masked = np.isin(song.note_syllable, [1, 2, 6, 7])
  ex = masking.RecordBatch.from_records([_record(song, tok)], np.zeros(1, np.uint64))
  from songglm_jax.data import layout
  ex = layout.glm_layout(ex, masked, long_mask=np.zeros(1, bool), finetune=np.zeros(1, bool),
                         shuffle=False).example(0)
  n = len(p.part_a['position_ids']) + 4  # Part A, SEP + 2 notes of span 1, SEP of span 2
  for k in decode_lib.PROMPT_KEYS[:-1]:
    np.testing.assert_array_equal(got[k][0, :n - 1], ex[k][:n - 1], err_msg=k)
    np.testing.assert_array_equal(got[k][0, -1], ex[k][n - 1], err_msg=k)
  assert got['segment_ids'][0].tolist() == [1] * (n - 1) + [0] * (64 - n) + [1]


def _check_sample(song, p, smp, max_per_syllable, pitch):
  """Everything a regenerated song must satisfy, checked independently of the decoder."""
  out, regen = smp.song, smp.regenerated
  assert out is not None, smp.reason
  kept = ~regen
  for k in ('pitch', 'onset', 'offset', 'velocity', 'note_syllable'):
    a, b = getattr(out, k)[kept], getattr(song, k)[~np.isin(
        song.note_syllable, np.concatenate([np.arange(s.first, s.end) for s in p.spans]))]
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), k  # byte-identical
  assert out.syllables == song.syllables and np.array_equal(out.syllable_phrase,
                                                            song.syllable_phrase)
  for j, sp in enumerate(p.spans):
    new = np.flatnonzero(regen & (out.note_syllable >= sp.first) & (out.note_syllable < sp.end))
    assert np.all(regen[new[0]:new[-1] + 1])  # one run in its place
    assert sorted(set(out.note_syllable[new].tolist())) == list(range(sp.first, sp.end))
    assert np.bincount(out.note_syllable[new]).max() <= max_per_syllable
    if sp.first > 0:
      assert out.onset[new[0]] >= out.offset[new[0] - 1]  # after the previous kept note
    if sp.end < song.num_syllables:
      assert out.offset[new[-1]] <= out.onset[new[-1] + 1]  # before the next kept note
    assert np.all(out.onset[new][1:] >= out.offset[new][:-1])
    assert np.all((out.pitch[new] >= pitch[0]) & (out.pitch[new] <= pitch[1]))


def test_kept_notes_byte_identical_and_spans_valid():
  gen = _generator(num_samples=6, batch_size=4, seed=1)
  song = _song(16)
  song = song.replace(velocity=np.arange(song.num_notes) + 60)  # distinct velocities survive
  samples = gen.infill(song, 'phrase:2,syllables:15-16')
  assert [s.sample for s in samples] == list(range(6))
  p = infill.plan(song, 'phrase:2,syllables:15-16', gen.tokenizer, CFG)
  for smp in samples:
    _check_sample(song, p, smp, 8, (36, 96))
  again = gen.infill(song, [(4, 8), (14, 16)])  # the same spans as ranges: the same songs
  assert all(a.song.same_as(b.song) for a, b in zip(samples, again))


def test_with_the_lyric_melody_priors_spans_stay_valid():
  gen = _generator(num_samples=8, batch_size=8, seed=2, stress_beat_bias=4.0,
                   phrase_rest_bias=4.0)
  song = _song(16)
  song = song.replace(syllable_stress=tuple('1' if i % 2 == 0 else '0' for i in range(16)))
  p = infill.plan(song, 'phrase:2,syllables:15-16', gen.tokenizer, CFG)
  for smp in gen.infill(song, 'phrase:2,syllables:15-16'):
    _check_sample(song, p, smp, 8, (36, 96))


def test_thousand_constrained_samples_from_an_untrained_model_are_valid():
  """1000 samples (two sampling settings x 500, batched), three spans: the song's start, a
  middle phrase with little room (a 3/4 song of eighth notes) and its end."""
  song = _song(18, [1] * 18, every=6)
  song = song.replace(onset=song.onset // 2, offset=song.offset // 2, syllable_onset=None,
                      time_signatures=np.array([[0, 3, 4]]))
  spec = 'syllables:1-2,phrase:2,syllables:17-18'
  bad, total = [], 0
  for draw, kw in enumerate([dict(max_notes_per_syllable=3),
                             dict(max_notes_per_syllable=8, pitch_low=60, pitch_high=64,
                                  temperature={f: 1.5 for f in generation.FIELDS},
                                  top_k={f: 0 for f in generation.FIELDS},
                                  top_p={f: 0.95 for f in generation.FIELDS})]):
    gen = _generator(num_samples=500, batch_size=500, seed=draw, **kw)
    p = infill.plan(song, spec, gen.tokenizer, CFG)
    assert p.end_tick[1] - p.start_tick[1] == 6 * 240  # six eighth notes of room, 6 syllables
    for smp in gen.infill(song, spec):
      total += 1
      try:
        _check_sample(song, p, smp, kw['max_notes_per_syllable'],
                      (gen.options.pitch_low, gen.options.pitch_high))
      except AssertionError as e:
        bad.append((draw, smp.sample, str(e)[:200]))
  assert total == 1000
  assert bad == []


def test_allow_shift_moves_the_rest_by_whole_bars():
  """Syllables 2-4 squeezed into 60 ticks: refused without --allow_shift; with it every sample
  is valid, the notes before stay as they are and the rest moves by whole bars: by at least one
  after span 1, and by span 2's own move after span 2 (an untrained model drifts far)."""
  gen = _generator(num_samples=20, batch_size=20, seed=2)
  song = make_song([60, 62, 64, 65, 67, 69, 71, 72], [0, 480, 500, 520, 540, 1020, 1500, 1980],
                   [480, 20, 20, 20, 480, 480, 480, 480], list(range(8)), list('abcdefgh'))
  spec = 'syllables:2-4,syllable:7'
  with pytest.raises(ValueError, match='3 syllables need 150 ticks'):
    gen.infill(song, spec)
  bar = 1920
  for smp in gen.infill(song, spec, allow_shift=True):
    out, regen = smp.song, smp.regenerated
    assert out is not None, smp.reason
    k, k2 = smp.shift_bars
    assert k >= 1 and k2 >= 0
    assert out.note_syllable[regen].tolist()[0] == 1 and set(out.note_syllable[regen]) == {1, 2,
                                                                                          3, 6}
    kept = np.flatnonzero(~regen)
    assert out.onset[kept[0]] == 0 and out.offset[kept[0]] == 480
    moved = dict(zip(out.note_syllable[kept].tolist(), out.onset[kept].tolist()))
    assert [moved[i] for i in (4, 5, 7)] == [540 + k * bar, 1020 + k * bar,
                                             1980 + (k + k2) * bar]
    np.testing.assert_array_equal(out.duration[kept], [480] * 4)
    np.testing.assert_array_equal(out.pitch[kept], [60, 67, 69, 72])
    first_new = np.flatnonzero(regen)[0]
    assert out.onset[first_new] >= 480
    span2 = np.flatnonzero(regen & (out.note_syllable == 6))
    assert out.onset[span2[0]] >= 1020 + k * bar + 480 and out.offset[span2[-1]] <= (
        1980 + (k + k2) * bar)


def test_moved_kept_notes_are_moved_in_the_prompt_of_later_spans():
  tok, _, _ = tiny()
  song = make_song([60, 62, 64, 65, 67, 69, 71, 72], [0, 480, 500, 520, 540, 1020, 1500, 1980],
                   [480, 20, 20, 20, 480, 480, 480, 480], list(range(8)), list('abcdefgh'))
  p = infill.plan(song, 'syllables:2-4,syllable:7', tok, CFG, allow_shift=True)
  assert p.a_note.tolist() == [-1] * 11 + [0, -1, 4, 5, -1, 7, -1]  # [BOS] 8 [EOS] [BOS] ...
  shift = np.zeros((1, 8), np.int64)
  shift[0, 4:] = 2 * 1920
  got = infill._prompts(p, 1, [[]], 32, shift)['tokens'][0, :18, tk.F.bar]
  want = p.part_a['tokens'][:, tk.F.bar] + np.where(p.a_note >= 4, 2, 0)
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('chain', [False, True], ids=['independent', 'chain'])
def test_cached_infill_decoding_matches_the_full_pass(chain, monkeypatch):
  """Each step's logits of both spans equal the model's full pass over the pre-training example
  of the infilled song (Part A, then [SEP] notes per span in song order): the prompts (earlier
  span's rows, padding before the SEP, position and block ids) are the training layout."""
  import jax
  from flax import nnx
  from songglm_jax.data import layout
  from tests.model.test_decode import CHAIN_CFG
  cfg = CHAIN_CFG if chain else CFG
  tok, graphdef, params = tiny(cfg=cfg)
  gen = generation.Generator(cfg, tok.field_sizes, tok, graphdef, params,
                             generation.GenerateOptions(num_samples=1, batch_size=1, seed=4))
  calls = []
  plain = decode_lib.decode

  def recording(*args, **kw):
    out = plain(*args, **{**kw, 'record_logits': True})
    calls.append(jax.device_get(out))
    return out
  monkeypatch.setattr(decode_lib, 'decode', recording)
  song = _song(16, [1] * 16)
  (smp,) = gen.infill(song, 'syllables:2-3,syllables:7-8')
  out = smp.song
  ex = layout.glm_layout(masking.RecordBatch.from_records([_record(out, tok)],
                                                          np.zeros(1, np.uint64)),
                         smp.regenerated, long_mask=np.zeros(1, bool),
                         finetune=np.zeros(1, bool), shuffle=False).example(0)
  ex['segment_ids'] = np.ones(len(ex['position_ids']), np.int32)
  full = nnx.merge(graphdef, params)({k: v[None] for k, v in ex.items()})
  seps = np.flatnonzero(ex['block_position_ids'] == 1)
  assert len(calls) == 2 and len(seps) == 2
  for call, sep in zip(calls, seps):
    n = int(call.num_notes[0])
    assert n >= 2 and call.stopped[0]
    for f in cfg.target_fields:
      m = n + 1 if not chain or f == 'word_id' else n
      np.testing.assert_allclose(call.logits[f][0, :m], np.asarray(full[f][0, sep:sep + m]),
                                 atol=1e-5, rtol=1e-5, err_msg=f)
