import dataclasses

import ml_collections
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from songglm_jax.data import layout
from songglm_jax.data import masking as mk
from songglm_jax.data import masking_reference as ref
from songglm_jax.data import masking_spans as spans_lib
from songglm_jax.data import masking_windows as mw
from songglm_jax.data import tokenizer as tok
from tests.data.conftest import random_record, song_record

OPTS = mk.MaskingOptions()
ALL_TASKS = mk.TASKS + (mk.FINETUNE,)
PROPERTY = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def song_records(draw, max_syllables=16):
  nps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=max_syllables))
  breaks = draw(st.lists(st.booleans(), min_size=len(nps), max_size=len(nps)))
  n = sum(nps)
  spans = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 4)), max_size=10))
  spans = [(a, min(n, a + k)) for a, k in spans]
  return song_record(nps, breaks, spans, spans[::2])


def one(rec, task=None, key=7, opts=OPTS):
  return mk.make_examples([rec], mk.example_keys(0, 0, [key]), opts, task).example(0)


def num_notes(rec):
  return int(np.count_nonzero(rec.tokens[:, tok.F.type] == tok.NOTE))


def masked_notes(rec, task, key=7, opts=OPTS):
  batch = mk.RecordBatch.from_records([rec], mk.example_keys(0, 0, [key]))
  return mk.mask_notes(batch, opts, np.array([mk.TASK_IDS[task]]))[0]


def reconstruct(ex, finetune=False):
  """Part A with each MASK replaced by its Part B span (found by position id)."""
  a = ex['is_part_a']
  spans = {}
  for i in np.flatnonzero(~a):
    if ex['block_position_ids'][i] == 1:
      current = spans.setdefault(int(ex['position_ids'][i]), [])
    else:
      current.append(ex['tokens'][i])
  rows = []
  for p, row in enumerate(ex['tokens'][a]):
    if row[0] in (tok.MASK, tok.LMASK):
      if finetune:
        rows.append(np.full_like(row, tok.BOS))
      rows.extend(spans.pop(p))
    else:
      rows.append(row)
  assert not spans, 'a Part B span has no MASK in Part A'
  if finetune:
    rows.append(np.full_like(rows[0], tok.EOS))
  return np.stack(rows)


@PROPERTY
@given(st.lists(song_records(), min_size=1, max_size=4), st.sampled_from(ALL_TASKS + (None,)),
       st.integers(0, 2**62))
def test_vectorized_path_equals_reference(recs, task, seed):
  keys = mk.example_keys(seed, 1, np.arange(len(recs)))
  got = mk.make_examples(recs, keys, OPTS, task)
  for i, rec in enumerate(recs):
    want = ref.make_example(rec, int(keys[i]), OPTS, task)
    assert ALL_TASKS[got.tasks[i]] == want['task']
    for k in layout.BATCH_KEYS:
      np.testing.assert_array_equal(got.example(i)[k], want[k], err_msg=f'{k} of example {i}')


@PROPERTY
@given(song_records(), st.sampled_from(ALL_TASKS), st.integers(0, 2**62))
def test_part_a_with_part_b_put_back_reconstructs_the_record(rec, task, key):
  ex = one(rec, task, key)
  np.testing.assert_array_equal(reconstruct(ex, task == mk.FINETUNE), rec.tokens)


@PROPERTY
@given(song_records(), st.sampled_from(ALL_TASKS), st.integers(0, 2**62))
def test_positions_and_block_positions_follow_glm(rec, task, key):
  ex = one(rec, task, key)
  a = ex['is_part_a']
  len_a = int(a.sum())
  assert a[:len_a].all() and not a[len_a:].any()
  np.testing.assert_array_equal(ex['position_ids'][:len_a], np.arange(len_a))
  assert not ex['block_position_ids'][:len_a].any()
  block, pos = ex['block_position_ids'][len_a:], ex['position_ids'][len_a:]
  starts = np.flatnonzero(block == 1)
  assert starts[0] == 0
  for s, e in zip(starts, np.append(starts[1:], len(block))):
    np.testing.assert_array_equal(block[s:e], np.arange(1, e - s + 1))
    assert np.all(pos[s:e] == pos[s])
    assert ex['tokens'][pos[s], 0] in (tok.MASK, tok.LMASK)
  assert len(set(pos[starts].tolist())) == len(starts)


