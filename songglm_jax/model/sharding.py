"""Logical axis names on parameters and activations, and the hook that maps them to a mesh.

The model only names axes ('batch', 'length', 'embed', 'mlp', 'heads', ...). The table that maps
names to mesh axes lives in one place, ``train/mesh.py`` (from ``config.mesh.rules``); the train
step installs it with :func:`use_rules` while the step is traced. Outside that context (tests,
single-device use, decoding) :func:`constrain` does nothing.

Logical names used here:
  batch, length               activations' leading axes
  act_embed, act_mlp, act_heads   activations' feature axes
  embed                       d_model axis of parameters (FSDP shards it)
  mlp, heads, head_dim        MLP hidden and attention axes of parameters (tensor parallel)
  vocab, qkv, norm            table rows, the q/k/v axis, LayerNorm/bias vectors
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator, Optional

import jax
from flax import nnx

# names -> sharding (a jax.sharding.NamedSharding) or None for "no constraint".
_RULES: contextvars.ContextVar[Optional[Callable[[tuple], object]]] = contextvars.ContextVar(
    'songglm_logical_sharding', default=None)


@contextlib.contextmanager
def use_rules(to_sharding: Callable[[tuple], object]) -> Iterator[None]:
  """Within the block, :func:`constrain` applies ``to_sharding(logical_axes)``."""
  token = _RULES.set(to_sharding)
  try:
    yield
  finally:
    _RULES.reset(token)


def constrain(x: jax.Array, axes: tuple) -> jax.Array:
  """``x`` with a sharding constraint for its logical ``axes`` (one name or None per dim)."""
  to_sharding = _RULES.get()
  if to_sharding is None:
    return x
  if len(axes) != x.ndim:
    raise ValueError(f'constrain: {len(axes)} logical axes {axes} for an array of rank {x.ndim}')
  return jax.lax.with_sharding_constraint(x, to_sharding(axes))


def param(rngs: nnx.Rngs, init: Callable, shape: tuple, axes: tuple) -> nnx.Param:
  """A float32 parameter initialised by ``init(key, shape)`` and annotated with logical axes.

  The annotation is metadata only (``eager_sharding=False``): creating a model never needs a
  mesh; ``train/mesh.py`` turns the annotations into shardings for ``jax.jit(out_shardings=)``.
  """
  if len(axes) != len(shape):
    raise ValueError(f'param: logical axes {axes} do not match shape {shape}')
  return nnx.Param(init(rngs.params(), shape, jax.numpy.float32), out_sharding=tuple(axes),
                   eager_sharding=False)
