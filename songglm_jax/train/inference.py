"""Read-only loading of a trained model for generation and evaluation.

:func:`load_for_inference` restores the parameters of ``W/<stage>`` -- the best checkpoint
(``W/<stage>/best/<step>``, train/checkpoint.py) by default, else the newest
``W/<stage>/checkpoints/<step>`` or a given step -- onto the first local device, with read-only
Orbax managers (safe while another run trains), together with the run config and the tokenizer
the stage was trained with. :func:`read_tokenizer` and :func:`abstract_params` are shared with the
training loop and the warm start.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Optional

import jax
import ml_collections
from absl import logging as absl_logging
from flax import nnx

from songglm_jax.data import tokenizer as tokenizer_lib
from songglm_jax.model import GLM, ModelConfig
from songglm_jax.train import checkpoint as ckpt_lib

KINDS = ('best', 'latest')  # which checkpoint load_for_inference restores (or a step number)


def check_kind(which, where: str) -> str:
  """``which`` as load_for_inference takes it: 'best', 'latest' or a step number (digits).

  Raises:
    ValueError: anything else (naming ``where``, the flag or config field it came from).
  """
  text = str(which).strip()
  if text not in KINDS and not text.isdigit():
    raise ValueError(f'{where}: expected one of {KINDS} or a step number, got {which!r}')
  return text


@dataclasses.dataclass
class Inference:
  """A trained model, ready for ``nnx.merge(graphdef, params)``.

  Attributes:
    config: the resolved config of the run (``W/config.json``).
    model_cfg: the model's hyper-parameters, from the config the stage was trained with
      (``W/<stage>/config.json``, so a later edit of ``W/config.json`` cannot mismatch them).
    field_sizes: vocabulary size per token field (``tokenizer.field_sizes``).
    tokenizer: the tokenizer of the prepared dataset the model was trained on.
    graphdef: the GLM's graph definition.
    params: its parameters (nnx.State, float32, on the first local device).
    step: the checkpoint step the parameters come from.
    stage: 'pretrain' or 'finetune'.
    checkpoint: 'best' (``W/<stage>/best/<step>``, the lowest held-out loss) or 'latest' (the
      newest ``W/<stage>/checkpoints/<step>``).
    prompt_mask: the whole-melody cue of the run's fine-tuning layout
      (``config.pipeline.finetune_mask``; 'MASK' for runs that predate the field).
  """
  config: ml_collections.ConfigDict
  model_cfg: ModelConfig
  field_sizes: dict[str, int]
  tokenizer: tokenizer_lib.Tokenizer
  graphdef: nnx.GraphDef
  params: nnx.State
  step: int
  stage: str = ''
  checkpoint: str = 'latest'
  prompt_mask: str = 'MASK'

  def model(self) -> GLM:
    return nnx.merge(self.graphdef, self.params)


def read_config(path: pathlib.Path) -> ml_collections.ConfigDict:
  try:
    return ml_collections.ConfigDict(json.loads(path.read_text()))
  except (OSError, ValueError) as e:
    raise ValueError(f'{path}: cannot read the run config ({e})')


def read_tokenizer(path: pathlib.Path) -> tokenizer_lib.Tokenizer:
  try:
    text = path.read_text()
  except OSError as e:
    raise ValueError(f'{path}: cannot read the vocabulary ({e})')
  return tokenizer_lib.Tokenizer(tokenizer_lib.Vocab.from_json(text, where=str(path)))


def _has_checkpoint(stage_dir: pathlib.Path) -> bool:
  ck = stage_dir / 'checkpoints'
  return ck.is_dir() and any(p.name.isdigit() and p.is_dir() for p in ck.iterdir())


def abstract_params(model_cfg: ModelConfig, field_sizes: dict[str, int]) -> tuple[Any, Any]:
  """(graphdef, abstract nnx.State) of a GLM, without allocating parameters."""
  model = nnx.eval_shape(lambda: GLM(model_cfg, field_sizes, rngs=nnx.Rngs(0)))
  graphdef, params = nnx.split(model)
  return graphdef, params


def _restore_best(stage_dir: pathlib.Path, like: Any) -> Optional[tuple[int, Any]]:
  """(step, parameters) of ``W/<stage>/best/<step>`` named by ``best.json``; None when there is
  none or it does not restore (logged)."""
  record = ckpt_lib.read_best(stage_dir)
  if record is None:
    return None
  step = record['step']
  try:
    ckpt = ckpt_lib.Checkpoints(stage_dir / ckpt_lib.BEST_DIR, read_only=True,
                                items=ckpt_lib.BEST_ITEMS)
    try:
      if step not in ckpt.all_steps():
        raise ValueError(f'no complete step {step}')
      return step, ckpt.restore_params(step, like)
    finally:
      ckpt.close()
  except Exception as e:  # pylint: disable=broad-except  # any unusable best falls back
    absl_logging.warning('%s: the best checkpoint (step %d) does not restore (%s); using the '
                         'newest checkpoint', stage_dir / ckpt_lib.BEST_DIR, step, e)
    return None


def load_for_inference(workdir: str, stage: str | None = None, which: str = 'best') -> Inference:
  """A checkpoint of ``W/<stage>`` (default: 'finetune' if it has one, else 'pretrain'),
  restored read-only onto the first local device.

  Args:
    which: 'best': the step of the lowest held-out loss (``W/<stage>/best.json``) when the
      stage has one that restores, else the newest; 'latest': the newest; a step number
      ('200'): that step of ``W/<stage>/checkpoints`` (it must still be kept there).
      ``Inference.checkpoint`` says which was used ('best', 'latest' or 'step').

  Raises:
    ValueError: a bad ``which``, the workdir has no checkpoint (of that stage), or its files are
      unreadable; ``checkpoint.RestoreError`` when the chosen step does not restore (a file cut
      short: the message names the step folder and the kept steps).
  """
  which = check_kind(which, 'checkpoint')
  work = pathlib.Path(workdir)
  if stage is None:
    stage = next((s for s in ('finetune', 'pretrain') if _has_checkpoint(work / s)), None)
    if stage is None:
      raise ValueError(f'{work}: no checkpoint in {work / "finetune"} or {work / "pretrain"}; '
                       'train first (config.stages=pretrain,finetune)')
  stage_dir = work / stage
  if not _has_checkpoint(stage_dir):
    raise ValueError(f'{stage_dir / "checkpoints"}: no checkpoint; train the {stage} stage first')
  config = read_config(work / 'config.json')
  stage_config = read_config(stage_dir / 'config.json') if (
      stage_dir / 'config.json').is_file() else config
  model_cfg = ModelConfig.from_config(stage_config.model)
  tokenizer = read_tokenizer(stage_dir / 'vocab.json')
  sizes = tokenizer.field_sizes
  graphdef, params = abstract_params(model_cfg, sizes)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  like = ckpt_lib.abstract_like(params, jax.tree.map(lambda _: device, params))
  best = _restore_best(stage_dir, like) if which == 'best' else None
  if best is not None:
    (step, restored), kind = best, 'best'
  else:
    kind = 'step' if which.isdigit() else 'latest'
    ckpt = ckpt_lib.Checkpoints(stage_dir / 'checkpoints', read_only=True)
    try:
      step = ckpt.latest_step()
      if step is None:
        raise ValueError(f'{ckpt.directory}: no complete checkpoint')
      if kind == 'step':
        if int(which) not in ckpt.all_steps():
          raise ValueError(f'{ckpt.directory}: no checkpoint of step {which} (kept: '
                           f'{ckpt.all_steps()})')
        step = int(which)
      try:
        restored = ckpt.restore_params(step, like)
      except ckpt_lib.RestoreError as e:
        others = [s for s in ckpt.all_steps() if s != step]
        hint = (f'; to use another kept step: --checkpoint=<step> (one of {others})' if others
                else '')
        raise ckpt_lib.RestoreError(f'{e}{hint}') from None
    finally:
      ckpt.close()
  return Inference(config=config, model_cfg=model_cfg, field_sizes=dict(sizes),
                   tokenizer=tokenizer, graphdef=graphdef, params=restored, step=int(step),
                   stage=stage, checkpoint=kind,
                   prompt_mask=str(stage_config.get('pipeline', {}).get('finetune_mask', 'MASK')))
