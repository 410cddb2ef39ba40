"""Per-field cross-entropy and accuracy on the scored positions (``loss_mask``).

Loss = mean over predicted fields of the cross-entropy averaged over scored positions. All fields
share ``loss_mask``, so sums and one count are enough to combine micro-batches, devices or eval
batches exactly: ``loss_f = ce_sum_f / count``.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import optax

from songglm_jax.data import tokenizer


def field_sums(logits: Mapping[str, jax.Array], targets: jax.Array, loss_mask: jax.Array
               ) -> dict[str, dict[str, jax.Array]]:
  """Summed cross-entropy (nats) and correct-argmax counts per field over scored positions.

  Args:
    logits: {field: float32 [B, L, V_field]}.
    targets: int32 [B, L, F] rows to predict (batch contract).
    loss_mask: float32 [B, L], 1 where the target is scored.

  Returns:
    {'ce': {field: float32 []}, 'correct': {field: float32 []}}.
  """
  mask = loss_mask.astype(jnp.float32)
  ce, correct = {}, {}
  for field, lg in logits.items():
    t = targets[..., tokenizer.FIELDS.index(field)]
    ce[field] = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(lg, t) * mask)
    correct[field] = jnp.sum((jnp.argmax(lg, axis=-1) == t) * mask)
  return {'ce': ce, 'correct': correct}


def total_loss(ce: Mapping[str, jax.Array], count: jax.Array) -> jax.Array:
  """Mean over fields of ``ce_sum_f / count`` (count clipped at 1 so an empty batch gives 0)."""
  return sum(ce.values()) / (len(ce) * jnp.maximum(count, 1.0))


def summarize(ce: Mapping[str, jax.Array], correct: Mapping[str, jax.Array], count: jax.Array
              ) -> dict[str, jax.Array]:
  """Flat metrics: 'loss', 'loss_<field>', 'accuracy_<field>' (means over scored positions)."""
  n = jnp.maximum(count, 1.0)
  out = {'loss': total_loss(ce, count)}
  out.update({f'loss_{f}': v / n for f, v in ce.items()})
  out.update({f'accuracy_{f}': v / n for f, v in correct.items()})
  return out
