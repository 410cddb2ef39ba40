"""The GLM: attention rule, KV-cache forward, ablation switches, dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from songglm_jax.model import GLM, AttnMeta, ModelConfig, Past, glm_mask, synthetic

SIZES = synthetic.synthetic_field_sizes(num_syllables=50, max_bars=32)
CFG = ModelConfig(d_model=32, num_layers=2, num_heads=4, d_ff=64, dropout_rate=0.0, max_len=128)


@pytest.fixture(scope='module')
def params():
  """Parameters of the CFG model, initialised once under jit (eager init compiles per shape)."""
  return jax.jit(lambda: nnx.split(GLM(CFG, SIZES, rngs=nnx.Rngs(0)))[1])()


def _model(params, **change):
  """The model of CFG (with ``change``) on the shared parameters."""
  cfg = ModelConfig(**{**CFG.__dict__, **change})
  return nnx.merge(nnx.graphdef(nnx.eval_shape(lambda: GLM(cfg, SIZES, rngs=nnx.Rngs(0)))),
                   params)


@pytest.fixture(scope='module')
def apply(params):
  graphdef = nnx.graphdef(_model(params))
  fn = jax.jit(lambda p, b: nnx.merge(graphdef, p)(b))
  return lambda batch: {k: np.asarray(v) for k, v in fn(params, batch).items()}


def _batch(seed=0, rows=2, length=96):
  return synthetic.synthetic_batch(np.random.default_rng(seed), rows, length, SIZES,
                                   min_example=12, max_example=40)


def _perturb(batch, where, seed=1):
  """A copy of ``batch`` with new random (valid) inputs at the positions ``where`` [B, L]."""
  other = _batch(seed)
  out = {k: v.copy() for k, v in batch.items()}
  for k in ('tokens', 'word_ids', 'phrase_ids', 'position_ids', 'block_position_ids'):
    out[k][where] = other[k][where]
  return out


def _max_diff(a, b, where):
  return max(float(np.abs(a[f][where] - b[f][where]).max(initial=0.0)) for f in a)


def test_glm_mask_matches_the_contract_rule():
  b = _batch()
  got = np.asarray(glm_mask(AttnMeta.of_batch(b), AttnMeta.of_batch(b)))[:, 0]
  seg, a = b['segment_ids'], b['is_part_a']
  i, j = np.meshgrid(np.arange(seg.shape[1]), np.arange(seg.shape[1]), indexing='ij')
  want = ((seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] != 0)
          & (a[:, None, :] | (~a[:, :, None] & (j <= i)[None])))
  np.testing.assert_array_equal(got, want)


def test_tokens_never_see_other_segments(apply):
  b = _batch()
  seg1 = b['segment_ids'] == 1
  base, moved = apply(b), apply(_perturb(b, ~seg1))
  assert _max_diff(base, moved, seg1) == 0.0
  assert _max_diff(base, moved, b['segment_ids'] == 2) > 1e-3  # the perturbation is visible


def test_part_a_never_sees_part_b(apply):
  b = _batch()
  part_b = ~b['is_part_a'] & (b['segment_ids'] != 0)
  base, moved = apply(b), apply(_perturb(b, part_b))
  assert _max_diff(base, moved, b['is_part_a']) == 0.0
  assert _max_diff(base, moved, part_b) > 1e-3


def test_part_b_is_causal(apply):
  b = _batch()
  part_b = ~b['is_part_a'] & (b['segment_ids'] == 1)
  cols = np.flatnonzero(part_b[0])
  cut = cols[len(cols) // 2]
  later = np.zeros_like(part_b)
  later[0, cut:] = part_b[0, cut:]
  earlier = np.zeros_like(part_b)
  earlier[0, :cut] = part_b[0, :cut]
  base, moved = apply(b), apply(_perturb(b, later))
  assert _max_diff(base, moved, earlier) == 0.0
  assert _max_diff(base, moved, later) > 1e-3


def test_forward_with_cache_matches_full_pass(params):
  graphdef = nnx.graphdef(_model(params))
  forward = jax.jit(lambda p, b, meta, past: nnx.merge(graphdef, p).forward(
      b, meta=meta, past=past))
  b = {k: v[:1] for k, v in _batch(seed=3).items()}
  seg1_b = np.flatnonzero(~b['is_part_a'][0] & (b['segment_ids'][0] == 1))
  split = int(seg1_b[0])  # segment 1's Part A is complete in the first chunk
  meta = AttnMeta.of_batch(b)
  full, _ = forward(params, b, meta, None)
  cut = lambda m, s: AttnMeta(*(x[:, s] for x in m))
  first = {k: v[:, :split] for k, v in b.items()}
  second = {k: v[:, split:] for k, v in b.items()}
  _, kv = forward(params, first, cut(meta, slice(None, split)), None)
  logits, _ = forward(params, second, cut(meta, slice(split, None)),
                      Past(kv, cut(meta, slice(None, split))))
  for f in CFG.target_fields:
    np.testing.assert_allclose(logits[f], full[f][:, split:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('change, absent, present', [
    (dict(), (), ('word', 'phrase', 'position', 'block_position')),
    (dict(use_word_ids=False, use_phrase_ids=False), ('word', 'phrase'), ('position',)),
    (dict(use_phrase_ids=False), ('phrase',), ('word',)),
    (dict(position_encoding='1d'), ('block_position',), ('position', 'word')),
    (dict(position_encoding='none'), ('position', 'block_position'), ('word',)),
    (dict(embed_combine='concat'), (), ('project',)),
])
def test_ablation_switches_change_param_tree(change, absent, present):
  cfg = ModelConfig(**{**CFG.__dict__, **change})
  embed = nnx.state(nnx.eval_shape(lambda: GLM(cfg, SIZES, rngs=nnx.Rngs(0))))['embed']
  for name in absent:
    assert name not in embed
  for name in present:
    assert name in embed
  width = cfg.embed_field_dim if cfg.embed_combine == 'concat' else cfg.d_model
  assert embed['fields']['pitch'].shape == (SIZES['pitch'], width)


def test_heads_only_for_target_fields():
  heads = nnx.state(nnx.eval_shape(lambda: GLM(CFG, SIZES, rngs=nnx.Rngs(0))))['heads']
  assert set(heads) == set(CFG.target_fields)
  assert heads['word_id']['kernel'].shape == (CFG.d_model, SIZES['word_id'])


def test_bfloat16_compute_keeps_float32_params_and_logits(params, apply):
  m16 = _model(params, compute_dtype='bfloat16')
  assert {x.dtype for x in jax.tree.leaves(nnx.state(m16))} == {np.dtype('float32')}
  graphdef = nnx.graphdef(m16)
  b = _batch()
  got = jax.jit(lambda p, b: nnx.merge(graphdef, p)(b))(params, b)
  want = apply(b)
  for f in CFG.target_fields:
    assert got[f].dtype == jnp.float32
    np.testing.assert_allclose(got[f], want[f], atol=0.05)


def test_dropout_only_with_a_key(params, apply):
  graphdef = nnx.graphdef(_model(params, dropout_rate=0.5))
  fn = jax.jit(lambda p, b, k: nnx.merge(graphdef, p)(b, dropout_key=k)['pitch'])
  b = _batch()
  off = jax.jit(lambda p, b: nnx.merge(graphdef, p)(b)['pitch'])(params, b)
  np.testing.assert_array_equal(off, apply(b)['pitch'])
  on1, on2 = fn(params, b, jax.random.key(1)), fn(params, b, jax.random.key(2))
  assert np.abs(np.asarray(on1) - np.asarray(off)).max() > 1e-3
  assert np.abs(np.asarray(on1) - np.asarray(on2)).max() > 1e-3


def test_config_rejects_bad_values_and_missing_fields():
  with pytest.raises(ValueError, match='num_heads'):
    ModelConfig(d_model=30, num_heads=4)
  with pytest.raises(ValueError, match='position_encoding'):
    ModelConfig(position_encoding='rotary')
  with pytest.raises(ValueError, match='missing'):
    ModelConfig.from_config({'d_model': 8})
  cfg = ModelConfig.from_config({**CFG.__dict__, 'target_fields': 'pitch, duration'})
  assert cfg.target_fields == ('pitch', 'duration')
  with pytest.raises(ValueError, match='field_sizes'):
    GLM(CFG, {k: v for k, v in SIZES.items() if k != 'pitch'}, rngs=nnx.Rngs(0))
