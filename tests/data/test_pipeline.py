import contextlib
import os
import itertools

import ml_collections
import numpy as np
import pytest

from songglm_jax.data import masking, pipeline
from songglm_jax.data import tokenizer as tok
from tests.data import attention
from tests.data.conftest import random_record, song_record, write_dataset

SEQ = 96


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  rng = np.random.default_rng(0)
  train = [random_record(rng, name=f't{i}') for i in range(40)]
  valid = [random_record(rng, name=f'v{i}') for i in range(13)]
  return write_dataset(tmp_path_factory.mktemp('ds'), train, valid), train, valid


def options(**kw):
  base = dict(seq_len=SEQ, batch_size=4, chunk_records=8, workers=0, read_threads=0, seed=1)
  return pipeline.PipelineOptions(**{**base, **kw})


@contextlib.contextmanager
def opened(ds):
  it = iter(ds)
  try:
    yield it
  finally:
    it.close()


def take(ds, n):
  with opened(ds) as it:
    return list(itertools.islice(it, n))


def same(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_batches_follow_the_contract(dataset):
  folder, _, _ = dataset
  (batch,) = take(pipeline.pretrain_pipeline(folder, options(), process_index=0,
                                             process_count=1), 1)
  f = len(tok.FIELDS)
  want = {'tokens': ((4, SEQ, f), np.int32), 'targets': ((4, SEQ, f), np.int32),
          'loss_mask': ((4, SEQ), np.float32), 'position_ids': ((4, SEQ), np.int32),
          'block_position_ids': ((4, SEQ), np.int32), 'word_ids': ((4, SEQ), np.int32),
          'phrase_ids': ((4, SEQ), np.int32), 'is_part_a': ((4, SEQ), np.bool_),
          'segment_ids': ((4, SEQ), np.int32)}
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == want
  assert batch['segment_ids'].max() >= 1 and batch['loss_mask'].sum() > 0


def test_same_seed_same_batches_other_seed_other_batches(dataset):
  folder = dataset[0]
  run = lambda seed: take(pipeline.pretrain_pipeline(folder, options(seed=seed), process_index=0,
                                                     process_count=1), 6)
  a, b, c = run(1), run(1), run(2)
  assert all(same(x, y) for x, y in zip(a, b))
  assert not all(same(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize('threads', [0, 2])
def test_restored_iterator_continues_the_identical_stream(dataset, threads):
  folder = dataset[0]
  opts = options(read_threads=threads)
  ds = pipeline.pretrain_pipeline(folder, opts, process_index=0, process_count=1)
  with opened(ds) as it:
    for _ in range(7):  # past the first epoch of 40 records
      next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(5)]
  with opened(pipeline.pretrain_pipeline(folder, opts, process_index=0,
                                         process_count=1)) as it:
    it.set_state(state)
    got = [next(it) for _ in range(5)]
  assert all(same(x, y) for x, y in zip(expected, got))


def test_restore_with_worker_processes(dataset):
  folder = dataset[0]
  opts = options(workers=2)
  with opened(pipeline.pretrain_pipeline(folder, opts, process_index=0, process_count=1)) as it:
    for _ in range(3):
      next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(3)]
  with opened(pipeline.pretrain_pipeline(folder, opts, process_index=0, process_count=1)) as it:
    it.set_state(state)
    got = [next(it) for _ in range(3)]
  assert all(same(x, y) for x, y in zip(expected, got))


def segments(batches):
  """Every packed example as bytes of its token rows, sorted (to compare packings)."""
  out = []
  for b in batches:
    for r in range(len(b['segment_ids'])):
      seg = b['segment_ids'][r]
      for s in np.unique(seg[seg > 0]):
        out.append(b['tokens'][r, seg == s].tobytes() + b['position_ids'][r, seg == s].tobytes())
  return sorted(out)


def test_eval_is_one_padded_pass_with_fixed_masks(dataset):
  folder, _, valid = dataset
  ds = pipeline.eval_pipeline(folder, options(), process_index=0, process_count=1)
  first, again = take(ds, 100), take(ds, 100)
  assert all(same(x, y) for x, y in zip(first, again)) and len(first) == len(again)
  assert all(b['tokens'].shape[0] == 4 for b in first)
  assert not first[-1]['segment_ids'][-1].any()  # padded last batch (13 short songs)
  keys = masking.example_keys(1, 0, np.arange(len(valid)))
  want = masking.make_examples(valid, keys, masking.MaskingOptions())
  assert len(segments(first)) == len(valid)
  assert sum(int(np.count_nonzero(b['segment_ids'])) for b in first) == want.lengths.sum()


def test_masks_do_not_depend_on_chunking(dataset):
  folder = dataset[0]
  run = lambda chunk: segments(take(pipeline.eval_pipeline(
      folder, options(chunk_records=chunk), process_index=0, process_count=1), 100))
  assert run(3) == run(8)


def test_each_process_reads_its_own_records(dataset):
  folder = dataset[0]
  run = lambda i, n: segments(take(pipeline.eval_pipeline(
      folder, options(), process_index=i, process_count=n), 100))
  both, one, two = run(0, 1), run(0, 2), run(1, 2)
  assert one and two and not set(one) & set(two)
  assert sorted(one + two) == both


def test_finetune_rows_hold_lyrics_mask_then_the_melody(dataset):
  folder = dataset[0]
  (batch,) = take(pipeline.finetune_pipeline(folder, options(), process_index=0,
                                             process_count=1), 1)
  for r in range(4):
    seg, t = batch['segment_ids'][r], batch['tokens'][r, :, 0]
    for s in np.unique(seg[seg > 0]):
      w = np.flatnonzero(seg == s)
      a = batch['is_part_a'][r, w]
      types = t[w]
      assert types[a][-1] == tok.MASK and np.sum(types == tok.MASK) == 1
      assert types[~a][0] == tok.SEP and np.all(types[~a][1:] == tok.NOTE)
      assert np.all(types[a][1:-2] == tok.LYRIC)


def test_long_songs_are_windowed_to_fit_the_rows(tmp_path):
  long = song_record([1, 2] * 20, [i % 4 == 0 for i in range(40)], name='long')
  folder = write_dataset(tmp_path, [long, song_record([1, 1])])
  batches = take(pipeline.eval_pipeline(folder, options(seq_len=48, batch_size=2),
                                        process_index=0, process_count=1), 50)
  notes = sum(int(np.count_nonzero(b['tokens'][:, :, 0] == tok.NOTE)) for b in batches)
  assert notes == 60 + 2  # every note of both songs, each once


def test_bad_options_and_inputs_are_clear_errors(dataset, tmp_path):
  folder = dataset[0]
  with pytest.raises(ValueError, match='multiple of the 3 processes'):
    pipeline.pretrain_pipeline(folder, options(batch_size=4), process_index=0, process_count=3)
  with pytest.raises(ValueError, match='not found'):
    pipeline.pretrain_pipeline(tmp_path, options(), process_index=0, process_count=1)
  with pytest.raises(ValueError, match='use'):
    pipeline.make_pipeline(folder, 'train', options(), use='clm', train=True, process_index=0,
                           process_count=1)
  with pytest.raises(ValueError, match='seq_len'):
    options(seq_len=4).validate()


def test_options_from_config():
  cfg = ml_collections.ConfigDict(dict(
      word_rate=0.15, phrase_rate=0.5, song_rate=0.5, mean_span_length=5.0, shuffle_spans=True,
      task_weights=dict(ngram_smr=1.0, ngram_srr=1.0, phrase=1.0, song=1.0), seq_len=512,
      batch_size=16, chunk_records=128, workers=2, worker_buffer=2, read_threads=1))
  opts = pipeline.PipelineOptions.from_config(cfg, seed=7)
  assert (opts.seq_len, opts.batch_size, opts.workers, opts.seed) == (512, 16, 2, 7)
  assert opts.masking == masking.MaskingOptions()


def test_model_mask_on_pipeline_batches_is_the_glm_rule(dataset):
  """The model's mask on what the pipeline yields, against the rule worked out pair by pair from
  the batch's own fields (examples = runs of one segment id; Part A flags per token)."""
  folder = dataset[0]
  batches = take(pipeline.pretrain_pipeline(folder, options(), process_index=0,
                                            process_count=1), 2)
  for b, batch in enumerate(batches):
    seg, a = batch['segment_ids'], batch['is_part_a']
    mask = attention.model_mask(seg, a)
    for r in range(len(seg)):
      want = attention.expected_mask(seg.shape[1], attention.spans_from_segments(seg[r]),
                                     a[r].tolist())
      attention.assert_same(mask[r], want, f'batch {b} row {r}')
  seg = np.concatenate([b['segment_ids'] for b in batches])
  a = np.concatenate([b['is_part_a'] for b in batches])
  assert (seg.max(1) > 1).any() and (seg == 0).any()  # several examples in a row; padding
  assert (a & (seg > 0)).any() and (~a & (seg > 0)).any()  # both parts
  # Padding with a stray Part A flag must still attend to nothing: the rule says so, and a mask
  # that trusted the flag alone would fail the check.
  r, t = np.argwhere(seg == 0)[0]
  a[r, t] = True
  want = attention.expected_mask(seg.shape[1], attention.spans_from_segments(seg[r]),
                                 a[r].tolist())
  mask = attention.model_mask(seg[r:r + 1], a[r:r + 1])[0]
  attention.assert_same(mask, want, 'stray flag')
  with pytest.raises(AssertionError, match='pairs differ'):
    attention.assert_same(mask | np.diag(seg[r] == 0), want, 'padding sees itself')


def test_training_order_visits_each_record_once_per_epoch_and_reshuffles():
  shard = np.arange(1, 40, 3)  # process 1 of 3 over 40 records
  order = pipeline.EpochOrder(shard, seed=5, shuffle=True)
  stream = np.array([order(g, g % len(shard)) for g in range(3 * len(shard))])
  np.testing.assert_array_equal(stream[:, 0], np.arange(3 * len(shard)))
  epochs = stream[:, 1].reshape(3, len(shard))
  assert all(sorted(e) == shard.tolist() for e in epochs.tolist())
  assert len({tuple(e) for e in epochs.tolist()}) == 3
  again = pipeline.EpochOrder(shard, seed=5, shuffle=True)
  assert again(2 * len(shard) + 4, 4).tolist() == stream[2 * len(shard) + 4].tolist()


@pytest.fixture(scope='module')
def sharded(tmp_path_factory, dataset):
  """The dataset's records in shards of 7: train 6 files (7, 7, 7, 7, 7, 5), valid 2 (7, 6)."""
  _, train, valid = dataset
  return write_dataset(tmp_path_factory.mktemp('sharded'), train, valid, records_per_shard=7)


@pytest.mark.parametrize('index,count', [(0, 1), (0, 2), (1, 2)])
def test_sharded_and_one_file_layouts_give_the_same_batches(dataset, sharded, index, count):
  process = dict(process_index=index, process_count=count)
  for make in (pipeline.pretrain_pipeline, pipeline.finetune_pipeline, pipeline.eval_pipeline):
    one_file, shards = (take(make(folder, options(), **process), 6) for folder in (dataset[0],
                                                                                   sharded))
    assert one_file and len(one_file) == len(shards)
    assert all(same(a, b) for a, b in zip(one_file, shards))


def _chunks_read(folder, index, count, batches, monkeypatch):
  """[(record files the process opened, (position, record index) pairs, record names)] of each
  chunk the training pipeline of process ``index`` of ``count`` masked and packed."""
  seen = []
  real = pipeline.ChunkToRows.__call__

  def spy(self, chunk):
    rows = real(self, chunk)
    pairs = np.asarray(chunk, np.int64).reshape(-1, 2)
    names = [self._source[i - self._first_index].name for i in pairs[:, 1].tolist()]
    seen.append(([os.path.basename(p) for p in self._paths], pairs, names))
    return rows

  monkeypatch.setattr(pipeline.ChunkToRows, '__call__', spy)
  take(pipeline.pretrain_pipeline(folder, options(), process_index=index, process_count=count),
       batches)
  return seen


def test_two_processes_read_every_record_once_per_epoch_from_their_own_shards(sharded,
                                                                             monkeypatch):
  epochs = {}
  for index, files in ((0, range(0, 3)), (1, range(2, 6))):  # blocks [0, 20) and [20, 40)
    seen = _chunks_read(sharded, index, 2, 40, monkeypatch)
    assert all(opened == [f'train-0000{i}-of-00006.array_record' for i in files]
               for opened, _, _ in seen)
    pairs = np.concatenate([p for _, p, _ in seen])
    names = sum((n for _, _, n in seen), [])
    assert names == [f't{i}' for i in pairs[:, 1]]  # the record at that index of the split
    by_position = dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))
    assert len(by_position) >= 60  # three epochs of the process's 20 records were read
    epochs[index] = [[by_position[g] for g in range(e * 20, (e + 1) * 20)] for e in range(3)]
  for e in range(3):
    both = epochs[0][e] + epochs[1][e]
    assert sorted(both) == list(range(40))  # every record exactly once, none read by both
  assert epochs[0][0] != epochs[0][1] != epochs[0][2]  # reshuffled every epoch
