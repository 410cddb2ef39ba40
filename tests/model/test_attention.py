"""config.model.attention: jax.nn.dot_product_attention ('xla_library', what 'auto' picks on
GPU/TPU) equals the written-out path ('explicit', what 'auto' picks on CPU) on CPU -- values and
gradients, float32 and bfloat16, on packed GLM rows with padding, and in the KV-cache decoder;
config.model.remat changes memory, not results.

Tolerances (largest difference measured on this CPU in brackets):
* float32: attention output and its gradients atol 1e-5 [4e-7, 7e-7]; GLM loss 1e-6 [0],
  logits atol 1e-5 [9e-8], parameter gradients atol 1e-6 [2e-8].
* bfloat16: attention output atol 4e-2 [1.2e-2], its gradients atol 6e-2 [2.3e-2] (unit-normal
  inputs; the library multiplies bfloat16 weights, the explicit path divides after the weighted
  sum, so they round differently); GLM loss 1e-3 [1.5e-5], logits atol 2e-2 [2e-3], parameter
  gradients: the norm of the difference within 2% of the gradient's norm [0.17%].
* remat: identical loss and gradients [0] (atol 1e-6 kept for other backends).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from songglm_jax.inference import generation
from songglm_jax.model import GLM, AttnMeta, ModelConfig, glm_mask, layers, synthetic
from songglm_jax.model import loss as loss_lib
from songglm_jax.model.random_weights import random_params
from tests.model import test_decode

SIZES = synthetic.synthetic_field_sizes(num_syllables=50, max_bars=32)
CFG = ModelConfig(d_model=32, num_layers=2, num_heads=4, d_ff=64, dropout_rate=0.0, max_len=128)
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
ATTEND_TOL = {'float32': (1e-5, 1e-5), 'bfloat16': (4e-2, 6e-2)}  # (output, gradients) atol


def _batch(seed=0, rows=3, length=96):
  return synthetic.synthetic_batch(np.random.default_rng(seed), rows, length, SIZES,
                                   min_example=12, max_example=40)


def _mask(batch):
  meta = AttnMeta.of_batch(batch)
  return glm_mask(meta, meta)


def _attend_pair(fn, args, cotangent):
  """(output, gradients w.r.t. args) of fn(*args) for a cotangent of the output."""
  out, vjp = jax.vjp(fn, *args)
  return out, vjp(cotangent)


def _f32(x):
  return np.asarray(jnp.asarray(x, jnp.float32))


@pytest.mark.parametrize('dtype', DTYPES)
def test_attend_library_equals_explicit_on_packed_rows_with_padding(dtype):
  b = _batch()
  mask = _mask(b)
  empty = ~np.asarray(mask).any(-1)[:, 0]  # [B, L]: queries that may attend to nothing
  assert empty.any() and (empty == (b['segment_ids'] == 0)).all()
  rng = np.random.default_rng(0)
  shape = (3, 96, 4, 16)
  q, k, v, ct = (jnp.asarray(rng.normal(size=shape), DTYPES[dtype]) for _ in range(4))
  outs = {}
  for impl in ('xla_library', 'explicit'):
    fn = jax.jit(lambda q, k, v, impl=impl: layers.attend(q, k, v, mask, impl))
    outs[impl] = _attend_pair(fn, (q, k, v), ct)
  (lib, lib_grads), (exp, exp_grads) = outs['xla_library'], outs['explicit']
  assert lib.dtype == exp.dtype == DTYPES[dtype]
  out_tol, grad_tol = ATTEND_TOL[dtype]
  assert np.isfinite(_f32(lib)).all() and np.isfinite(_f32(exp)).all()
  np.testing.assert_allclose(_f32(lib), _f32(exp), atol=out_tol, rtol=0)
  for name, gl, ge in zip('qkv', lib_grads, exp_grads):
    assert np.isfinite(_f32(gl)).all(), name
    np.testing.assert_allclose(_f32(gl), _f32(ge), atol=grad_tol, rtol=0, err_msg=name)
  # Padding queries get uniform weights over all keys in both: the mean of the values.
  np.testing.assert_allclose(_f32(lib)[empty], _f32(v).mean(1)[np.nonzero(empty)[0]],
                             atol=out_tol)


@pytest.mark.parametrize('dtype', DTYPES)
def test_attend_one_is_attend_for_a_single_query(dtype):
  """The decoder's layout [B * H, S, K] gives what the block's [B, 1, H, K] layout gives."""
  rng = np.random.default_rng(1)
  b, s, h, kd = 3, 40, 4, 8
  q, k, v = (jnp.asarray(rng.normal(size=(b, n, h, kd)), DTYPES[dtype]) for n in (1, s, s))
  valid = rng.random((b, s)) < 0.6
  valid[2] = False  # a row with nothing to attend to
  want = layers.attend(q, k, v, jnp.asarray(valid)[:, None, None], 'explicit')[:, 0]
  flat = lambda x: jnp.swapaxes(x, 1, 2).reshape(b * h, x.shape[1], kd)
  mask = jnp.repeat(jnp.asarray(valid), h, axis=0)
  for impl in ('xla_library', 'explicit'):
    got = layers.attend_one(flat(q)[:, 0], flat(k), flat(v), mask, impl).reshape(b, h, kd)
    assert got.dtype == DTYPES[dtype]
    np.testing.assert_allclose(_f32(got), _f32(want), atol=ATTEND_TOL[dtype][0], err_msg=impl)


def test_auto_is_explicit_on_cpu_and_bad_values_are_refused():
  assert jax.default_backend() == 'cpu'
  assert layers.resolve_attention('auto') == 'explicit'
  with pytest.raises(ValueError, match='attention'):
    ModelConfig(attention='flash')
  with pytest.raises(ValueError, match='remat'):
    ModelConfig(remat='yes')


def _objective(cfg, batch):
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: GLM(cfg, SIZES, rngs=nnx.Rngs(0))))

  def objective(p):
    logits = nnx.merge(graphdef, p)(batch)
    sums = loss_lib.field_sums(logits, batch['targets'], batch['loss_mask'])
    return loss_lib.total_loss(sums['ce'], jnp.sum(batch['loss_mask'])), logits
  return jax.jit(jax.value_and_grad(objective, has_aux=True))


def _loss_and_grads(cfg, params, batch):
  (loss, logits), grads = _objective(cfg, batch)(params)
  return float(loss), jax.device_get(logits), jax.device_get(grads)


@pytest.fixture(scope='module')
def params():
  return random_params(CFG, SIZES)[1]


@pytest.mark.parametrize('dtype', DTYPES)
def test_glm_logits_and_gradients_agree_across_attention_paths(params, dtype):
  b = _batch(seed=2)
  assert (b['segment_ids'] == 0).any()
  runs = {impl: _loss_and_grads(dataclasses.replace(CFG, attention=impl, compute_dtype=dtype),
                                params, b)
          for impl in ('xla_library', 'explicit')}
  (l_lib, lo_lib, g_lib), (l_exp, lo_exp, g_exp) = runs['xla_library'], runs['explicit']
  assert np.isfinite(l_lib) and abs(l_lib - l_exp) < (1e-6 if dtype == 'float32' else 1e-3)
  for f in CFG.target_fields:
    np.testing.assert_allclose(lo_lib[f], lo_exp[f], atol=1e-5 if dtype == 'float32' else 2e-2,
                               err_msg=f)
  flat_lib, flat_exp = jax.tree.leaves(g_lib), jax.tree.leaves(g_exp)
  assert len(flat_lib) == len(flat_exp) > 10
  if dtype == 'float32':
    for a, e in zip(flat_lib, flat_exp):
      np.testing.assert_allclose(a, e, atol=1e-6)
  else:
    diff = np.sqrt(sum(np.sum((a - e) ** 2) for a, e in zip(flat_lib, flat_exp)))
    norm = np.sqrt(sum(np.sum(e ** 2) for e in flat_exp))
    assert np.isfinite(norm) and diff < 0.02 * norm, (diff, norm)


def test_remat_gives_the_same_loss_and_gradients_with_less_memory(params):
  b = _batch(seed=3)
  base = _loss_and_grads(CFG, params, b)
  remat = _loss_and_grads(dataclasses.replace(CFG, remat=True), params, b)
  assert abs(base[0] - remat[0]) < 1e-6
  for a, e in zip(jax.tree.leaves(base[2]), jax.tree.leaves(remat[2])):
    np.testing.assert_allclose(a, e, atol=1e-6)
  temp = {r: _objective(dataclasses.replace(CFG, remat=r), b).lower(params).compile()
          .memory_analysis().temp_size_in_bytes for r in (False, True)}
  assert temp[True] < temp[False], temp


@pytest.mark.parametrize('impl', ['xla_library', 'explicit'])
def test_decoder_attends_with_the_configured_implementation(impl, monkeypatch):
  """The KV-cache step (and the prompt encoding) call the library exactly when configured."""
  calls = []
  library = jax.nn.dot_product_attention
  monkeypatch.setattr(jax.nn, 'dot_product_attention',
                      lambda *a, **kw: calls.append(1) or library(*a, **kw))
  cfg = dataclasses.replace(test_decode.CFG, attention=impl)
  # max_notes=40: a decoder shape no other test compiles, so this call traces.
  _, _, out = test_decode._decode(test_decode._lyrics()[:2], cfg=cfg, max_notes=40)  # pylint: disable=protected-access
  # Traced once: the prompt's scanned block (1 call) and each layer of the cached step.
  assert len(calls) == (1 + cfg.num_layers if impl == 'xla_library' else 0)
  assert int(out.num_notes.min()) > 0


@pytest.mark.parametrize('impl', ['xla_library', 'explicit'])
def test_bfloat16_decoding_makes_valid_songs(impl):
  cfg = dataclasses.replace(test_decode.CFG, attention=impl, compute_dtype='bfloat16')
  tok, _, _ = test_decode.tiny(cfg=cfg)
  lyrics, _, out = test_decode._decode(test_decode._lyrics(), cfg=cfg, seed=4)  # pylint: disable=protected-access
  for f, x in out.logits.items():
    assert x.dtype == np.float32 and np.isfinite(x[:, :int(out.num_notes.min())]).all(), f
  for b, lyr in enumerate(lyrics):
    assert generation.invalid_reason(out.notes[b], int(out.num_notes[b]), bool(out.stopped[b]),
                                     lyr.num_syllables, lyr.bar_ticks, tok, (36, 96)) is None


def test_cached_decoding_with_the_library_matches_the_full_pass():
  """The KV-cache decoder under 'xla_library' against the model's full pass (float32, 1e-5)."""
  test_decode.test_cached_decoding_matches_full_forward_pass(
      dataclasses.replace(test_decode.CFG, attention='xla_library'))