@PROPERTY
@given(song_records(), st.sampled_from(ALL_TASKS), st.integers(0, 2**62))
def test_targets_are_part_b_shifted_and_each_span_closes_with_sep(rec, task, key):
  ex = one(rec, task, key)
  a = ex['is_part_a']
  np.testing.assert_array_equal(ex['loss_mask'], (~a).astype(np.float32))
  assert not ex['targets'][a].any()  # PAD rows
  b = np.flatnonzero(~a)
  block = ex['block_position_ids']
  for i in b:
    last = i + 1 == len(a) or block[i + 1] == 1
    want = np.full(len(tok.FIELDS), tok.SEP) if last else ex['tokens'][i + 1]
    np.testing.assert_array_equal(ex['targets'][i], want)
  assert np.all(ex['tokens'][b[block[b] == 1]] == tok.SEP)


@PROPERTY
@given(song_records(), st.sampled_from(ALL_TASKS), st.integers(0, 2**62))
def test_alignment_ids_travel_with_tokens(rec, task, key):
  ex = one(rec, task, key)
  t = ex['tokens']
  real = t[:, tok.F.type] >= tok.NUM_SPECIAL
  np.testing.assert_array_equal(ex['word_ids'][real], t[real, tok.F.word_id] - tok.NUM_SPECIAL)
  np.testing.assert_array_equal(ex['phrase_ids'][real], t[real, tok.F.phrase_id] - tok.NUM_SPECIAL)
  assert ex['word_ids'][0] == 0 and ex['phrase_ids'][0] == 0  # lyric BOS
  s = int(np.count_nonzero(rec.tokens[:, tok.F.type] == tok.LYRIC))
  last_syllable = rec.tokens[s, [tok.F.word_id, tok.F.phrase_id]] - tok.NUM_SPECIAL
  assert [ex['word_ids'][s + 1], ex['phrase_ids'][s + 1]] == last_syllable.tolist()  # lyric EOS
  # MASK and SEP carry the ids of the span's first note (the next Part B row after the SEP).
  a = ex['is_part_a']
  for i in np.flatnonzero(~a & (ex['block_position_ids'] == 1)):
    m = ex['position_ids'][i]
    for j in (i, m):
      assert (ex['word_ids'][j], ex['phrase_ids'][j]) == (ex['word_ids'][i + 1],
                                                         ex['phrase_ids'][i + 1])


@PROPERTY
@given(song_records(), st.integers(0, 2**62))
def test_song_level_masks_one_span_of_exactly_the_rate(rec, key):
  m = masked_notes(rec, 'song', key)
  n = len(m)
  assert m.sum() == min(max(int(np.floor(0.5 * n + 0.5)), 1), n)
  assert np.all(np.diff(np.flatnonzero(m)) == 1)
  ex = one(rec, 'song', key)
  assert np.count_nonzero(ex['tokens'][:, 0] == tok.LMASK) == 1
  assert not np.any(ex['tokens'][:, 0] == tok.MASK)


@PROPERTY
@given(song_records(), st.integers(0, 2**62))
def test_phrase_level_masks_whole_phrases_until_the_rate(rec, key):
  m = masked_notes(rec, 'phrase', key)
  notes = rec.tokens[rec.tokens[:, tok.F.type] == tok.NOTE]
  phrase = notes[:, tok.F.phrase_id] - tok.NUM_SPECIAL
  chosen = np.unique(phrase[m])
  np.testing.assert_array_equal(m, np.isin(phrase, chosen))  # whole phrases
  need = int(mk.notes_needed(0.5, len(m)))
  sizes = np.bincount(phrase)[chosen]
  assert m.sum() >= need and m.sum() - sizes.max() < need  # stops once the rate is reached


def test_adjacent_drawn_phrases_merge_into_one_span():
  rec = song_record([1] * 4, [False, True, True, True])  # 4 phrases of one note
  for key in range(40):
    ex = one(rec, 'phrase', key)
    m = masked_notes(rec, 'phrase', key)
    runs = np.count_nonzero(np.diff(np.concatenate([[0], m.astype(int)])) == 1)
    assert np.count_nonzero(ex['tokens'][:, 0] == tok.MASK) == runs


