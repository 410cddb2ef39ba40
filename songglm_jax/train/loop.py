"""The training stages ``pretrain`` and ``finetune``: data, state, steps, evaluation, checkpoints.

    W/<stage>/checkpoints/<step>/  Orbax: model, optimizer (+ step, rng), data iterator
    W/<stage>/best/<step>/, best.json  the parameters of the lowest held-out loss so far
    W/<stage>/metrics.jsonl        one record per logged step and per evaluation (logger.py)
    W/<stage>/events.out.tfevents* TensorBoard
    W/<stage>/config.json          the resolved config the stage started with
    W/<stage>/vocab.json           the vocabulary of the dataset it trains on

Data: ``pretrain`` reads ``W/data/pretrain`` with the multi-task objectives; ``finetune`` reads
``W/data/finetune`` when it was prepared (config.data.finetune_source) and ``W/data/pretrain``
otherwise, with the fine-tuning layout. Each process reads its own shard.

Resume: re-running the same command continues from the newest checkpoint (state and data
position), so on CPU every step's loss equals the uninterrupted run's; a finished stage is
skipped. The settings that shape the run (seed, data, pipeline, model, optim and the stage's
own steps/batch/rates) must be unchanged to resume -- W/<stage>/config.json is compared.

Best checkpoint: an evaluation whose loss is below every earlier one of the stage (best.json
keeps the record across a resume) saves the parameters alone as W/<stage>/best/<step>
(checkpoint.BestCheckpoint); generation loads it by default.

Step order (one step of host work overlaps the device): dispatch step s, then read the metrics
of step s-1; before an evaluation or a save at step s its metrics are read first, so a
non-finite loss at s stops the run before anything is written for s (its update was skipped by
the step; the newest checkpoint is the last good one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging as absl_logging
from flax import nnx
from jax.experimental import multihost_utils

from songglm_jax import atomic
from songglm_jax import config as config_lib
from songglm_jax.data import packing, pipeline, records
from songglm_jax.data import tokenizer as tok
from songglm_jax.model import GLM, ModelConfig
from songglm_jax.model import inputs as inputs_lib
from songglm_jax.train import checkpoint as ckpt_lib
from songglm_jax.train import inference as inference_lib
from songglm_jax.train import logger as logger_lib
from songglm_jax.train import optim
from songglm_jax.train import step as step_lib
from songglm_jax.train import warm_start
from songglm_jax.train.mesh import Plan

STAGES = ('pretrain', 'finetune')
# Fields of the stage section that may change between a run and its resumption.
_STAGE_FREE = ('checkpoint_every_steps', 'keep_checkpoints', 'log_every_steps',
               'eval_every_steps', 'eval_batches')
_IDENTITY = ('seed', 'data', 'pipeline', 'model', 'optim')  # sections that shape every stage
_FREE = ('data.workers', 'pipeline.read_threads', 'pipeline.worker_buffer',  # no effect on data
         'data.records_per_shard',  # file layout only: a split reads the same records in order
         'model.attention', 'model.remat')  # how, not what, the model computes (e.g. remat
                                            # switched on to resume on a smaller device)


class NonFiniteLoss(ValueError):
  """A train step produced a non-finite loss or gradient."""


def data_dir_for(workdir: pathlib.Path, stage: str) -> pathlib.Path:
  """The prepared dataset a stage trains on (module docstring)."""
  finetune = workdir / 'data' / 'finetune'
  if stage == 'finetune' and (finetune / 'report.json').is_file():
    return finetune
  return workdir / 'data' / 'pretrain'


def pipeline_options(config: ml_collections.ConfigDict, batch_size: int, seq_len: int = 0
                     ) -> pipeline.PipelineOptions:
  """``config.pipeline`` with the stage's batch size (the stage sections own batch_size) and,
  when given (> 0), the stage's packed row length."""
  section = ml_collections.ConfigDict(config.pipeline.to_dict())
  section.batch_size = int(batch_size)
  if int(seq_len) > 0:
    section.seq_len = int(seq_len)
  return pipeline.PipelineOptions.from_config(section, seed=int(config.seed))


def _flat(tree: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flat(v, f'{prefix}{k}.'))
    return out
  return {prefix[:-1]: tree}


def run_identity(config_dict: dict, stage: str) -> dict[str, Any]:
  """The config fields a resumed ``stage`` must share with the run that saved it."""
  flat = _flat(json.loads(json.dumps(config_dict)))
  keep = {}
  for key, value in flat.items():
    top, _, rest = key.partition('.')
    if key in _FREE or (top == stage and rest in _STAGE_FREE):
      continue
    if top in _IDENTITY or top == stage:
      keep[key] = value
  return keep


