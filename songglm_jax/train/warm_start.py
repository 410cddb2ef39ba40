"""Fine-tuning from pre-trained parameters (``config.finetune.init_from``).

The pre-trained model may have been trained with another vocabulary: the fine-tuning corpus is
prepared separately and fits its own syllable and stress vocabularies. Parameters are copied
unchanged except the open-vocabulary input tables (``embed.fields.syllable``,
``embed.fields.stress`` and, with ``model.note_syllable_stress`` and the field chain,
``chain.stress``), whose rows are re-indexed by string: a syllable (stress pattern) the
pre-trained vocabulary knows keeps its learned row, an unknown one starts from the pre-trained
UNK row; the special rows are kept. Every other parameter must have the same shape (same
``config.model``), else a ValueError names it.

The optimizer state is fresh (moments zero, schedule from step 0): fine-tuning is a new run.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from songglm_jax.data import tokenizer as tok
from songglm_jax.model import ModelConfig
from songglm_jax.train import checkpoint as ckpt_lib
from songglm_jax.train import inference as inference_lib
from songglm_jax.train.mesh import Plan

REMAPPED = {('embed', 'fields', 'syllable'): 'syllables', ('embed', 'fields', 'stress'): 'stress',
            ('chain', 'stress'): 'stress'}  # (model.note_syllable_stress with the chain)


def resolve_source(init_from: str, workdir: pathlib.Path) -> tuple[pathlib.Path, int]:
  """(checkpoints folder, step) that ``init_from`` names.

  Accepted: '' (W/pretrain of this workdir), another workdir (its pretrain stage, else its
  finetune stage), a stage folder, its ``checkpoints`` folder (newest step) or one step folder.

  Raises:
    ValueError: nothing there holds a complete checkpoint.
  """
  path = pathlib.Path(init_from) if init_from else workdir / 'pretrain'
  candidates = [path / 'pretrain' / 'checkpoints', path / 'finetune' / 'checkpoints',
                path / 'checkpoints', path]
  for folder in candidates:
    if folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir()):
      ck = ckpt_lib.Checkpoints(folder, read_only=True)
      step = ck.latest_step()
      ck.close()
      if step is not None:
        return folder, step
  if path.name.isdigit() and path.parent.is_dir():  # one step folder
    ck = ckpt_lib.Checkpoints(path.parent, read_only=True)
    steps = ck.all_steps()
    ck.close()
    if int(path.name) in steps:
      return path.parent, int(path.name)
  where = 'config.finetune.init_from' + (f'={init_from!r}' if init_from else " (default: the "
                                         "pretrain stage of this workdir)")
  raise ValueError(f'{where}: no complete checkpoint under {path}; run the pretrain stage first '
                   "or set init_from='none' to fine-tune from scratch")


def _row_index(src: tuple[str, ...], dst: tuple[str, ...]) -> np.ndarray:
  """Row of the source table for each row of the destination table (specials kept)."""
  pos = {s: i for i, s in enumerate(src)}
  rows = [pos.get(s, tok.UNK - tok.NUM_SPECIAL) + tok.NUM_SPECIAL for s in dst]
  return np.concatenate([np.arange(tok.NUM_SPECIAL), np.asarray(rows, np.int64)])


def load_pretrained(init_from: str, workdir: pathlib.Path, model_cfg: ModelConfig,
                    vocab: tok.Vocab, like: Any, plan: Plan) -> tuple[Any, str]:
  """Pre-trained parameters re-indexed to ``vocab`` and placed like ``like`` (the fresh params).

  Returns:
    (params, a one-line description of the source for the console).
  """
  folder, step = resolve_source(init_from, workdir)
  src_tok = inference_lib.read_tokenizer(folder.parent / 'vocab.json')
  _, src_abstract = inference_lib.abstract_params(model_cfg, src_tok.field_sizes)
  src_like = ckpt_lib.abstract_like(src_abstract, plan.tree_shardings(src_abstract))
  ck = ckpt_lib.Checkpoints(folder, read_only=True)
  try:
    src = ck.restore_params(step, src_like)
  except (ValueError, KeyError) as e:  # RestoreError: damaged, or another model
    raise ValueError(f'config.finetune.init_from: the pre-trained parameters do not restore '
                     f'({e}); is that checkpoint complete, and made with this config.model?'
                     ) from None
  finally:
    ck.close()
  src_flat = dict(jax.tree_util.tree_flatten_with_path(src)[0])
  dst_flat, treedef = jax.tree_util.tree_flatten_with_path(like)
  out, changed = [], []
  for path, dst in dst_flat:
    name = tuple(getattr(k, 'key', getattr(k, 'name', k)) for k in path)
    x = src_flat.get(path)
    if x is None:
      raise ValueError(f'init_from {folder}/{step}: no parameter {jax.tree_util.keystr(path)}')
    field = next((v for k, v in REMAPPED.items() if name[:len(k)] == k), None)
    if field is not None and getattr(src_tok.vocab, field) != getattr(vocab, field):
      index = jnp.asarray(_row_index(getattr(src_tok.vocab, field), getattr(vocab, field)))
      x = jax.jit(lambda t, i: jnp.take(t, i, axis=0), out_shardings=dst.sharding)(x, index)
      changed.append(field)
    if x.shape != dst.shape:
      raise ValueError(f'init_from {folder}/{step}: {jax.tree_util.keystr(path)} has shape '
                       f'{x.shape}, config.model needs {dst.shape}')
    out.append(x)
  params = jax.tree_util.tree_unflatten(treedef, out)
  note = f'{folder}/{step}' + (f' (rows of {", ".join(changed)} re-indexed to this vocabulary)'
                               if changed else '')
  return params, note