def test_ngram_level_draws_lexicon_spans_without_overlap_until_the_rate():
  # 45 notes; bigrams at 3i and trigrams at 3i + 1 that overlap them: a union of overlapping
  # candidates cannot be tiled by disjoint ones.
  cands = [(3 * i, 3 * i + 2) for i in range(15)] + [(3 * i + 1, 3 * i + 4) for i in range(14)]
  rec = song_record([1] * 45, (), cands, cands[:15])
  need = int(mk.notes_needed(0.15, 45))
  for key in range(40):
    m = masked_notes(rec, 'ngram_smr', key)
    # Every run of masked notes is tiled by disjoint candidates.
    padded = np.concatenate([[0], m.astype(int), [0]])
    run_starts = np.flatnonzero(np.diff(padded) == 1)
    run_ends = np.flatnonzero(np.diff(padded) == -1)
    for a, b in zip(run_starts, run_ends):
      reach = {a}
      for p in range(a, b):
        if p in reach:
          reach |= {e for s, e in cands if s == p and e <= b}
      assert b in reach, (a, b)
    assert need <= m.sum() <= need + 2


@PROPERTY
@given(st.lists(st.integers(1, 3), min_size=1, max_size=30), st.integers(0, 2**62))
def test_song_without_ngrams_falls_back_to_random_spans_at_the_rate(nps, key):
  rec = song_record(nps)  # no spans at all
  m = masked_notes(rec, 'ngram_srr', key)
  n = len(m)
  assert m.sum() == min(max(int(np.floor(0.15 * n + 0.5)), 1), n)
  want = spans_lib.random_spans_mask(np.array([n]), mk.example_keys(0, 0, [key]), 0.15, 5.0)
  np.testing.assert_array_equal(m, want)


def test_too_few_ngrams_fall_back_to_random_spans():
  rec = song_record([1] * 40, (), [(0, 1)])  # one unigram cannot reach 6 notes
  key = mk.example_keys(0, 0, [3])
  np.testing.assert_array_equal(masked_notes(rec, 'ngram_smr', 3),
                                spans_lib.random_spans_mask(np.array([40]), key, 0.15, 5.0))


def test_corrupted_fraction_is_near_the_rate_on_average():
  rng = np.random.default_rng(0)
  recs = [random_record(rng, max_syllables=60, max_spans=30) for _ in range(150)]
  keys = mk.example_keys(1, 0, np.arange(len(recs)))
  batch = mk.RecordBatch.from_records(recs, keys)
  for task, rate, tol in (('ngram_smr', 0.15, 0.04), ('phrase', 0.5, 0.12), ('song', 0.5, 0.02)):
    m, _ = mk.mask_notes(batch, OPTS, np.full(len(recs), mk.TASK_IDS[task]))
    share = np.add.reduceat(m, batch.note_start[:-1]) / batch.num_notes
    big = batch.num_notes >= 20
    assert abs(share[big].mean() - rate) < tol, (task, share[big].mean())


def test_random_span_layout_is_uniform_and_symmetric():
  n, trials = 30, 4000  # 6 masked notes in 2 spans; 23 spare notes around them
  keys = mk.example_keys(5, 0, np.arange(trials))
  m = spans_lib.random_spans_mask(np.full(trials, n), keys, 0.2, 3.0).reshape(trials, n)
  assert np.all(m.sum(1) == 6)
  runs = np.count_nonzero(np.diff(np.pad(m.astype(int), ((0, 0), (1, 0))), axis=1) == 1, axis=1)
  assert np.all(runs == 2)  # round(6 / 3) spans, never merged
  freq = m.mean(0)
  np.testing.assert_allclose(freq, freq[::-1], atol=0.03)  # no end is favoured
  # A span starts the melody when the first of 25 slots is one of the 2 span slots: 2 / 25.
  np.testing.assert_allclose([freq[0], freq[-1]], 2 / 25, atol=0.015)


def test_song_span_offsets_are_uniform():
  n, trials = 9, 5000  # span of 5 notes: offsets 0..4
  m = spans_lib.song_mask(np.full(trials, n), mk.example_keys(2, 0, np.arange(trials)), 0.5)
  offsets = m.reshape(trials, n).argmax(1)
  counts = np.bincount(offsets, minlength=5)
  assert len(counts) == 5 and np.all(np.abs(counts / trials - 0.2) < 0.025), counts


