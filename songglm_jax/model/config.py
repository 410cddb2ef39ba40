"""The model's hyper-parameters, built from the ``config.model`` section.

Which token fields are embedded and which are predicted is fixed by the batch contract:
* input tables: every token field except ``word_id`` and ``phrase_id`` (:data:`INPUT_FIELDS`);
  the alignment ids enter only through the 2D alignment encoding (the batch's raw ``word_ids`` /
  ``phrase_ids``), so switching that encoding off really removes the information;
* output heads: :data:`TARGET_FIELDS` by default (no logits for lyric fields, type or phrase).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from songglm_jax.data import tokenizer

INPUT_FIELDS = tuple(f for f in tokenizer.FIELDS if f not in ('word_id', 'phrase_id'))
TARGET_FIELDS = ('bar', 'position', 'duration', 'pitch', 'word_id')
POSITION_ENCODINGS = ('glm2d', '1d', 'none')
EMBED_COMBINES = ('sum', 'concat')
FIELD_CONDITIONINGS = ('none', 'chain')
ATTENTIONS = ('auto', 'xla_library', 'explicit')
# Fields added after workdirs were first written: a config.json without them gets these values,
# which reproduce the model such a workdir was trained with.
LATER_FIELDS = {'field_conditioning': 'none', 'chain_hidden': 0, 'phrase_position': False,
                'note_syllable_stress': False, 'attention': 'auto', 'remat': False}
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Sizes and switches of the GLM (see :func:`ModelConfig.from_config` for the config keys).

  Attributes:
    d_model: width of the residual stream.
    num_layers: transformer blocks.
    num_heads: attention heads (``d_model`` must be a multiple).
    d_ff: hidden width of the GELU MLP.
    dropout_rate: dropout on the embedding sum and on both residual branches.
    max_len: rows of the position_id and block_position_id tables (>= sequence length).
    compute_dtype: 'float32', 'bfloat16', or 'auto' (bfloat16 on GPU/TPU, float32 on CPU,
      decided when the model is built); parameters stay float32, logits/loss are float32.
    embed_combine: 'sum' (one d_model table per field, summed) or 'concat' (``embed_field_dim``
      per field, concatenated, projected to d_model as the public SongGLM code does).
    embed_field_dim: per-field width for 'concat' (unused by 'sum').
    use_word_ids: 2D alignment encoding, first dimension (learned word_id table).
    use_phrase_ids: 2D alignment encoding, second dimension (learned phrase_id table).
    position_encoding: 'glm2d' (position_id + block_position_id tables), '1d' (position_id
      only: GLM without its second, intra-span dimension) or 'none'.
    num_word_ids: rows of the word_id table (raw ids 0..num_word_ids-1).
    num_phrase_ids: rows of the phrase_id table.
    layer_norm_epsilon: epsilon of every LayerNorm.
    target_fields: token fields that get an output head.
    field_conditioning: 'none' (every head reads the same hidden state; fields are sampled
      independently) or 'chain' (each note field's head also reads the fields before it in
      sampling order, ``model/chain.py``).
    chain_hidden: hidden width of the chain's per-field MLPs (0 = d_model).
    phrase_position: embed where each syllable (and a note's syllable) stands in its phrase
      (``model/phrase_position.py``); with the chain, the later fields also see it for the
      predicted note's syllable.
    note_syllable_stress: note rows embed their syllable's stress (the stress field, NA on notes
      in the data, is filled from the syllable's lyric row); with the chain, the later fields
      also see the predicted note's syllable's stress.
    attention: 'xla_library' (``jax.nn.dot_product_attention``), 'explicit' (written out in
      ``layers.attend``, faster on XLA:CPU) or 'auto' (the library on GPU/TPU, explicit on CPU,
      decided when traced); training and the KV-cache decoder both follow it.
    remat: recompute each transformer block's activations in the backward pass instead of
      keeping them (``jax.checkpoint`` around the scanned block): less memory, one more forward
      pass of the blocks per step.
  """
  d_model: int = 64
  num_layers: int = 2
  num_heads: int = 4
  d_ff: int = 128
  dropout_rate: float = 0.1
  max_len: int = 512
  compute_dtype: str = 'float32'
  embed_combine: str = 'sum'
  embed_field_dim: int = 32
  use_word_ids: bool = True
  use_phrase_ids: bool = True
  position_encoding: str = 'glm2d'
  num_word_ids: int = 256
  num_phrase_ids: int = 128
  layer_norm_epsilon: float = 1e-5
  target_fields: tuple[str, ...] = TARGET_FIELDS
  field_conditioning: str = 'none'
  chain_hidden: int = 0
  phrase_position: bool = False
  note_syllable_stress: bool = False
  attention: str = 'auto'
  remat: bool = False

  def __post_init__(self):
    def bad(field, expected):
      raise ValueError(f'config.model.{field}: got {getattr(self, field)!r}, expected {expected}')
    for f in ('d_model', 'num_layers', 'num_heads', 'd_ff', 'max_len', 'embed_field_dim',
              'num_word_ids', 'num_phrase_ids'):
      if int(getattr(self, f)) < 1:
        bad(f, 'a positive integer')
    if self.d_model % self.num_heads:
      bad('d_model', f'a multiple of num_heads={self.num_heads}')
    if not 0.0 <= self.dropout_rate < 1.0:
      bad('dropout_rate', 'in [0, 1)')
    if self.compute_dtype not in COMPUTE_DTYPES and self.compute_dtype != 'auto':
      bad('compute_dtype', f"one of {tuple(COMPUTE_DTYPES) + ('auto',)}")
    if self.embed_combine not in EMBED_COMBINES:
      bad('embed_combine', f'one of {EMBED_COMBINES}')
    if self.field_conditioning not in FIELD_CONDITIONINGS:
      bad('field_conditioning', f'one of {FIELD_CONDITIONINGS}')
    if self.attention not in ATTENTIONS:
      bad('attention', f'one of {ATTENTIONS}')
    if not isinstance(self.remat, bool):
      bad('remat', 'True or False')
    if int(self.chain_hidden) < 0:
      bad('chain_hidden', 'an integer >= 0 (0 = d_model)')
    if self.position_encoding not in POSITION_ENCODINGS:
      bad('position_encoding', f'one of {POSITION_ENCODINGS}')
    unknown = [f for f in self.target_fields if f not in tokenizer.FIELDS]
    if unknown or not self.target_fields or len(set(self.target_fields)) != len(
        self.target_fields):
      bad('target_fields', f'distinct names from {tokenizer.FIELDS}')

  @property
  def word_head(self) -> bool:
    """The model predicts each note's syllable (the alignment head); without it the decoder
    sings one note per syllable (``model/sampling.py``)."""
    return 'word_id' in self.target_fields

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads

  @property
  def dtype(self) -> Any:
    """The jnp compute dtype ('auto' resolved for the default JAX backend)."""
    if self.compute_dtype == 'auto':
      return jnp.float32 if jax.default_backend() == 'cpu' else jnp.bfloat16
    return COMPUTE_DTYPES[self.compute_dtype]

  @classmethod
  def from_config(cls, section: Mapping[str, Any]) -> 'ModelConfig':
    """From ``config.model``; every field must be present (``target_fields`` as 'a,b,c').

    Raises:
      ValueError: a field is missing or has a bad value.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in section and n not in LATER_FIELDS]
    if missing:
      raise ValueError(f'config.model: missing field(s) {missing}')
    kw = {n: section[n] if n in section else LATER_FIELDS[n] for n in names}
    tf = kw['target_fields']
    kw['target_fields'] = tuple(s.strip() for s in tf.split(',') if s.strip()) if isinstance(
        tf, str) else tuple(tf)
    return cls(**kw)

  def check_field_sizes(self, field_sizes: Mapping[str, int]) -> None:
    """Raise ValueError unless ``field_sizes`` covers every embedded and predicted field."""
    need = set(INPUT_FIELDS) | set(self.target_fields)
    missing = sorted(need - set(field_sizes))
    if missing:
      raise ValueError(f'field_sizes: missing {missing} (from Tokenizer(vocab).field_sizes)')
    small = {f: field_sizes[f] for f in need if field_sizes[f] <= tokenizer.NUM_SPECIAL}
    if small:
      raise ValueError(f'field_sizes: {small} must exceed the {tokenizer.NUM_SPECIAL} specials')
