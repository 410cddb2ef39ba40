"""The GLM in Flax NNX: embeddings, attention rule, heads, loss (never reads files)."""

from songglm_jax.model.config import INPUT_FIELDS, TARGET_FIELDS, ModelConfig
from songglm_jax.model.glm import GLM, Past
from songglm_jax.model.layers import AttnMeta, glm_mask

__all__ = ['GLM', 'ModelConfig', 'Past', 'AttnMeta', 'glm_mask', 'INPUT_FIELDS',
           'TARGET_FIELDS']