def test_tasks_follow_the_weights():
  keys = mk.example_keys(0, 0, np.arange(20000))
  tasks = mk.choose_tasks(keys, (1.0, 0.0, 2.0, 1.0))
  freq = np.bincount(tasks, minlength=4) / len(tasks)
  np.testing.assert_allclose(freq, [0.25, 0.0, 0.5, 0.25], atol=0.015)


def test_an_example_does_not_depend_on_its_batch():
  rng = np.random.default_rng(1)
  recs = [random_record(rng) for _ in range(6)]
  keys = mk.example_keys(3, 2, np.arange(6))
  whole = mk.make_examples(recs, keys, OPTS)
  for i in (0, 4):
    alone = mk.make_examples([recs[i]], keys[i:i + 1], OPTS)
    for k in layout.BATCH_KEYS:
      np.testing.assert_array_equal(alone.example(0)[k], whole.example(i)[k])


def test_keys_depend_on_seed_epoch_record_and_window():
  base = mk.example_keys(0, 0, 5, 0)
  assert base == mk.example_keys(0, 0, 5, 0)
  others = [mk.example_keys(1, 0, 5, 0), mk.example_keys(0, 1, 5, 0), mk.example_keys(0, 0, 6, 0),
            mk.example_keys(0, 0, 5, 1)]
  assert len({int(k[0]) for k in [base] + others}) == 5


def test_spans_keep_song_order_when_shuffle_is_off():
  rec = song_record([1] * 60)
  opts = mk.MaskingOptions(shuffle_spans=False)
  orders = []
  for key in range(20):
    for o in (opts, OPTS):
      ex = one(rec, 'ngram_smr', key, o)
      b = ~ex['is_part_a'] & (ex['block_position_ids'] == 1)
      orders.append((o.shuffle_spans, np.all(np.diff(ex['position_ids'][b]) > 0)))
  assert all(ok for shuffled, ok in orders if not shuffled)
  assert not all(ok for shuffled, ok in orders if shuffled)


@pytest.mark.parametrize('task', ALL_TASKS)
def test_one_note_song_masks_its_note(task):
  rec = song_record([1])
  ex = one(rec, task)
  mask = tok.LMASK if task == 'song' else tok.MASK
  want_a = [tok.BOS, tok.LYRIC, tok.EOS, mask] if task == mk.FINETUNE else [
      tok.BOS, tok.LYRIC, tok.EOS, tok.BOS, mask, tok.EOS]
  assert ex['tokens'][ex['is_part_a'], 0].tolist() == want_a
  assert ex['tokens'][~ex['is_part_a'], 0].tolist() == [tok.SEP, tok.NOTE]


def test_one_phrase_song_phrase_task_masks_the_whole_melody():
  rec = song_record([1, 2, 1, 1])
  assert masked_notes(rec, 'phrase').all()
  ex = one(rec, 'phrase')
  assert np.count_nonzero(ex['tokens'][:, 0] == tok.MASK) == 1


def test_finetune_example_is_lyrics_then_the_whole_melody():
  rec = song_record([1, 2, 1], [False, True, False])
  ex = one(rec, mk.FINETUNE)
  s, n = 3, 4
  assert len(ex['tokens']) == len(rec.tokens)
  np.testing.assert_array_equal(ex['tokens'][:s + 2], rec.tokens[:s + 2])
  assert ex['tokens'][s + 2, 0] == tok.MASK and ex['position_ids'][s + 2] == s + 2
  np.testing.assert_array_equal(ex['tokens'][s + 4:], rec.tokens[s + 3:s + 3 + n])
  np.testing.assert_array_equal(ex['block_position_ids'][s + 3:], np.arange(1, n + 2))


