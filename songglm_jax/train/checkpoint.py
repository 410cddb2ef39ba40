"""Checkpoints of a training stage (Orbax) and its best checkpoint; loading them read-only for
generation and evaluation is train/inference.py.

Layout of ``W/<stage>/checkpoints/<step>/`` -- one Orbax step, three items::

    model/       the parameters (nnx.State of nnx.Param, float32)
    optimizer/   {'opt_state', 'step', 'rng'}: the rest of the TrainState
    data/        the Grain iterator state, one JSON per process (process_<i>-of-<n>.json)

The model is an item of its own so that ``generate`` and ``evaluate`` restore it alone with a
read-only manager (``inference.load_for_inference``); Orbax cannot restore part of one item.

Atomicity: Orbax writes a step into ``<step>.orbax-checkpoint-tmp-<t>`` and renames it to
``<step>`` only when every item (of every process) is written, so a crash leaves at worst a
temporary folder, which the next run deletes; old steps are first renamed into ``.trash/`` and
then deleted, so a crash during the clean-up never leaves a half-deleted step that looks whole.
Saves are asynchronous: ``save`` returns once the arrays are copied off the devices (so the train
step may donate them) and the files are written in the background; ``close`` waits for them.

Resume order (``train/loop.py``): build the pipeline iterator and the sharded state, then
``restore(latest_step, state, iterator)`` puts the saved arrays onto the state's shardings (any
mesh) and moves the iterator to the saved position. A step that does not restore (a file cut
short) raises :class:`RestoreError`; the loop then resumes from the newest older step that does
and moves the bad one aside (:meth:`Checkpoints.set_aside`, into ``checkpoints.corrupt/``).

Beside them, the parameters with the lowest held-out loss so far (:class:`BestCheckpoint`)::

    W/<stage>/best/<step>/model/   Orbax, the parameters alone (one step kept)
    W/<stage>/best.json            {"step": N, "eval_loss": x}, written once best/<N> is final

``inference.load_for_inference`` loads the best step (default) or the newest one.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging as py_logging
import math
import os
import pathlib
import re
import shutil
import sys
import warnings
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from songglm_jax import atomic
from songglm_jax.train.step import TrainState

ITEMS = ('model', 'optimizer', 'data')
BEST_ITEMS = ('model',)  # W/<stage>/best/<step>/: the parameters alone
BEST_DIR, BEST_JSON = 'best', 'best.json'
TRASH = '.trash'
CORRUPT_SUFFIX = '.corrupt'  # W/<stage>/checkpoints.corrupt/<step>: steps that do not restore
STAGE_FILES = ('config.json', 'vocab.json')  # written by the loop beside checkpoints/


class RestoreError(ValueError):
  """A saved step that does not restore: a file of it cut short or damaged, or a target (model,
  optimizer) that does not match what was saved."""


def _innermost_error(e: BaseException) -> BaseException:
  """The exception at the bottom of ``e``'s chain (Orbax wraps TensorStore's read error)."""
  seen = {id(e)}
  while True:
    inner = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    if inner is None or id(inner) in seen:
      return e
    seen.add(id(inner))
    e = inner


def _innermost(e: BaseException) -> str:
  """The first line of :func:`_innermost_error`."""
  inner = _innermost_error(e)
  lines = str(inner).strip().splitlines()
  return lines[0] if lines else type(inner).__name__


def _bad_json(folder: pathlib.Path) -> Optional[str]:
  """'<file>: not valid JSON (...)' for the first JSON metadata file of a step that does not
  parse (None: all parse)."""
  for path in sorted(folder.rglob('*')):
    if not path.is_file() or not (path.name.startswith('_') and 'METADATA' in path.name or
                                  path.parent.name == 'array_metadatas' or
                                  path.suffix == '.json'):
      continue
    try:
      json.loads(path.read_bytes())
    except ValueError as e:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
      return f'{path}: not valid JSON ({e})'
  return None


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


def barrier_prefix(directory: pathlib.Path) -> str:
  """The key prefix of the cross-process barriers of the manager of ``directory``.

  Orbax names a save's barriers after the step folder alone (``async_write_complete.6...``),
  so two managers saving the same step at once (``checkpoints/6`` and ``best/6`` after an
  evaluation) would share their barriers, and one process could finalise a save that another
  process has not finished writing. The prefix is the same in every process (the folder's
  last two names, not its absolute path, which may differ between hosts).
  """
  return re.sub(r'[^A-Za-z0-9_]', '_', f'{directory.parent.name}_{directory.name}')


class Checkpoints:
  """The Orbax manager of one ``checkpoints`` folder (module docstring).

  Every process of a multi-process run must make the same calls (saves are collective).
  """

  def __init__(self, directory: str | pathlib.Path, *, keep: Optional[int] = 3,
               read_only: bool = False, items: tuple[str, ...] = ITEMS):
    """
    Args:
      directory: the checkpoints folder (created unless ``read_only``).
      keep: newest steps kept; older ones are deleted after each save (None: every step is
        kept until :meth:`delete`).
      read_only: never write, delete or clean up (for loading while another run trains).
      items: the items of a step (:data:`ITEMS`; :data:`BEST_ITEMS` for a parameters-only
        folder).
    """
    self.directory = pathlib.Path(directory).absolute()
    self._read_only = read_only
    if read_only and not self.directory.is_dir():
      raise ValueError(f'{self.directory}: no checkpoints folder')
    if not read_only and keep is not None and keep < 1:
      raise ValueError(f'keep_checkpoints: expected >= 1, got {keep}')
    with _quiet_absl(read_only):  # Orbax warns that a read-only manager is read-only
      options = ocp.CheckpointManagerOptions(
          max_to_keep=None if read_only else keep, read_only=read_only, create=not read_only,
          cleanup_tmp_directories=not read_only, todelete_subdir=None if read_only else TRASH,
          enable_async_checkpointing=not read_only,
          multiprocessing_options=ocp.options.MultiprocessingOptions(
              barrier_sync_key_prefix=barrier_prefix(self.directory)))
      self._manager = ocp.CheckpointManager(self.directory, item_names=items, options=options)
    # Orbax removes unfinished steps in a background thread that close() does not wait for:
    # one still running when the program exits (after an early error) prints a traceback.
    getattr(self._manager, '_maybe_await_cleanup_tmp_directory', lambda: None)()
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

  def save_params(self, step: int, params: Any) -> None:
    """Save the ``model`` item alone (a :data:`BEST_ITEMS` folder) as ``step``; asynchronous
    like :meth:`save`, and a step already on disk is left alone."""
    if self._read_only:
      raise ValueError(f'{self.directory}: opened read-only')
    if step in self._manager.all_steps():
      return
    self._empty_trash()
    self._manager.save(step, args=ocp.args.Composite(model=ocp.args.StandardSave(params)))

  def delete(self, step: int) -> None:
    """Delete ``step`` (renamed into ``.trash/`` first, so it never looks whole half-deleted)."""
    if self._read_only:
      raise ValueError(f'{self.directory}: opened read-only')
    self._manager.delete(step)
    self._empty_trash()

  def restore(self, step: int, like: TrainState, iterator: Any = None) -> TrainState:
    """The state saved at ``step``, placed like ``like`` (its shapes, dtypes and shardings).

    ``iterator`` (optional) is moved to the saved data position in place.

    Raises:
      RestoreError: the step does not restore (naming its folder and the innermost error).
    """
    target = abstract(like)
    args = dict(model=ocp.args.StandardRestore(target.params),
                optimizer=ocp.args.StandardRestore(_optimizer_item(target)))
    if iterator is not None:
      import grain  # pylint: disable=g-import-not-at-top
      args['data'] = grain.checkpoint.CheckpointRestore(iterator)
    out = self._restore(step, args)
    opt = out['optimizer']
    return TrainState(step=opt['step'], params=out['model'], opt_state=opt['opt_state'],
                      rng=opt['rng'])

  def restore_params(self, step: int, like: Any) -> Any:
    """The ``model`` item alone, placed like ``like`` (arrays or ShapeDtypeStructs).

    Raises:
      RestoreError: as :meth:`restore`.
    """
    target = abstract(like)
    return self._restore(step, {'model': ocp.args.StandardRestore(target)})['model']

  def _restore(self, step: int, args: dict[str, Any]) -> Any:
    _quiet_orbax_leftovers()
    try:
      return self._manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as e:  # pylint: disable=broad-except  # Orbax raises a bare Exception
      gc.collect()  # the dropped read coroutines, while the hook keeps them quiet
      folder = self.directory / str(step)
      why = _bad_json(folder) if isinstance(_innermost_error(e), json.JSONDecodeError) else None
      raise RestoreError(f'{folder}: does not restore ({why or _innermost(e)})') from e

  def set_aside(self, step: int) -> pathlib.Path:
    """Move ``step`` out of the folder, into ``<folder>.corrupt/<step>`` (``<step>.1``, ... when
    taken), where it is kept for inspection but never restored; returns its new path."""
    if self._read_only:
      raise ValueError(f'{self.directory}: opened read-only')
    self._manager.wait_until_finished()
    aside = self.directory.with_name(self.directory.name + CORRUPT_SUFFIX)
    dest, n = aside / str(step), 0
    while dest.exists():
      n += 1
      dest = aside / f'{step}.{n}'
    if jax.process_index() == 0:
      aside.mkdir(parents=True, exist_ok=True)
      (self.directory / str(step)).rename(dest)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f'set aside step {step}')
    self._manager.reload()
    return dest

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


def _late_read(value: Optional[BaseException], tb: Any) -> bool:
  """A read finishing after its restore gave up: TensorStore calls back into the event loop that
  Orbax has closed by then, from its own thread."""
  if not isinstance(value, RuntimeError) or str(value) != 'Event loop is closed':
    return False
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  return tb is not None and tb.tb_frame.f_code.co_filename.endswith(
      os.path.join('asyncio', 'base_events.py'))


def _dropped_read(unraisable: Any) -> bool:
  """An unraisable error left by a restore that failed (see :func:`_quiet_orbax_leftovers`)."""
  code = getattr(unraisable.object, 'cr_code', None)
  if code is not None and f'{os.sep}orbax{os.sep}' in code.co_filename:
    return True  # a sibling read coroutine, dropped unfinished and now collected
  return _late_read(unraisable.exc_value, unraisable.exc_traceback)


# Orbax's read of one array (orbax/checkpoint/_src/serialization/serialization.py), as Python
# names it when such a coroutine is collected without having run.
UNAWAITED_ORBAX_READ = r"coroutine '_read_array_index_and_device_put' was never awaited"


class _NoUnretrievedOrbaxTasks(py_logging.Filter):
  """Drops asyncio's "Task exception was never retrieved" and "Future exception was never
  retrieved" for Orbax's reads: the message names the task's coroutine and the file it is
  defined in (a task), or the failed read's error, which names the OCDBT database or TensorStore
  (a future). Self-contained (no module globals), as it may run while the interpreter shuts
  down."""

  def filter(self, record: py_logging.LogRecord,
             marks=(f'{os.sep}orbax{os.sep}', 'OCDBT', 'TensorStore', 'tensorstore')) -> bool:
    try:
      msg = str(record.msg)
      if not msg.startswith(('Task exception was never retrieved',
                             'Future exception was never retrieved')):
        return True
      error = record.exc_info[1] if record.exc_info else None
      text = f'{msg}\n{error!r}'
      return not any(m in text for m in marks)
    except Exception:  # pylint: disable=broad-except  # never let a filter raise
      return True


def _quiet_orbax_leftovers() -> None:
  """Keep the other failed reads of a restore that fails from printing tracebacks (installed
  before the first restore; a restore that succeeds leaves none of these).

  Orbax reads the arrays of a step in parallel; when one read fails, the restore gives up at
  once, and the reads it leaves behind print tracebacks around the one-line error, at random:
  each failed sibling coroutine when it is collected ("Exception ignored in <coroutine ...>"),
  each read still in flight when it finishes and calls back into the closed event loop ("Event
  loop is closed"), and asyncio's "Task/Future exception was never retrieved" for failed tasks
  and futures. Their error is the one raised as :class:`RestoreError`, so these three kinds are
  dropped; any other error is printed as before. A fourth: a read coroutine that the failed
  restore created but never started is collected with Python's "RuntimeWarning: coroutine
  '_read_array_index_and_device_put' was never awaited"; that warning, for that Orbax
  coroutine only, is ignored.
  """
  if getattr(sys.unraisablehook, '_quiet_orbax', False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    if not _dropped_read(unraisable):
      previous(unraisable)

  hook._quiet_orbax = True  # pylint: disable=protected-access
  sys.unraisablehook = hook
  py_logging.getLogger('asyncio').addFilter(_NoUnretrievedOrbaxTasks())
  warnings.filterwarnings('ignore', message=UNAWAITED_ORBAX_READ, category=RuntimeWarning)


def _optimizer_item(state: TrainState) -> dict[str, Any]:
  return {'opt_state': state.opt_state, 'step': state.step, 'rng': state.rng}


# ---- the best held-out loss of a stage -------------------------------------------------------

def read_best(stage_dir: str | pathlib.Path) -> Optional[dict[str, Any]]:
  """``W/<stage>/best.json`` as ``{'step': int, 'eval_loss': float}``; None when it is absent,
  unreadable or not a positive step with a finite loss."""
  path = pathlib.Path(stage_dir) / BEST_JSON
  if not path.is_file():
    return None
  try:
    record = json.loads(path.read_text())
    step, loss = int(record['step']), float(record['eval_loss'])
  except (OSError, ValueError, TypeError, KeyError) as e:
    absl_logging.warning('%s: unreadable (%s); ignored', path, e)
    return None
  if step < 1 or not math.isfinite(loss):
    return None
  return {'step': step, 'eval_loss': loss}


class BestCheckpoint:
  """The parameters with the lowest held-out loss of a training stage so far (module docstring).

  Order of writes: :meth:`offer` saves ``best/<N>`` (asynchronously); :meth:`settle` (the loop
  calls it one train step later, and :meth:`close` on every exit) waits until Orbax has
  finalised it, then process 0 points ``best.json`` at N, and only then are the older steps
  deleted. So ``best.json`` never names an unfinished or deleted step; a crash in between
  leaves an extra step, deleted at the next start.

  Resume: the record is kept when its step is at most ``start`` (the step training resumes
  from) and its folder exists; otherwise (a record from steps that are re-run, a missing folder,
  an unreadable ``best.json``) the stage starts without a best. Every process of a
  multi-process run must make the same calls (saves are collective).

  Attributes:
    step: the step of the best held-out loss so far (None: none yet).
    eval_loss: that loss (token-weighted mean cross-entropy, nats; inf: none yet).
  """

  def __init__(self, stage_dir: str | pathlib.Path, start: int):
    """
    Args:
      stage_dir: ``W/<stage>``.
      start: the step training resumes from (0: a fresh start, so any earlier best is stale).
    """
    self.stage_dir = pathlib.Path(stage_dir)
    self.path = self.stage_dir / BEST_JSON
    self.step: Optional[int] = None
    self.eval_loss: float = math.inf
    self._pending: Optional[tuple[int, float]] = None
    folder = self.stage_dir / BEST_DIR
    self._ckpt: Optional[Checkpoints] = None
    try:
      if folder.exists() and not folder.is_dir():
        raise ValueError('not a folder')
      self._ckpt = Checkpoints(folder, keep=None, items=BEST_ITEMS)
      self._resume(start)
    except Exception as e:  # pylint: disable=broad-except  # a broken best never stops training
      absl_logging.warning('%s: unusable (%s); started afresh', folder, e)
      if self._ckpt is not None:
        with contextlib.suppress(Exception):
          self._ckpt.close()
      self.step, self.eval_loss = None, math.inf
      if jax.process_index() == 0:
        self.path.unlink(missing_ok=True)
        if folder.is_dir():
          shutil.rmtree(folder)
        else:
          folder.unlink(missing_ok=True)
      if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
        multihost_utils.sync_global_devices('best checkpoint reset')
      self._ckpt = Checkpoints(folder, keep=None, items=BEST_ITEMS)

  def _resume(self, start: int) -> None:
    """Adopt ``best.json`` when it names a saved step <= ``start``; delete every other step."""
    record = read_best(self.stage_dir)
    steps = self._ckpt.all_steps()
    if record is not None and (record['step'] > start or record['step'] not in steps):
      why = 'not saved' if record['step'] <= start else f'past step {start}, where training resumes'
      absl_logging.warning('%s: step %d is %s; the stage has no best checkpoint yet', self.path,
                           record['step'], why)
      record = None
    if record is not None:
      self.step, self.eval_loss = record['step'], record['eval_loss']
    elif jax.process_index() == 0:
      self.path.unlink(missing_ok=True)  # before the steps it may name are deleted
    for step in steps:
      if step != self.step:
        self._ckpt.delete(step)

  def offer(self, step: int, params: Any, eval_loss: float) -> bool:
    """Save ``params`` (of ``step``) when ``eval_loss`` is below every earlier one; returns
    whether it did. Returns once the arrays are off the devices."""
    if not eval_loss < self.eval_loss:  # also False for NaN
      return False
    self.settle()
    self._ckpt.save_params(step, params)
    self._pending = (int(step), float(eval_loss))
    self.step, self.eval_loss = int(step), float(eval_loss)
    return True

  def settle(self) -> None:
    """Wait for the pending save, point ``best.json`` at it, delete the older steps (no-op
    without a pending save)."""
    if self._pending is None:
      return
    step, loss = self._pending
    self._ckpt.wait()  # raises if the save failed: best.json then keeps its old step
    self._pending = None
    if jax.process_index() == 0:
      atomic.write_json(self.path, {'step': step, 'eval_loss': loss})
    for old in self._ckpt.all_steps():
      if old != step:
        self._ckpt.delete(old)

  def close(self) -> None:
    """:meth:`settle`, then close the manager (also when settling fails)."""
    try:
      self.settle()
    finally:
      self._ckpt.close()
