"""Synthetic batches follow the batch contract; check_batch catches broken ones; the loss."""

from __future__ import annotations

import numpy as np
import pytest

from songglm_jax.data import tokenizer as tk
from songglm_jax.model import ModelConfig, inputs, loss, synthetic

SIZES = synthetic.synthetic_field_sizes()
CFG = ModelConfig(max_len=256)


@pytest.mark.parametrize('layout', ['pretrain', 'finetune'])
def test_synthetic_batch_follows_the_contract(layout):
  b = synthetic.synthetic_batch(np.random.default_rng(0), 4, 256, SIZES, layout=layout)
  inputs.check_batch(b, CFG, SIZES)
  seg, part_a = b['segment_ids'], b['is_part_a']
  np.testing.assert_array_equal(b['loss_mask'] == 1, ~part_a & (seg != 0))
  assert seg.max() >= 2  # packed: several examples per row
  for r in range(len(seg)):
    for s in range(1, seg[r].max() + 1):
      rows = np.flatnonzero(seg[r] == s)
      a, pb = rows[part_a[r, rows]], rows[~part_a[r, rows]]
      assert a.max() < pb.min()  # Part A first
      np.testing.assert_array_equal(b['position_ids'][r, a], np.arange(len(a)))
      assert not b['block_position_ids'][r, a].any()
      types = b['tokens'][r, :, tk.F.type]
      starts = pb[b['block_position_ids'][r, pb] == 1]
      assert (types[starts] == tk.SEP).all()  # every span starts with SEP
      masks = a[np.isin(types[a], [tk.MASK])]
      assert len(masks) == len(starts) == (1 if layout == 'finetune' else len(starts))
      # Part B tokens carry the position of their span's MASK; the span ends predicting SEP.
      span = np.cumsum(b['block_position_ids'][r, pb] == 1) - 1
      np.testing.assert_array_equal(b["position_ids"][r, pb], masks[span] - a.min())
      ends = np.append(starts[1:] - 1, pb.max())
      assert (b['targets'][r, ends] == tk.SEP).all()
      # Inside a span the target is the next input row.
      inner = np.setdiff1d(pb, ends)
      np.testing.assert_array_equal(b['targets'][r, inner], b['tokens'][r, inner + 1])


def test_check_batch_names_the_offending_field():
  b = synthetic.synthetic_batch(np.random.default_rng(0), 2, 64, SIZES)
  bad = dict(b, word_ids=b['word_ids'] + 300)
  with pytest.raises(ValueError, match='word_ids'):
    inputs.check_batch(bad, CFG, SIZES)
  tokens = b['tokens'].copy()
  tokens[0, 0, tk.F.pitch] = SIZES['pitch']
  with pytest.raises(ValueError, match=r'tokens\[pitch\]'):
    inputs.check_batch(dict(b, tokens=tokens), CFG, SIZES)
  with pytest.raises(ValueError, match='missing'):
    inputs.check_batch({k: v for k, v in b.items() if k != 'segment_ids'}, CFG, SIZES)


def test_loss_is_the_mean_over_fields_of_masked_cross_entropy():
  rng = np.random.default_rng(0)
  logits = {'pitch': rng.normal(size=(2, 5, 7)).astype(np.float32),
            'bar': rng.normal(size=(2, 5, 3)).astype(np.float32)}
  targets = np.zeros((2, 5, len(tk.FIELDS)), np.int32)
  targets[..., tk.F.pitch] = rng.integers(0, 7, (2, 5))
  targets[..., tk.F.bar] = rng.integers(0, 3, (2, 5))
  mask = (rng.random((2, 5)) < 0.6).astype(np.float32)
  sums = loss.field_sums(logits, targets, mask)
  got = loss.summarize(sums['ce'], sums['correct'], mask.sum())
  want = {}
  for f, lg in logits.items():
    t = targets[..., tk.FIELDS.index(f)]
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, t[..., None], -1)[..., 0]
    want[f] = (nll * mask).sum() / mask.sum()
    acc = ((lg.argmax(-1) == t) * mask).sum() / mask.sum()
    np.testing.assert_allclose(got[f'loss_{f}'], want[f], rtol=1e-5)
    np.testing.assert_allclose(got[f'accuracy_{f}'], acc, rtol=1e-6)
  np.testing.assert_allclose(got['loss'], np.mean(list(want.values())), rtol=1e-5)
