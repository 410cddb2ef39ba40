import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from songglm_jax.data import layout, masking, packing, records
from tests.conftest import require_sample
from tests.data import attention
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


def _packed(count=10, seed=3, seq_len=128):
  """Packed rows of real examples; per row the (start, end) of each example placed in it (the
  packer's first-fit placement, checked against the rows' tokens) and each token's Part A flag
  taken from the example itself."""
  ex = examples(count=count, seed=seed)
  rows = packing.pack(ex, seq_len)
  row, offset, num_rows = packing.first_fit(ex.lengths, seq_len)
  placed = attention.spans_from_placement(row, offset, ex.lengths, num_rows)
  part_a = np.zeros((num_rows, seq_len), bool)
  for k, (r, o) in enumerate(zip(row.tolist(), offset.tolist())):
    one = ex.example(k)
    np.testing.assert_array_equal(rows['tokens'][r, o:o + len(one['tokens'])], one['tokens'])
    part_a[r, o:o + len(one['tokens'])] = one['is_part_a']
  return rows, placed, part_a


def test_model_mask_on_packed_rows_is_the_glm_rule_pair_by_pair():
  rows, placed, part_a = _packed()
  seg, a = rows['segment_ids'], rows['is_part_a']
  # The rows exercise every rule: several examples, both parts, padding.
  assert max(len(p) for p in placed) > 1 and a.any() and (~a & (seg > 0)).any()
  assert (seg == 0).any()
  mask = attention.model_mask(seg, a)
  for r in range(len(seg)):
    want = attention.expected_mask(seg.shape[1], placed[r], part_a[r].tolist())
    attention.assert_same(mask[r], want, f'row {r}')
    assert attention.spans_from_segments(seg[r]) == sorted(placed[r])  # (the pipeline test's)


def test_the_mask_check_fails_on_a_wrong_mask_or_batch():
  rows, placed, part_a = _packed()
  seg, a = rows['segment_ids'], rows['is_part_a']
  want = [attention.expected_mask(seg.shape[1], placed[r], part_a[r].tolist())
          for r in range(len(seg))]
  # A row with several examples and padding.
  r = max(range(len(seg)), key=lambda k: (len(placed[k]) > 1) + (seg[k] == 0).any())
  assert len(placed[r]) > 1 and (seg[r] == 0).any()
  mask = attention.model_mask(seg, a)[r]
  sr, ar = seg[r], a[r]
  same = (sr[:, None] == sr[None, :]) & (sr[:, None] > 0)
  later = np.arange(len(sr))[None, :] > np.arange(len(sr))[:, None]
  part_b = ~ar & (sr > 0)
  wrong = {  # mutated batches through the model's mask, then mutated masks
      'segments merged': attention.model_mask(np.where(seg > 0, 1, 0), a)[r],
      'all Part A': attention.model_mask(seg, seg > 0)[r],
      'all Part B': attention.model_mask(seg, np.zeros_like(a))[r],
      'Part B sees later Part B': mask | (same & part_b[:, None] & part_b[None, :] & later),
      'Part A sees Part B': mask | (same & ar[:, None] & part_b[None, :]),
      'Part B does not see itself': mask & ~np.diag(part_b),
      'padding sees itself': mask | np.diag(sr == 0),
  }
  for what, m in wrong.items():
    with pytest.raises(AssertionError, match='pairs differ'):
      attention.assert_same(m, want[r], what)


def test_example_longer_than_seq_len_is_an_error():
  with pytest.raises(ValueError, match='exceeds seq_len=10'):
    packing.first_fit(np.array([4, 11]), 10)


def test_efficiency_counts_non_padding_tokens():
  rows = packing.empty_rows(2, 10, 9)
  rows['segment_ids'][0, :7] = 1
  rows['segment_ids'][1, :8] = 1
  assert packing.efficiency(rows) == pytest.approx(0.75)


def test_packing_efficiency_on_the_shared_corpus(tmp_path):
  from songglm_jax.data import prepare
  source = require_sample('pretrain')
  prepare.prepare_dataset(str(source), tmp_path, prepare.PrepareOptions(limit=300), workers=1)
  src = records.open_split(tmp_path, 'train')
  recs = [src[i] for i in range(len(src))]
  keys = masking.example_keys(0, 0, np.arange(len(recs)))
  ex = masking.make_examples(recs[:256], keys[:256], masking.MaskingOptions())
  assert packing.efficiency(packing.pack(ex, 1024)) >= 0.9