def test_long_record_is_cut_at_phrase_boundaries_into_fitting_windows():
  nps = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 2, 1]
  breaks = [i % 3 == 0 for i in range(len(nps))]  # phrases of 3 syllables
  rec = song_record(nps, breaks, [(0, 2), (3, 5), (10, 13)], [(1, 4)])
  pieces = mw.split_long_record(rec, 28, OPTS)
  assert len(pieces) > 1
  assert all(mw.max_example_length(*_counts(p), OPTS) <= 28 for p in pieces)
  notes = lambda t: t[t[:, 0] == tok.NOTE]
  lyrics = lambda t: t[t[:, 0] == tok.LYRIC]
  for get, cols in ((notes, [tok.F.pitch, tok.F.position, tok.F.duration]),
                    (lyrics, [tok.F.syllable])):
    np.testing.assert_array_equal(np.concatenate([get(p.tokens)[:, cols] for p in pieces]),
                                  get(rec.tokens)[:, cols])
  for p in pieces:
    ly = lyrics(p.tokens)
    assert ly[0, tok.F.word_id] == ly[0, tok.F.phrase_id] == tok.NUM_SPECIAL  # ids restart
    assert notes(p.tokens)[0, tok.F.bar] == tok.NUM_SPECIAL
    ex = mk.make_examples([p], mk.example_keys(0, 0, [0]), OPTS)  # valid examples
    assert ex.lengths[0] <= 28
  # Whole phrases stay together when they fit: every cut is at a phrase start.
  sizes = [len(lyrics(p.tokens)) for p in pieces]
  assert all(c % 3 == 0 for c in np.cumsum(sizes)[:-1])
  # The spans that lie wholly inside a window are kept, shifted to its notes.
  kept, start = [], 0
  for p in pieces:
    n = len(notes(p.tokens))
    kept += [[a + start, b + start] for a, b in p.spans_smr.tolist()]
    start += n
  inside = [[a, b] for a, b in rec.spans_smr.tolist()
            if any(a >= s0 and b <= s0 + n for s0, n in _note_ranges(pieces))]
  assert kept == inside and len(kept) >= 1


def _note_ranges(pieces):
  start = 0
  for p in pieces:
    n = int(np.count_nonzero(p.tokens[:, 0] == tok.NOTE))
    yield start, n
    start += n


def _counts(rec):
  t = rec.tokens
  s = int(np.count_nonzero(t[:, 0] == tok.LYRIC))
  n = int(np.count_nonzero(t[:, 0] == tok.NOTE))
  return s, n, int(t[s, tok.F.phrase_id]) - tok.NUM_SPECIAL + 1


def test_long_phrase_is_cut_between_syllables():
  rec = song_record([2] * 20)  # one phrase of 40 notes
  pieces = mw.split_long_record(rec, 60, OPTS)
  assert len(pieces) > 1
  assert all(mw.max_example_length(*_counts(p), OPTS) <= 60 for p in pieces)
  assert sum(_counts(p)[1] for p in pieces) == 40


def test_syllable_with_too_many_notes_for_seq_len_is_an_error():
  rec = song_record([1, 30, 1], name='melisma')
  with pytest.raises(ValueError, match="'melisma'.*syllable 1 has 30 notes"):
    mw.split_long_record(rec, 40, OPTS)


def test_options_from_config_and_validation():
  cfg = ml_collections.ConfigDict(dict(
      word_rate=0.2, phrase_rate=0.4, song_rate=0.6, mean_span_length=3.0, shuffle_spans=False,
      task_weights=dict(ngram_smr=1.0, ngram_srr=0.0, phrase=2.0, song=1.0)))
  opts = mk.MaskingOptions.from_config(cfg)
  assert opts.task_weights == (1.0, 0.0, 2.0, 1.0) and opts.word_rate == 0.2
  with pytest.raises(ValueError, match='word_rate'):
    mk.MaskingOptions(word_rate=0.0).validate()
  with pytest.raises(ValueError, match='task_weights'):
    mk.MaskingOptions(task_weights=(0, 0, 0, 0)).validate()


def test_bad_records_are_rejected_with_their_name():
  good = song_record([1, 1], name='ok')
  bad = song_record([1, 1], (), [(0, 5)], name='wide')
  with pytest.raises(ValueError, match="'wide'.*spans_smr"):
    mk.RecordBatch.from_records([good, bad], mk.example_keys(0, 0, [0, 1]))
  cut = dataclasses.replace(good, tokens=good.tokens[:-1], name='cut')
  with pytest.raises(ValueError, match="'cut'.*laid out"):
    mk.RecordBatch.from_records([cut], mk.example_keys(0, 0, [0]))


@given(st.integers(0, 2**62), st.sampled_from([mk.STREAM_SONG, mk.STREAM_NGRAM, mk.STREAM_SHUFFLE]),
       st.integers(0, 40))
def test_reference_draws_one_vector_per_stream_with_the_counters_draws(key, stream, count):
  want = [float(mk.uniforms(np.uint64(key), stream, j)[0]) for j in range(count)]
  assert ref._draws(key, stream, count) == want  # pylint: disable=protected-access
