"""The batch the model takes (batch contract) and a host-side check of it."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from songglm_jax.data import tokenizer
from songglm_jax.model.config import INPUT_FIELDS, ModelConfig

# name -> (dtype kind, extra trailing dims)
BATCH_SPEC = {
    'tokens': ('i', 1), 'targets': ('i', 1), 'loss_mask': ('f', 0), 'position_ids': ('i', 0),
    'block_position_ids': ('i', 0), 'word_ids': ('i', 0), 'phrase_ids': ('i', 0),
    'is_part_a': ('b', 0), 'segment_ids': ('i', 0)}
MODEL_INPUTS = ('tokens', 'position_ids', 'block_position_ids', 'word_ids', 'phrase_ids',
                'is_part_a', 'segment_ids')


def check_batch(batch: Mapping[str, np.ndarray], cfg: ModelConfig,
                field_sizes: Mapping[str, int]) -> None:
  """Raise ValueError when ``batch`` breaks the contract in a way the model would not notice.

  Checks names, ranks, dtypes, shapes [B, L] / [B, L, F], and that every id fits its table.
  Meant for the first batch of a run and for tests (it reads the arrays on the host).
  """
  missing = [k for k in BATCH_SPEC if k not in batch]
  if missing:
    raise ValueError(f'batch: missing {missing}')
  b, l = np.shape(batch['segment_ids'])
  for name, (kind, extra) in BATCH_SPEC.items():
    a = np.asarray(batch[name])
    want = (b, l, len(tokenizer.FIELDS)) if extra else (b, l)
    if a.shape != want:
      raise ValueError(f'batch.{name}: shape {a.shape}, expected {want}')
    if a.dtype.kind != kind and not (kind == 'i' and a.dtype.kind == 'u'):
      raise ValueError(f'batch.{name}: dtype {a.dtype}, expected kind {kind!r}')
  if l > cfg.max_len:
    raise ValueError(f'batch: length {l} > config.model.max_len {cfg.max_len}')
  limits = {('tokens', f): field_sizes[f] for f in INPUT_FIELDS}
  limits.update({('targets', f): field_sizes[f] for f in cfg.target_fields})
  for (name, field), size in limits.items():
    col = np.asarray(batch[name])[..., tokenizer.FIELDS.index(field)]
    if col.min() < 0 or col.max() >= size:
      raise ValueError(f'batch.{name}[{field}]: ids in [{col.min()}, {col.max()}], '
                       f'expected [0, {size})')
  for name, size in (('word_ids', cfg.num_word_ids), ('phrase_ids', cfg.num_phrase_ids),
                     ('position_ids', cfg.max_len), ('block_position_ids', cfg.max_len)):
    a = np.asarray(batch[name])
    if a.min() < 0 or a.max() >= size:
      raise ValueError(f'batch.{name}: ids in [{a.min()}, {a.max()}], expected [0, {size})')
