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

from songglm_jax.data import tokenizer as tk
from songglm_jax.model import phrase_position, sharding
from songglm_jax.model.chain import CHAIN, FieldChain
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
    order = tuple(f for f in CHAIN if f in cfg.target_fields)
    chained = cfg.field_conditioning == 'chain'
    if chained and len(order) != len(cfg.target_fields):
      raise ValueError(f'config.model.field_conditioning=chain: target_fields must be among '
                       f'{CHAIN}, got {cfg.target_fields}')
    self.chain = FieldChain(cfg, field_sizes, order, rngs=rngs) if chained else None

  def field_logits(self, h: jax.Array, field: str,
                   given: Optional[Mapping[str, jax.Array]] = None,
                   input_bar: Optional[jax.Array] = None,
                   syllable: Optional[Mapping[str, jax.Array]] = None) -> jax.Array:
    """Logits float32 [..., V] of one field from final hidden states ``h`` [..., D].

    With ``field_conditioning='chain'``, ``given`` holds the token ids [...] of the fields
    before ``field`` in ``chain.CHAIN`` order (of the note being predicted), ``input_bar``
    the bar ids [...] of the input rows and ``syllable`` the features of the predicted note's
    syllable (``phrase_position.target_syllable``); all are ignored otherwise.
    """
    if self.chain is not None:
      h = self.chain(h, field, given or {}, input_bar, syllable)
    return self.heads[field](h)

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

    With ``field_conditioning='chain'`` the later fields' logits are conditioned on
    ``inputs['targets']`` (teacher forcing); without targets only the first field of the chain
    gets logits (a decoder draws it, then asks :meth:`field_logits` for the next).
    """
    h, present = self.encode(inputs, meta=meta, past=past, dropout_key=dropout_key)
    if self.chain is None:
      return {f: head(h) for f, head in self.heads.items()}, present
    if 'targets' not in inputs:
      first = self.chain.order[0]
      return {first: self.heads[first](h)}, present
    given = {f: inputs['targets'][..., getattr(tk.F, f)] for f in self.chain.order}
    input_bar = inputs['tokens'][..., tk.F.bar]
    syllable = phrase_position.target_syllable(
        inputs, end_class=self.cfg.phrase_position, stress=self.cfg.note_syllable_stress)
    return {f: self.field_logits(h, f, given, input_bar, syllable)
            for f in self.heads}, present

  def encode(self, inputs: Mapping[str, jax.Array], *, meta: Optional[AttnMeta] = None,
             past: Optional[Past] = None, dropout_key: Optional[jax.Array] = None
             ) -> tuple[jax.Array, KV]:
    """Final hidden states [B, T, D] in the compute dtype (after the last LayerNorm) of T tokens that may
    follow cached ones, and their keys/values; arguments as :meth:`forward`."""
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

    if self.cfg.remat:  # keep only each block's input; recompute the rest in the backward pass
      layer = jax.checkpoint(layer, prevent_cse=False)
    x, present = jax.lax.scan(layer, x, (stacked, layer_keys,
                                         None if past is None else past.kv))
    return self.ln_final(x), present