def _check_resume(stage_dir: pathlib.Path, config: ml_collections.ConfigDict, stage: str) -> None:
  path = stage_dir / 'config.json'
  if not path.is_file():
    return
  old = run_identity(json.loads(path.read_text()), stage)
  new = run_identity(json.loads(config.to_json()), stage)
  for key, value in config_lib.LATER_FIELDS.items():  # written before the field existed
    if key in new and key not in old:
      old[key] = value
  diff = [f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in sorted(set(old) | set(new))
          if old.get(k) != new.get(k)]
  if diff:
    raise ValueError(f'{stage_dir}: its checkpoints were made with another config ('
                     f'{"; ".join(diff[:4])}{"; ..." if len(diff) > 4 else ""}); use a new '
                     'workdir, or restore those settings to resume')


def check_stage_config(config: ml_collections.ConfigDict, stage: str) -> None:
  """The settings of training ``stage`` that need neither data nor devices: the optimizer's
  (finite, in range) and the accumulation. The main job checks every training stage it will
  run before the first stage starts.

  Raises:
    ValueError: the first bad setting, naming its config field.
  """
  section = config[stage]
  optim.OptimConfig.from_config(config.optim, section, stage)
  _check_accumulation(section, stage)
  stage_model_config(config, stage)


def stage_model_config(config: ml_collections.ConfigDict, stage: str) -> ModelConfig:
  """``config.model`` as training ``stage`` runs it: with the stage's own dropout rate when
  ``config.<stage>.dropout_rate`` is set (>= 0). Dropout only acts in training, so the model a
  stage saves is the same network whichever rate trained it."""
  model_cfg = ModelConfig.from_config(config.model)
  rate = float(config[stage].get('dropout_rate', -1.0))
  if rate == -1.0:
    return model_cfg
  if not 0.0 <= rate < 1.0:  # NaN fails here too
    raise ValueError(f'config.{stage}.dropout_rate={rate}: expected a number in [0, 1), or -1 '
                     'for config.model.dropout_rate')
  return dataclasses.replace(model_cfg, dropout_rate=rate)


def _check_accumulation(section, stage: str) -> None:
  b, k = int(section.batch_size), int(section.grad_accum_steps)
  if k >= 1 and b % k:
    raise ValueError(f'config.{stage}.grad_accum_steps={k} does not divide config.{stage}.'
                     f'batch_size={b}: the batch is summed over {k} micro-batches of equal size')


def _check_sizes(section, plan: Plan, opts: pipeline.PipelineOptions, model_cfg: ModelConfig,
                 stage: str) -> None:
  _check_accumulation(section, stage)
  b, k, p = int(section.batch_size), int(section.grad_accum_steps), jax.process_count()
  split = plan.mesh.shape['data'] * plan.mesh.shape['fsdp']
  if (b // k) % split or b % p or split % p:
    raise ValueError(f'config.{stage}.batch_size={b}: with grad_accum_steps={k} each '
                     f'micro-batch of {b // max(k, 1)} rows must split over mesh data x fsdp = '
                     f'{split} devices, and that split over the {p} process(es)')
  if opts.seq_len > model_cfg.max_len:
    raise ValueError(f'config.model.max_len={model_cfg.max_len} < the {stage} rows\' seq_len '
                     f'{opts.seq_len} (config.{stage}.seq_len, else config.pipeline.seq_len): '
                     'the position tables must cover a packed row')


def _abstract_state(model_fn, tx, plan: Plan):
  """(graphdef, TrainState of ShapeDtypeStructs with shardings, shardings): the shape of
  ``step_lib.create_train_state``'s result without computing it."""
  def init() -> step_lib.TrainState:
    _, params = nnx.split(model_fn(nnx.Rngs(params=0)))
    return step_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state=tx.init(params),
                               rng=jax.random.key_data(jax.random.key(0)))
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: model_fn(nnx.Rngs(params=0))))
  abstract = jax.eval_shape(init)
  plan.check_divisible(abstract)
  shardings = plan.tree_shardings(abstract)
  return graphdef, ckpt_lib.abstract_like(abstract, shardings), shardings


def _global(batch: dict[str, np.ndarray], sharding, batch_size: int) -> dict[str, jax.Array]:
  """This process's rows -> global arrays [batch_size, ...] laid out by ``sharding``."""
  return {k: jax.make_array_from_process_local_data(sharding, v, (batch_size,) + v.shape[1:])
          for k, v in batch.items()}


