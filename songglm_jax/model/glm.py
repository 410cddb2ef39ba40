"""The GLM: embeddings, pre-LayerNorm transformer under the GLM attention rule, one output head
per predicted field.

Training and evaluation call the model on whole batch-contract rows::

    logits = model(batch, dropout_key=key)        # {field: float32 [B, L, V_field]}

The blocks are one stacked module (parameters [num_layers, ...], logical axis 'layers') applied
with ``jax.lax.scan``: compile time and the optimizer's leaf count do not grow with depth.

A KV-cache decoder uses :meth:`GLM.forward` on chunks: the first call encodes Part A (and
returns every layer's keys/values), later calls pass them back as ``past`` together with the
:class:`~songglm_jax.model.layers.AttnMeta` of the cached tokens and get logits for the new
tokens only. ``forward(chunk 2, past=forward(chunk 1))`` equals the full pass on the new positions
(tested), so a decoder adds cache bookkeeping (e.g. fixed-size buffers whose unused slots have
segment id 0, hence masked) around it without touching the layers.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from songglm_jax.model import sharding
from songglm_jax.model.config import ModelConfig
from songglm_jax.model.embed import Embedder
from songglm_jax.model.layers import DENSE_INIT, AttnMeta, Block, LayerNorm, dropout, glm_mask

KV = tuple[jax.Array, jax.Array]  # keys, values [num_layers, B, S, H, K]


class Past(NamedTuple):
  """Cached keys/values of earlier tokens (stacked over layers) and their attention meta."""
  kv: KV
  meta: AttnMeta


class Head(nnx.Module):
  """Logits of one field: h [B, T, D] -> float32 [B, T, V]."""

  def __init__(self, d: int, vocab: int, dtype, *, rngs: nnx.Rngs):
    self.kernel = sharding.param(rngs, DENSE_INIT, (d, vocab), ('embed', 'vocab'))
    self.bias = sharding.param(rngs, jax.nn.initializers.zeros, (vocab,), ('vocab',))
    self.dtype = dtype

  def __call__(self, h: jax.Array) -> jax.Array:
    y = h @ self.kernel[...].astype(self.dtype) + self.bias[...].astype(self.dtype)
    return sharding.constrain(y.astype(jnp.float32), ('batch', 'length', 'vocab'))


class GLM(nnx.Module):
  """SongGLM's transformer over compound tokens (see module docstring)."""

  def __init__(self, cfg: ModelConfig, field_sizes: Mapping[str, int], *, rngs: nnx.Rngs):
    """
    Args:
      cfg: sizes and switches.
      field_sizes: vocabulary size per token field, ``Tokenizer(vocab).field_sizes``.
      rngs: parameter initialisation (the model keeps no RNG state: dropout keys are passed in).
    """
    cfg.check_field_sizes(field_sizes)
    self.cfg = cfg
    self.embed = Embedder(cfg, field_sizes, rngs=rngs)

    @nnx.split_rngs(splits=cfg.num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: 'layers'})
    def stacked_blocks(r: nnx.Rngs) -> Block:
      return Block(cfg, rngs=r)

    self.blocks = stacked_blocks(rngs)
    self.ln_final = LayerNorm(cfg.d_model, cfg.layer_norm_epsilon, cfg.dtype, rngs=rngs)
    self.heads = nnx.Dict({f: Head(cfg.d_model, int(field_sizes[f]), cfg.dtype, rngs=rngs)
                           for f in cfg.target_fields})

  def __call__(self, inputs: Mapping[str, jax.Array], *,
               dropout_key: Optional[jax.Array] = None) -> dict[str, jax.Array]:
    """Logits {field: float32 [B, L, V_field]} of whole batch-contract rows.

    Args:
      inputs: at least tokens [B, L, F], position_ids, block_position_ids, word_ids,
        phrase_ids, is_part_a, segment_ids (all [B, L]).
      dropout_key: a PRNG key for training; None evaluates deterministically.
    """
    logits, _ = self.forward(inputs, dropout_key=dropout_key)
    return logits

  def forward(self, inputs: Mapping[str, jax.Array], *, meta: Optional[AttnMeta] = None,
              past: Optional[Past] = None, dropout_key: Optional[jax.Array] = None
              ) -> tuple[dict[str, jax.Array], KV]:
    """Logits of T tokens that may follow cached ones, and their keys/values.

    Args:
      inputs: tokens [B, T, F] and position_ids, block_position_ids, word_ids, phrase_ids
        [B, T] (segment_ids and is_part_a too when ``meta`` is None).
      meta: the attention meta of these tokens; default: ``AttnMeta.of_batch(inputs)``.
      past: keys/values of earlier tokens (None: these tokens are the whole context).
      dropout_key: PRNG key, or None for no dropout.

    Returns:
      ({field: float32 [B, T, V_field]}, (keys, values) [num_layers, B, T, H, K]).
    """
    meta = AttnMeta.of_batch(inputs) if meta is None else meta
    keys_meta = meta if past is None else AttnMeta(
        *(jnp.concatenate([p, m], axis=1) for p, m in zip(past.meta, meta)))
    mask = glm_mask(meta, keys_meta)
    embed_key = layer_keys = None
    if dropout_key is not None:
      embed_key, layer_key = jax.random.split(dropout_key)
      layer_keys = jax.random.split(layer_key, self.cfg.num_layers)
    x = dropout(self.embed(inputs), self.cfg.dropout_rate, embed_key)
    graphdef, stacked = nnx.split(self.blocks)

    def layer(x, xs):
      params, key, past_kv = xs
      return nnx.merge(graphdef, params)(x, mask, past=past_kv, dropout_key=key)

    x, present = jax.lax.scan(layer, x, (stacked, layer_keys,
                                         None if past is None else past.kv))
    h = self.ln_final(x)
    return {f: head(h) for f, head in self.heads.items()}, present
