import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from songglm_jax.data import layout, masking, packing, records
from tests.conftest import require_sample
from tests.data.conftest import random_record


def examples(count=12, seed=0, task=None):
  rng = np.random.default_rng(seed)
  recs = [random_record(rng, max_syllables=12) for _ in range(count)]
  keys = masking.example_keys(seed, 0, np.arange(count))
  return masking.make_examples(recs, keys, masking.MaskingOptions(), task)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=40), st.integers(50, 120))
def test_first_fit_places_every_example_inside_one_row_without_overlap(lengths, seq_len):
  row, offset, num_rows = packing.first_fit(np.array(lengths), seq_len)
  used = np.zeros((num_rows, seq_len), int)
  for r, o, n in zip(row, offset, lengths):
    assert 0 <= r < num_rows and o + n <= seq_len
    used[r, o:o + n] += 1
  assert used.max() == 1
  assert num_rows <= -(-2 * sum(lengths) // seq_len)  # first fit: rows more than half full


def test_first_fit_decreasing_fills_rows_exactly_when_it_can():
  _, _, rows = packing.first_fit(np.array([3, 6, 5, 4, 2, 5, 5]), 10)
  assert rows == 3


def test_pack_copies_each_example_into_its_own_segment():
  ex = examples()
  rows = packing.pack(ex, 96)
  seg = rows['segment_ids']
  found = 0
  for r in range(len(seg)):
    ids = seg[r]
    n = np.count_nonzero(ids)
    assert np.all(ids[:n] > 0) and not ids[n:].any()  # examples first, then padding
    assert np.all(np.diff(ids[:n]) >= 0)
    for s in np.unique(ids[ids > 0]):
      where = np.flatnonzero(ids == s)
      assert np.all(np.diff(where) == 1)
      # Which example is it? The one with the same length and tokens.
      match = [i for i in range(len(ex)) if ex.lengths[i] == len(where) and np.array_equal(
          ex.example(i)['tokens'], rows['tokens'][r, where])]
      assert match
      for k in layout.BATCH_KEYS:
        np.testing.assert_array_equal(rows[k][r, where], ex.example(match[0])[k])
      found += 1
    pad = ids == 0
    for k in layout.BATCH_KEYS:
      assert not rows[k][r, pad].any(), k
  assert found == len(ex)


def test_packed_rows_never_attend_across_segments_or_from_part_a_into_part_b():
  ex = examples(count=10, seed=3)
  rows = packing.pack(ex, 128)
  for r in range(len(rows['segment_ids'])):
    seg, a = rows['segment_ids'][r], rows['is_part_a'][r]
    allowed = packing.attention_allowed(seg, a)
    i, j = np.nonzero(allowed)
    assert np.all(seg[i] == seg[j]) and np.all(seg[i] > 0)
    assert not np.any(a[i] & ~a[j])  # Part A never sees Part B
    assert not np.any(~a[i] & ~a[j] & (j > i))  # Part B is causal
    # Within a segment Part A sees all of Part A; Part B sees Part A and its past.
    for s in np.unique(seg[seg > 0]):
      w = np.flatnonzero(seg == s)
      sub = allowed[np.ix_(w, w)]
      wa = a[w]
      assert sub[np.ix_(wa, wa)].all()
      assert sub[np.ix_(~wa, wa)].all()


def test_example_longer_than_seq_len_is_an_error():
  with pytest.raises(ValueError, match='exceeds seq_len=10'):
    packing.first_fit(np.array([4, 11]), 10)


def test_efficiency_counts_non_padding_tokens():
  rows = packing.empty_rows(2, 10, 9)
  rows['segment_ids'][0, :7] = 1
  rows['segment_ids'][1, :8] = 1
  assert packing.efficiency(rows) == pytest.approx(0.75)


def test_packing_efficiency_on_the_shared_corpus(tmp_path):
  from songglm_jax import prepare
  source = require_sample('pretrain')
  prepare.prepare_dataset(str(source), tmp_path, prepare.PrepareOptions(limit=300), workers=1)
  src = records.RecordSource([records.split_path(tmp_path, 'train')])
  recs = [src[i] for i in range(len(src))]
  keys = masking.example_keys(0, 0, np.arange(len(recs)))
  ex = masking.make_examples(recs[:256], keys[:256], masking.MaskingOptions())
  assert packing.efficiency(packing.pack(ex, 1024)) >= 0.9