class Evaluator:
  """Held-out loss: the valid split read once (masks fixed), kept on the host, scored on demand.

  With several processes each holds its own slice; all run the same number of steps (shorter
  slices are padded with empty batches, which carry no loss weight).
  """

  def __init__(self, data_dir: pathlib.Path, opts: pipeline.PipelineOptions, use: str,
               graphdef, plan: Plan, param_shardings, max_batches: int):
    self._args = (data_dir, opts, use, max_batches)
    self._plan = plan
    self._step = step_lib.jit_eval_step(step_lib.make_eval_step(graphdef, plan=plan), plan,
                                        param_shardings)
    self._batches: Optional[list[dict[str, np.ndarray]]] = None
    self.note = ''

  def _load(self) -> list[dict[str, np.ndarray]]:
    data_dir, opts, use, max_batches = self._args
    count = sum(records.record_counts(records.split_files(data_dir, 'valid')))
    if count < jax.process_count():
      self.note = f'{count} held-out record(s) in {data_dir}: evaluation skipped'
      return []
    ds = pipeline.eval_pipeline(data_dir, opts, use=use, process_index=jax.process_index(),
                                process_count=jax.process_count())
    it = iter(ds)
    local = []
    try:
      for batch in it:
        local.append(batch)
        if max_batches and len(local) >= max_batches:
          break
    finally:
      getattr(it, 'close', lambda: None)()
    n = len(local)
    if jax.process_count() > 1:
      n = int(np.max(multihost_utils.process_allgather(np.int32(n))))
    rows = opts.batch_size // jax.process_count()
    local += [packing.empty_rows(rows, opts.seq_len, len(tok.FIELDS))] * (n - len(local))
    return local

  def __call__(self, params) -> Optional[dict[str, float]]:
    """Token-weighted means of the eval metrics over the held-out batches (None: no data)."""
    if self._batches is None:
      self._batches = self._load()
    if not self._batches:
      return None
    size = self._args[1].batch_size
    out = [self._step(params, _global(b, self._plan.batch_sharding(), size))
           for b in self._batches]
    sums: dict[str, float] = {}
    weight = 0.0
    for m in jax.device_get(out):
      w = float(m['target_tokens'])
      weight += w
      for k, v in m.items():
        if k.startswith(('loss', 'accuracy')):
          sums[k] = sums.get(k, 0.0) + float(v) * w
    res = {k: v / max(weight, 1.0) for k, v in sums.items()}
    res['target_tokens'] = weight
    return res


def run_stage(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
              stage: str) -> dict[str, Any]:
  """Train (or resume, or skip when finished) ``stage`` in ``workdir``; returns a summary.

  Raises:
    ValueError: bad config, missing data or pre-trained checkpoint, a resume under another
      config, or a non-finite loss (:class:`NonFiniteLoss`, the newest checkpoint is kept).
  """
  if stage not in STAGES:
    raise ValueError(f'train stage {stage!r}: expected one of {STAGES}')
  check_stage_config(config, stage)  # e.g. num_train_steps >= 1, before any folder is made
  work = pathlib.Path(workdir)
  stage_dir = work / stage
  section = config[stage]
  total = int(section.num_train_steps)
  primary = jax.process_index() == 0
  ckpt = ckpt_lib.Checkpoints(stage_dir / 'checkpoints', keep=int(section.keep_checkpoints))
  try:
    start = ckpt.latest_step() or 0
    if start:
      _check_resume(stage_dir, config, stage)
    if start >= total:
      if primary:
        print(f'[{stage}] already trained: checkpoint {ckpt.directory / str(start)}, kept')
      return {'stage': stage, 'step': start, 'skipped': True}
    return _train(config, work, stage, ckpt, start, primary)
  except NonFiniteLoss as e:
    ckpt.wait()
    last = ckpt.latest_step()
    kept = f'{ckpt.directory / str(last)}' if last is not None else 'none (no step was saved)'
    raise NonFiniteLoss(f'{e}; training stopped, last good checkpoint: {kept}. Lower '
                        f'config.{stage}.learning_rate or check the data, then re-run to resume')
  finally:
    ckpt.close()


