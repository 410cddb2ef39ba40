"""Random GLM weights built from shapes, for tests and benchmarks that need a model but no
training: N(0, 0.02) matrices and embeddings, LayerNorm scales 1, biases 0. About 20x faster than
running the initialisers of a large model, and independent of the initialisers' RNG layout."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from songglm_jax.model.config import ModelConfig
from songglm_jax.model.glm import GLM


def random_params(cfg: ModelConfig, field_sizes: Mapping[str, int], seed: int = 0
                  ) -> tuple[nnx.GraphDef, Any]:
  """(graphdef, params nnx.State) of a GLM with random weights (module docstring)."""
  graphdef, state = nnx.split(nnx.eval_shape(lambda: GLM(cfg, dict(field_sizes),
                                                         rngs=nnx.Rngs(0))))
  rng = np.random.default_rng(seed)

  def fill(path, x):
    name = str(path[-2] if str(path[-1]).endswith('value') else path[-1])
    if 'scale' in name:
      return jnp.ones(x.shape, x.dtype)
    if 'bias' in name:
      return jnp.zeros(x.shape, x.dtype)
    return jnp.asarray(rng.normal(0.0, 0.02, x.shape).astype(x.dtype))
  return graphdef, jax.tree_util.tree_map_with_path(fill, state)
