"""Field conditioning: each note field's head sees the fields drawn before it.

Without it (``field_conditioning='none'``) every field of the next note is predicted from one
hidden state ``h`` and sampled independently: the position head never learns which bar was just
drawn, so "next bar" and "the previous note's end" can be drawn together -- a rest the song did
not ask for. With ``'chain'`` the fields are predicted in the sampling order :data:`CHAIN`
(word id, bar, position, duration, pitch) and field ``f``'s head reads

    h_f = h + Mlp_f(LayerNorm_f(h + sum_{g before f} E_g[x_g] + R[rel_bar]))
    logits_f = Head_f(h_f)

where ``x_g`` is field ``g`` of the note being predicted (the target row in training -- teacher
forcing -- and the value just sampled in decoding), ``E_g`` a table per conditioning field and
``R`` a small table of the bar step from the input row's note to the predicted one (0, 1, 2,
>= 3, or "unknown" when either is not a note, e.g. the first note of a span after its SEP).
The MLP makes the conditioning non-linear in ``h``: an additive embedding alone would only shift
each logit by a constant per drawn value (a bigram table), which cannot express "same bar as the
previous note, so start where it ended".
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from songglm_jax.data import tokenizer as tk
from songglm_jax.model import phrase_position, sharding
from songglm_jax.model.layers import DENSE_INIT, LayerNorm

CHAIN = ('word_id', 'bar', 'position', 'duration', 'pitch')
"""The order fields are predicted (and sampled) in; equals ``sampling.SAMPLE_ORDER``."""
REL_BAR_CLASSES = 5  # unknown, then bar step 0, 1, 2, >= 3
EMBED_INIT = jax.nn.initializers.normal(0.02)


def rel_bar(target_bar: jax.Array, input_bar: jax.Array) -> jax.Array:
  """Class of the bar step from the input row's note to the predicted note (int32, same shape):
  0 when either is not a real bar value, else ``1 + min(max(target - input, 0), 3)``."""
  real = (target_bar >= tk.NUM_SPECIAL) & (input_bar >= tk.NUM_SPECIAL)
  step = jnp.clip(target_bar - input_bar, 0, REL_BAR_CLASSES - 2)
  return jnp.where(real, 1 + step, 0).astype(jnp.int32)


def _take(table: nnx.Param, ids: jax.Array) -> jax.Array:
  # The whole (small) table, gathered once under FSDP (as the embedder does).
  return jnp.take(sharding.constrain(table[...], (None, None)), ids, axis=0)


class FieldChain(nnx.Module):
  """The conditioning of every field but the first (module docstring)."""

  def __init__(self, cfg, field_sizes: Mapping[str, int], order: tuple[str, ...], *,
               rngs: nnx.Rngs):
    """
    Args:
      cfg: the ModelConfig (d_model, chain_hidden, dtype, layer_norm_epsilon).
      field_sizes: vocabulary size per token field.
      order: the predicted fields in chain order (a sub-sequence of :data:`CHAIN`).
    """
    d = cfg.d_model
    hidden = int(cfg.chain_hidden) or d
    self.order = tuple(order)
    self.dtype = cfg.dtype
    table = lambda rows: sharding.param(rngs, EMBED_INIT, (rows, d), ('vocab', 'embed'))
    self.embed = nnx.Dict({g: table(int(field_sizes[g])) for g in self.order[:-1]})
    self.rel_bar = table(REL_BAR_CLASSES) if 'bar' in self.order[:-1] else None
    first_word = self.order[0] == 'word_id'
    self.phrase_end = (table(phrase_position.NUM_CLASSES)
                       if cfg.phrase_position and first_word else None)
    self.stress = (table(int(field_sizes['stress']))
                   if cfg.note_syllable_stress and first_word else None)
    later = self.order[1:]
    self.norm = nnx.Dict({f: LayerNorm(d, cfg.layer_norm_epsilon, cfg.dtype, rngs=rngs)
                          for f in later})
    self.wi = nnx.Dict({f: sharding.param(rngs, DENSE_INIT, (d, hidden), ('embed', 'mlp'))
                        for f in later})
    self.bi = nnx.Dict({f: sharding.param(rngs, jax.nn.initializers.zeros, (hidden,), ('mlp',))
                        for f in later})
    self.wo = nnx.Dict({f: sharding.param(rngs, DENSE_INIT, (hidden, d), ('mlp', 'embed'))
                        for f in later})
    self.bo = nnx.Dict({f: sharding.param(rngs, jax.nn.initializers.zeros, (d,), ('norm',))
                        for f in later})

  def __call__(self, h: jax.Array, field: str, given: Mapping[str, jax.Array],
               input_bar: Optional[jax.Array],
               syllable: Optional[Mapping[str, jax.Array]] = None) -> jax.Array:
    """``h_f`` [..., D] (``h``'s dtype) for ``field`` from ``h`` [..., D].

    Args:
      given: token ids [...] of (at least) every field before ``field`` in the chain.
      input_bar: bar token ids [...] of the input rows (for the relative bar), or None when
        the bar is not conditioned on.
      syllable: features [...] of the predicted note's syllable, known once its word id is
        drawn (``phrase_position.target_syllable``): 'end_class' with ``phrase_position``,
        'stress' with ``note_syllable_stress``.
    """
    i = self.order.index(field)
    if i == 0:
      return h
    z = h
    for g in self.order[:i]:
      z = z + _take(self.embed[g], given[g])
    if self.rel_bar is not None and 'bar' in self.order[:i]:
      z = z + _take(self.rel_bar, rel_bar(given['bar'], input_bar))
    if self.phrase_end is not None:
      z = z + _take(self.phrase_end, syllable['end_class'])
    if self.stress is not None:
      z = z + _take(self.stress, syllable['stress'])
    dt = self.dtype
    y = jax.nn.gelu(self.norm[field](z) @ self.wi[field][...].astype(dt)
                    + self.bi[field][...].astype(dt))
    y = y @ self.wo[field][...].astype(dt) + self.bo[field][...].astype(dt)
    return (h + y).astype(h.dtype)
