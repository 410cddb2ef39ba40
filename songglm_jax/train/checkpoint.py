"""Checkpoints of a training stage (Orbax) and the read-only loader for generation/evaluation.

Layout of ``W/<stage>/checkpoints/<step>/`` -- one Orbax step, three items::

    model/       the parameters (nnx.State of nnx.Param, float32)
    optimizer/   {'opt_state', 'step', 'rng'}: the rest of the TrainState
    data/        the Grain iterator state, one JSON per process (process_<i>-of-<n>.json)

The model is an item of its own so that ``generate`` and ``evaluate`` restore it alone with a
read-only manager (:func:`load_for_inference`); Orbax cannot restore part of one item.

Atomicity: Orbax writes a step into ``<step>.orbax-checkpoint-tmp-<t>`` and renames it to
``<step>`` only when every item (of every process) is written, so a crash leaves at worst a
temporary folder, which the next run deletes; old steps are first renamed into ``.trash/`` and
then deleted, so a crash during the clean-up never leaves a half-deleted step that looks whole.
Saves are asynchronous: ``save`` returns once the arrays are copied off the devices (so the train
step may donate them) and the files are written in the background; ``close`` waits for them.

Resume order (``train/loop.py``): build the pipeline iterator and the sharded state, then
``restore(latest_step, state, iterator)`` puts the saved arrays onto the state's shardings (any
mesh) and moves the iterator to the saved position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging as py_logging
import pathlib
import shutil
from typing import Any, Optional

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from flax import nnx

from songglm_jax.data import tokenizer as tokenizer_lib
from songglm_jax.model import GLM, ModelConfig
from songglm_jax.train.step import TrainState

ITEMS = ('model', 'optimizer', 'data')
TRASH = '.trash'
STAGE_FILES = ('config.json', 'vocab.json')  # written by the loop beside checkpoints/


def abstract(tree: Any) -> Any:
  """ShapeDtypeStructs (with the arrays' shardings) of a pytree of arrays: a restore target."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None)),
      tree)


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of ``tree`` (arrays or ShapeDtypeStructs) placed by ``shardings`` (a
  pytree of the same structure)."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree,
                      shardings)


@contextlib.contextmanager
def _quiet_absl(quiet: bool):
  """absl records below ERROR dropped inside the block (when ``quiet``)."""
  if not quiet:
    yield
    return
  logger = absl_logging.get_absl_logger()
  level = logger.level
  logger.setLevel(py_logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


class Checkpoints:
  """The Orbax manager of one ``checkpoints`` folder (module docstring).

  Every process of a multi-process run must make the same calls (saves are collective).
  """

  def __init__(self, directory: str | pathlib.Path, *, keep: int = 3, read_only: bool = False):
    """
    Args:
      directory: the checkpoints folder (created unless ``read_only``).
      keep: newest steps kept; older ones are deleted after each save.
      read_only: never write, delete or clean up (for loading while another run trains).
    """
    self.directory = pathlib.Path(directory).absolute()
    self._read_only = read_only
    if read_only and not self.directory.is_dir():
      raise ValueError(f'{self.directory}: no checkpoints folder')
    if not read_only and keep < 1:
      raise ValueError(f'keep_checkpoints: expected >= 1, got {keep}')
    with _quiet_absl(read_only):  # Orbax warns that a read-only manager is read-only
      options = ocp.CheckpointManagerOptions(
          max_to_keep=None if read_only else keep, read_only=read_only, create=not read_only,
          cleanup_tmp_directories=not read_only, todelete_subdir=None if read_only else TRASH,
          enable_async_checkpointing=not read_only)
      self._manager = ocp.CheckpointManager(self.directory, item_names=ITEMS, options=options)
    self._empty_trash()

  def latest_step(self) -> Optional[int]:
    """The newest complete step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: TrainState, iterator: Any) -> None:
    """Save ``state`` and the data ``iterator`` (positioned after ``step`` batches) as ``step``.

    Returns as soon as the arrays are off the devices; a step already on disk is left alone.
    """
    if self._read_only:
      raise ValueError(f'{self.directory}: opened read-only')
    if step in self._manager.all_steps():
      return
    import grain  # pylint: disable=g-import-not-at-top
    self._empty_trash()
    self._manager.save(step, args=ocp.args.Composite(
        model=ocp.args.StandardSave(state.params),
        optimizer=ocp.args.StandardSave(_optimizer_item(state)),
        data=grain.checkpoint.CheckpointSave(iterator)))

  def restore(self, step: int, like: TrainState, iterator: Any = None) -> TrainState:
    """The state saved at ``step``, placed like ``like`` (its shapes, dtypes and shardings).

    ``iterator`` (optional) is moved to the saved data position in place.
    """
    target = abstract(like)
    args = dict(model=ocp.args.StandardRestore(target.params),
                optimizer=ocp.args.StandardRestore(_optimizer_item(target)))
    if iterator is not None:
      import grain  # pylint: disable=g-import-not-at-top
      args['data'] = grain.checkpoint.CheckpointRestore(iterator)
    out = self._manager.restore(step, args=ocp.args.Composite(**args))
    opt = out['optimizer']
    return TrainState(step=opt['step'], params=out['model'], opt_state=opt['opt_state'],
                      rng=opt['rng'])

  def restore_params(self, step: int, like: Any) -> Any:
    """The ``model`` item alone, placed like ``like`` (arrays or ShapeDtypeStructs)."""
    target = abstract(like)
    out = self._manager.restore(step, args=ocp.args.Composite(
        model=ocp.args.StandardRestore(target)))
    return out['model']

  def wait(self) -> None:
    """Block until every started save is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
    self._empty_trash()

  def _empty_trash(self) -> None:
    trash = self.directory / TRASH
    if self._read_only or jax.process_index() != 0 or not trash.is_dir():
      return
    for entry in trash.iterdir():
      shutil.rmtree(entry, ignore_errors=True)


def _optimizer_item(state: TrainState) -> dict[str, Any]:
  return {'opt_state': state.opt_state, 'step': state.step, 'rng': state.rng}


# ---- read-only loading for generation and evaluation ----------------------------------------

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
  """
  config: ml_collections.ConfigDict
  model_cfg: ModelConfig
  field_sizes: dict[str, int]
  tokenizer: tokenizer_lib.Tokenizer
  graphdef: nnx.GraphDef
  params: nnx.State
  step: int
  stage: str = ''

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


def load_for_inference(workdir: str, stage: str | None = None) -> Inference:
  """The newest checkpoint of ``W/<stage>`` (default: 'finetune' if it has one, else
  'pretrain'), restored read-only onto the first local device.

  Raises:
    ValueError: the workdir has no checkpoint (of that stage), or its files are unreadable.
  """
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
  like = abstract_like(params, jax.tree.map(lambda _: device, params))
  ckpt = Checkpoints(stage_dir / 'checkpoints', read_only=True)
  try:
    step = ckpt.latest_step()
    if step is None:
      raise ValueError(f'{ckpt.directory}: no complete checkpoint')
    restored = ckpt.restore_params(step, like)
  finally:
    ckpt.close()
  return Inference(config=config, model_cfg=model_cfg, field_sizes=dict(sizes),
                   tokenizer=tokenizer, graphdef=graphdef, params=restored, step=int(step),
                   stage=stage)
