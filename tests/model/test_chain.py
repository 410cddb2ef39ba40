"""Field conditioning (model/chain.py): each head sees the fields before it, and only those."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from songglm_jax.data import tokenizer as tk
from songglm_jax.model import GLM, ModelConfig, chain, synthetic
from songglm_jax.model.random_weights import random_params

SIZES = synthetic.synthetic_field_sizes(num_syllables=50, max_bars=32)
CFG = ModelConfig(d_model=32, num_layers=1, num_heads=4, d_ff=64, dropout_rate=0.0, max_len=128,
                  field_conditioning='chain', chain_hidden=16)


@pytest.fixture(scope='module')
def apply():
  fns = {}

  def run(cfg, batch):
    if cfg not in fns:
      graphdef, params = random_params(cfg, SIZES)
      fns[cfg] = (jax.jit(lambda p, b: nnx.merge(graphdef, p)(b)), params)
    fn, params = fns[cfg]
    return {k: np.asarray(v) for k, v in fn(params, batch).items()}
  return run


def _batch(seed=0):
  return synthetic.synthetic_batch(np.random.default_rng(seed), 2, 96, SIZES, min_example=12,
                                   max_example=40)


def _changed(batch, field, seed=5):
  """``batch`` with the targets' ``field`` column replaced by other valid ids where scored."""
  out = {k: v.copy() for k, v in batch.items()}
  col = out['targets'][..., getattr(tk.F, field)]
  rng = np.random.default_rng(seed)
  new = rng.integers(tk.NUM_SPECIAL, SIZES[field], col.shape)
  out['targets'][..., getattr(tk.F, field)] = np.where(col >= tk.NUM_SPECIAL, new, col)
  return out


@pytest.mark.parametrize('field', chain.CHAIN)
def test_a_head_depends_on_the_targets_of_earlier_fields_only(apply, field):
  batch = _batch()
  base, moved = apply(CFG, batch), apply(CFG, _changed(batch, field))
  scored = batch['loss_mask'] > 0
  i = chain.CHAIN.index(field)
  for j, f in enumerate(chain.CHAIN):
    diff = float(np.abs(base[f][scored] - moved[f][scored]).max())
    if j <= i:
      assert diff == 0.0, f'{f} head moved when the {field} target changed'
    else:
      assert diff > 1e-6, f'{f} head ignores the {field} target'


def test_independent_heads_ignore_the_targets(apply):
  cfg = dataclasses.replace(CFG, field_conditioning='none')
  batch = _batch()
  base = apply(cfg, batch)
  for field in chain.CHAIN:
    moved = apply(cfg, _changed(batch, field))
    assert all(np.array_equal(base[f], moved[f]) for f in base)


def test_rel_bar_classes():
  ns = tk.NUM_SPECIAL
  target = jnp.array([ns + 3, ns + 4, ns + 5, ns + 9, ns + 3, tk.SEP, ns + 2])
  source = jnp.array([ns + 3, ns + 3, ns + 3, ns + 3, tk.SEP, ns + 3, ns + 3])
  assert chain.rel_bar(target, source).tolist() == [1, 2, 3, 4, 0, 0, 1]


def test_chain_needs_chain_fields_and_old_configs_mean_no_chain():
  with pytest.raises(ValueError, match='target_fields'):
    GLM(dataclasses.replace(CFG, target_fields=('pitch', 'syllable')), SIZES, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='field_conditioning'):
    ModelConfig(field_conditioning='sideways')
  old = {k: v for k, v in dataclasses.asdict(CFG).items()
         if k not in ('field_conditioning', 'chain_hidden')}
  assert ModelConfig.from_config(old).field_conditioning == 'none'
  graphdef, params = random_params(CFG, SIZES)
  assert 'chain' in nnx.to_pure_dict(params)
  _, plain = random_params(dataclasses.replace(CFG, field_conditioning='none'), SIZES)
  assert 'chain' not in nnx.to_pure_dict(plain)