def _all_processes(ok: bool) -> bool:
  """``ok`` on every process (collective: every process must call it)."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def _restore_newest(ckpt: ckpt_lib.Checkpoints, start: int, like: step_lib.TrainState,
                    it: Any) -> tuple[int, step_lib.TrainState]:
  """(step, state) of the newest saved step <= ``start`` that restores (the data iterator
  ``it`` moved to its position). Newer steps that do not restore (a file cut short, say) are
  set aside into ``checkpoints.corrupt/`` with a warning, not deleted -- but only once an
  older step has restored, so a failure that is not about the files leaves them all in place.

  Raises:
    ValueError: no step restores (naming the newest and why).
  """
  bad: list[tuple[int, ckpt_lib.RestoreError]] = []
  for step in sorted((s for s in ckpt.all_steps() if s <= start), reverse=True):
    try:
      state, error = ckpt.restore(step, like, it), None
    except ckpt_lib.RestoreError as e:
      state, error = None, e
    if not _all_processes(error is None):
      bad.append((step, error or ckpt_lib.RestoreError(
          f'{ckpt.directory / str(step)}: does not restore on another process')))
      absl_logging.warning('%s; trying the step before it', bad[-1][1])
      continue
    for old, _ in bad:
      moved = ckpt.set_aside(old)
      absl_logging.warning('resuming from step %d; step %d (does not restore) set aside as %s',
                           step, old, moved)
    return step, state
  if not bad:
    raise ValueError(f'{ckpt.directory}: no saved step <= {start}')
  raise ValueError(f'{bad[0][1]}; no older step restores either (tried '
                   f'{[s for s, _ in bad]}); nothing was moved. Move the damaged step folder '
                   'away to start again from an older one, or use a new workdir')


def _train(config, work: pathlib.Path, stage: str, ckpt: ckpt_lib.Checkpoints, start: int,
           primary: bool) -> dict[str, Any]:
  section = config[stage]
  stage_dir = work / stage
  total = int(section.num_train_steps)
  data_dir = data_dir_for(work, stage)
  if not (data_dir / 'report.json').is_file():
    raise ValueError(f'{data_dir}: no prepared dataset; run the prepare stage first '
                     "(config.stages=prepare,...)")
  tokenizer = inference_lib.read_tokenizer(data_dir / 'vocab.json')
  sizes = tokenizer.field_sizes
  model_cfg = stage_model_config(config, stage)
  opt_cfg = optim.OptimConfig.from_config(config.optim, section, stage)
  plan = Plan.from_config(config.mesh)
  opts = pipeline_options(config, section.batch_size, int(section.get('seq_len', 0)))
  _check_sizes(section, plan, opts, model_cfg, stage)
  if primary and not start:
    atomic.write_text(stage_dir / 'config.json', config.to_json(indent=1, sort_keys=True) + '\n')
    atomic.write_text(stage_dir / 'vocab.json', tokenizer.vocab.to_json())

  tx, schedule = optim.make_optimizer(opt_cfg)
  model_fn = lambda r: GLM(model_cfg, sizes, rngs=r)
  if start:  # no initialisation: the restore target needs only shapes and shardings
    graphdef, state, shardings = _abstract_state(model_fn, tx, plan)
  else:
    graphdef, state, shardings = step_lib.create_train_state(model_fn, tx, int(config.seed), plan)
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  make = pipeline.pretrain_pipeline if stage == 'pretrain' else pipeline.finetune_pipeline
  with contextlib.ExitStack() as closing:  # closed in reverse order on every exit path
    it = iter(make(data_dir, opts, process_index=jax.process_index(),
                   process_count=jax.process_count()))
    closing.callback(getattr(it, 'close', lambda: None))
    if start:
      start, state = _restore_newest(ckpt, start, state, it)
    best = None
    if section.eval_every_steps > 0:
      best = ckpt_lib.BestCheckpoint(stage_dir, start)
      closing.callback(best.close)
    log = logger_lib.MetricsLog(stage_dir, stage, start, primary)
    closing.callback(log.close)
    if start:
      origin = f'resumed from {ckpt.directory / str(start)}'
    elif stage == 'finetune' and section.init_from != 'none':
      params, source = warm_start.load_pretrained(section.init_from, work, model_cfg,
                                                  tokenizer.vocab, state.params, plan)
      state = state.replace(params=params)
      origin = f'initialised from {source}'
    else:
      origin = 'initialised at random'
    log.say(f'{n_params / 1e6:.2f}M parameters, {origin}; data {data_dir}; mesh '
            f'{dict(plan.mesh.shape)} over {jax.process_count()} process(es); steps '
            f'{start + 1}..{total} of {section.batch_size} x {opts.seq_len}')
    train_step = step_lib.jit_train_step(step_lib.make_train_step(
        graphdef, tx, schedule, grad_accum_steps=int(section.grad_accum_steps), plan=plan),
        plan, shardings)
    evaluator = Evaluator(data_dir, opts, stage, graphdef, plan, shardings.params,
                          int(section.eval_batches)) if section.eval_every_steps > 0 else None
    return _steps(config, stage, state, it, train_step, evaluator, ckpt, best, log, plan, start,
                  model_cfg, sizes)


def _steps(config, stage, state, it, train_step, evaluator, ckpt, best, log, plan, start,
           model_cfg, sizes) -> dict[str, Any]:
  section = config[stage]
  total = int(section.num_train_steps)
  size = int(section.batch_size)
  every = lambda n, s: n > 0 and s % n == 0
  fields = model_cfg.target_fields
  t_start = t_window = time.perf_counter()
  window = {'tokens': 0.0, 'steps': 0}
  summary: dict[str, Any] = {'stage': stage, 'first_step': start + 1}

  def finish(step: int, metrics) -> None:
    m = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not m.pop('finite'):
      log.say(f'step {step}: non-finite loss {m["loss"]} (grad norm {m["grad_norm"]})')
      raise NonFiniteLoss(f'non-finite loss at step {step} (loss {m["loss"]}, grad norm '
                          f'{m["grad_norm"]}); its update was not applied')
    nonlocal t_window
    window['tokens'] += m['tokens']
    window['steps'] += 1
    summary.setdefault('first_loss', m['loss'])
    summary['last_loss'] = m['loss']
    if not (every(section.log_every_steps, step) or step in (start + 1, total)):
      return
    now = time.perf_counter()
    m['tokens_per_s'] = window['tokens'] / max(now - t_window, 1e-9)
    eta = (total - step) * (now - t_window) / max(window['steps'], 1)
    log.write(step, m, 'train')
    extra = ' (includes compilation)' if step == start + 1 else f', eta {logger_lib.duration_text(eta)}'
    log.say(f'step {step}/{total} loss {m["loss"]:.4f} ({logger_lib.field_text(m, fields)}) '
            f'lr {m["learning_rate"]:.2e} {m["tokens_per_s"]:,.0f} tok/s{extra}')
    t_window, window['tokens'], window['steps'] = now, 0.0, 0

  pending = None
  for step in range(start + 1, total + 1):
    local = next(it)
    if step == start + 1:
      inputs_lib.check_batch(local, model_cfg, sizes)
    state, metrics = train_step(state, _global(local, plan.batch_sharding(), size))
    if best is not None:
      best.settle()  # a best saved at the previous step: its wait overlaps this step
    if pending is not None:
      finish(*pending)
    pending = (step, metrics)
    do_eval = evaluator is not None and (every(section.eval_every_steps, step) or step == total)
    do_save = every(section.checkpoint_every_steps, step) or step == total
    if do_eval or do_save:
      finish(*pending)
      pending = None
    if do_eval:
      ev = evaluator(state.params)
      if ev is not None:
        new_best = best is not None and best.offer(step, state.params, ev['loss'])
        log.write(step, {f'eval_{k}': v for k, v in ev.items()}, 'eval')
        log.say(f'eval @ {step}: loss {ev["loss"]:.4f} ({logger_lib.field_text(ev, fields)}) '
                f'accuracy ({logger_lib.field_text(ev, fields, "accuracy_")})'
                f'{", best so far" if new_best else ""}')
        summary['eval_loss'] = ev['loss']
      elif evaluator.note:
        log.say(evaluator.note)
        evaluator.note = ''
    if do_save:
      ckpt.save(step, state, it)
      log.flush()
  if pending is not None:
    finish(*pending)
  ckpt.wait()
  seconds = time.perf_counter() - t_start
  summary.update(step=total, seconds=seconds, checkpoint=str(ckpt.directory / str(total)))
  ev = f'; eval loss {summary["eval_loss"]:.4f}' if 'eval_loss' in summary else ''
  if best is not None and best.step is not None:
    best.settle()
    summary.update(best_step=best.step, best_eval_loss=best.eval_loss)
    ev += f' (best {best.eval_loss:.4f} at step {best.step})'
  log.say(f'done: steps {start + 1}..{total} in {logger_lib.duration_text(seconds)}; loss '
          f'{summary.get("first_loss", float("nan")):.4f} -> '
          f'{summary.get("last_loss", float("nan")):.4f}{ev}; checkpoint {summary["checkpoint"]}')
  return summary
