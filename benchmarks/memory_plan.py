"""Memory and sharding plan of the paper's sizes: bytes per device of a pre-training step, and
which accelerators they fit, computed on a CPU without allocating.

    .venv/bin/python benchmarks/memory_plan.py [--models paper_small,paper_base]
        [--batches 64,96,128,256,512]

For ``configs/paper_small.py`` and ``configs/paper_base.py`` at their row length (768), on
meshes of 1, 8 and 64 devices with the configs' mesh (every device on fsdp: the batch is split
over all devices, parameters and Adam moments are sharded on their d_model axis), the real train
step (``train/step.py``: AdamW, dropout 0.1, attention 'xla_library' as 'auto' picks on GPU/TPU)
is lowered for 64 forced CPU devices and compiled ahead of time, with and without
``model.remat``; nothing is allocated. Per device:

* parameters, optimizer state (Adam moments and count) and gradients: exact, from the shapes and
  shardings (float32; gradients have the parameters' shardings);
* activations and other temporaries: XLA's buffer assignment of the compiled step
  (``memory_analysis().temp_size_in_bytes``) minus the gradients (which live in that space).
  Each mesh is compiled at the fewest and the most rows per device of the requested batches
  (one device: 64 and 512 rows); batches in between are interpolated linearly. Temporary memory
  is close to linear in the rows, slightly concave (the per-row increment falls by 1-12% from
  4-8 to 8-16 rows), and flat while the optimizer update, not the activations, sets the peak
  (remat, few rows), so interpolation errs on the high side.

Float32 compute, as an upper bound for bfloat16: XLA:CPU has no bfloat16 matrix units and
converts bfloat16 matmul operands to float32, so a bfloat16 step compiled for the CPU needs
*more* temporary memory than the float32 one (885 vs 784 MB at one row of paper_small), which
a GPU or TPU would not. A bfloat16 run on an accelerator keeps the activations that feed and
leave matmuls in half the bytes (the residual stream, LayerNorm statistics, softmax and logits
stay float32). GPU/TPU compilers also fuse differently: only a run on the device proves a fit
(README).

A setting fits a device when its total is at most 90% of the device's memory (headroom for the
runtime and fragmentation; on GPUs set ``XLA_PYTHON_CLIENT_MEM_FRACTION=0.9``, since JAX
pre-allocates 75% by default). ``max rows`` is the largest micro-batch (rows per device) that
fits, counting one more gradient buffer for ``grad_accum_steps`` > 1: a global batch B on n
devices runs with ``grad_accum_steps = ceil(B / n / max_rows)``.

Projected throughput -- a projection, not a measurement: model FLOPs per token (counted as
``train_bench.py`` does: 3 x forward matmul FLOPs) against each device's dense bfloat16 peak at
an assumed 40% MFU. Remat recomputes the blocks' forward pass (about 4/3 of the FLOPs), so the
projection with remat is 3/4 of it.

Compile-time settings that change the machine code, not the buffer assignment: LLVM
optimisation off and XLA:CPU's MLIR fusion emitters off (temp sizes within 0.2% of the default
compiler's; compile ~5x faster). Each model compiles in its own process (the two run in
parallel): about a minute on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import json
import math
import os
import subprocess
import sys
import time

DEVICES = 64
_flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
          if not f.startswith('--xla_force_host_platform_device_count')]
os.environ['XLA_FLAGS'] = ' '.join(_flags + [
    f'--xla_force_host_platform_device_count={DEVICES}', '--xla_backend_optimization_level=0',
    '--xla_llvm_disable_expensive_passes=true', '--xla_cpu_use_fusion_emitters=false'])

import common  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import train_bench  # pylint: disable=g-import-not-at-top,wrong-import-position
from flax import nnx  # pylint: disable=g-import-not-at-top,wrong-import-position

from songglm_jax.data import tokenizer as tk  # pylint: disable=wrong-import-position
from songglm_jax.model import GLM, ModelConfig  # pylint: disable=wrong-import-position
from songglm_jax.train import mesh as mesh_lib  # pylint: disable=wrong-import-position
from songglm_jax.train import optim  # pylint: disable=wrong-import-position
from songglm_jax.train import step as step_lib  # pylint: disable=wrong-import-position

GIB = 2 ** 30
MESHES = (1, 8, 64)
HEADROOM = 0.9  # usable share of a device's memory
# name -> (memory GiB, dense bfloat16 peak TFLOP/s per device)
DEVICE_SPECS = {'A100 40GB': (40, 312), 'A100 80GB': (80, 312),
                'TPU 16GB (v5e chip)': (16, 197), 'TPU 32GB (v4 chip)': (32, 275)}
MFU = 0.40


def load_config(name: str):
  """``configs/<name>.py``'s config."""
  return importlib.import_module(f'configs.{name}').get_config()


def model_config(config, remat: bool) -> ModelConfig:
  return ModelConfig.from_config({**config.model.to_dict(), 'compute_dtype': 'float32',
                                  'attention': 'xla_library', 'remat': remat})


def _bytes_per_device(abstract, shardings) -> int:
  return sum(math.prod(s.shard_shape(a.shape)) * a.dtype.itemsize
             for a, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings)))


def _abstract_batch(rows: int, length: int) -> dict:
  sd = jax.ShapeDtypeStruct
  batch = {k: sd((rows, length, len(tk.FIELDS)), jnp.int32) for k in ('tokens', 'targets')}
  for k in ('position_ids', 'block_position_ids', 'word_ids', 'phrase_ids', 'segment_ids'):
    batch[k] = sd((rows, length), jnp.int32)
  batch['is_part_a'] = sd((rows, length), jnp.bool_)
  batch['loss_mask'] = sd((rows, length), jnp.float32)
  return batch


def lower(config, remat: bool, devices: int, rows: int):
  """(the train step lowered for ``rows`` per device on ``devices``, exact bytes per device of
  params, optimizer state and batch)."""
  cfg = model_config(config, remat)
  tx, schedule = optim.make_optimizer(
      optim.OptimConfig.from_config(config.optim, config.pretrain, 'pretrain'))
  model_fn = lambda r: GLM(cfg, train_bench.SIZES, rngs=r)
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: model_fn(nnx.Rngs(params=0))))

  def init():
    _, params = nnx.split(model_fn(nnx.Rngs(params=jax.random.key(0))))
    return step_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state=tx.init(params),
                               rng=jax.random.key_data(jax.random.key(1)))

  abstract = jax.eval_shape(init)
  plan = mesh_lib.Plan(mesh_lib.make_mesh(mesh_lib.MeshConfig.from_config(config.mesh),
                                          jax.devices()[:devices]), config.mesh.rules)
  plan.check_divisible(abstract)
  shardings = plan.tree_shardings(abstract)
  step = step_lib.jit_train_step(step_lib.make_train_step(graphdef, tx, schedule, plan=plan),
                                 plan, shardings)
  batch = _abstract_batch(rows * devices, int(config.pipeline.seq_len))
  sizes = {'params': _bytes_per_device(abstract.params, shardings.params),
           'opt_state': _bytes_per_device(abstract.opt_state, shardings.opt_state),
           'batch': sum(math.prod(b.shape) * b.dtype.itemsize for b in batch.values())
                    // devices}
  return step.lower(abstract, batch), sizes


def measure(name: str, points) -> list[dict]:
  """Memory figures of the train step of ``configs/<name>.py`` at every (remat, devices, rows)
  of ``points``: lowered here, compiled in a second thread meanwhile."""
  config = load_config(name)
  jobs = []
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    for remat, devices, rows in points:
      lowered, sizes = lower(config, remat, devices, rows)
      jobs.append((pool.submit(lowered.compile), dict(sizes, remat=remat, devices=devices,
                                                      rows=rows)))
    out = []
    for fut, info in jobs:
      m = fut.result().memory_analysis()
      out.append(dict(info, temp=m.temp_size_in_bytes,
                      extra_output=m.output_size_in_bytes - m.alias_size_in_bytes))
  return out


def _row_span(devices: int, batches) -> tuple[int, int]:
  rows = [b // devices for b in batches if b % devices == 0]
  return min(rows), max(rows)


def measure_all(models, batches) -> dict:
  """{model: [figures]}: one process per model (module docstring), run in parallel."""
  procs = {}
  for name in models:
    points = [(remat, n, r) for remat in (False, True) for n in MESHES
              for r in sorted(set(_row_span(n, batches)))]
    procs[name] = subprocess.Popen(
        [sys.executable, __file__, '--measure', name, '--points', json.dumps(points)],
        stdout=subprocess.PIPE, text=True)
  out = {}
  for name, proc in procs.items():
    stdout, _ = proc.communicate()
    if proc.returncode:
      raise RuntimeError(f'memory_plan: measuring {name} failed (exit {proc.returncode})')
    out[name] = json.loads(stdout.strip().splitlines()[-1])
  return out


class Fit:
  """Per-device figures of one (model, mesh, remat) setting at any rows per device."""

  def __init__(self, points: list[dict], slope_points: list[dict]):
    pts = sorted(points, key=lambda p: p['rows'])
    self.lo, self.hi = pts[0], pts[-1]
    self.params, self.opt_state = self.hi['params'], self.hi['opt_state']
    self.extra, self.batch_row = self.hi['extra_output'], self.hi['batch'] / self.hi['rows']
    sp = sorted(slope_points, key=lambda p: p['rows'])  # one device, most activation-bound
    self.per_row = (sp[-1]['temp'] - sp[0]['temp']) / max(1, sp[-1]['rows'] - sp[0]['rows'])

  def temp(self, rows: int) -> float:
    if self.hi['rows'] == self.lo['rows']:
      return self.hi['temp']
    slope = (self.hi['temp'] - self.lo['temp']) / (self.hi['rows'] - self.lo['rows'])
    return self.lo['temp'] + (rows - self.lo['rows']) * slope

  def total(self, rows: int) -> float:
    return self.params + self.opt_state + self.extra + rows * self.batch_row + self.temp(rows)

  def max_rows(self, memory_gib: float) -> int:
    """Largest micro-batch that fits, one more gradient buffer counted (module docstring)."""
    fixed = self.hi['temp'] - self.hi['rows'] * self.per_row
    room = HEADROOM * memory_gib * GIB - (2 * self.params + self.opt_state + self.extra + fixed)
    return max(0, int(room // (self.per_row + self.batch_row)))


def plan(measured: dict, models, batches) -> tuple[list[dict], dict]:
  """Rows of the plan (one per model, mesh, global batch) and the per-setting fits."""
  rows_out, fits = [], {}
  for name in models:
    for devices in MESHES:
      for remat in (False, True):
        pick = lambda n: [p for p in measured[name] if p['remat'] == remat and p['devices'] == n]
        fits[name, devices, remat] = Fit(pick(devices), pick(1))
      for batch in batches:
        if batch % devices:
          continue
        r = batch // devices
        base = fits[name, devices, False]
        row = {'model': name, 'devices': devices, 'global_batch': batch, 'rows_per_device': r,
               'params_gib': base.params / GIB, 'opt_state_gib': base.opt_state / GIB,
               'grads_gib': base.params / GIB}
        for remat, key in ((False, ''), (True, '_remat')):
          fit = fits[name, devices, remat]
          row[f'activations{key}_gib'] = (fit.temp(r) - fit.params) / GIB
          row[f'total{key}_gib'] = fit.total(r) / GIB
          row[f'fits{key}'] = {d: fit.total(r) <= HEADROOM * mem * GIB
                               for d, (mem, _) in DEVICE_SPECS.items()}
        rows_out.append(row)
  return rows_out, fits


def projection(name: str) -> dict:
  """Projected tokens/s per device (module docstring)."""
  config = load_config(name)
  cfg = model_config(config, False)
  length = int(config.pipeline.seq_len)
  per_token = train_bench.model_flops_per_step(cfg, 1, length) / length
  abstract = nnx.state(nnx.eval_shape(lambda: GLM(cfg, train_bench.SIZES, rngs=nnx.Rngs(0))))
  return {'params': sum(x.size for x in jax.tree.leaves(abstract)),
          'model_flops_per_token': per_token, 'mfu': MFU,
          'tokens_per_s_per_device': {d: peak * 1e12 * MFU / per_token
                                      for d, (_, peak) in DEVICE_SPECS.items()}}


def _marks(fits: dict) -> str:
  return ' '.join('✓' if fits[d] else '✗' for d in DEVICE_SPECS)


def print_tables(rows, fits, projections, models) -> None:
  names = list(DEVICE_SPECS)
  print(f'Per device, GiB; float32 activations (an upper bound for bfloat16). fits: '
        f'{", ".join(names)} at {HEADROOM:.0%} of memory.\n')
  print('| model | devices | batch | rows/device | params | Adam | grads | activations | total '
        '| fits | remat: activations | total | fits |')
  print('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |')
  for r in rows:
    print(f'| {r["model"]} | {r["devices"]} | {r["global_batch"]} | {r["rows_per_device"]} | '
          f'{r["params_gib"]:.3f} | {r["opt_state_gib"]:.3f} | {r["grads_gib"]:.3f} | '
          f'{r["activations_gib"]:.1f} | {r["total_gib"]:.1f} | {_marks(r["fits"])} | '
          f'{r["activations_remat_gib"]:.1f} | {r["total_remat_gib"]:.1f} | '
          f'{_marks(r["fits_remat"])} |')
  print('\nLargest micro-batch (rows per device; without / with remat) and activation GiB per '
        'row.\n')
  print('| model | devices | GiB/row | remat: GiB/row | ' + ' | '.join(names) + ' |')
  print('| --- | ---: | ---: | ---: |' + ' ---: |' * len(names))
  for name in models:
    for n in MESHES:
      plain, remat = fits[name, n, False], fits[name, n, True]
      cells = [f'{plain.max_rows(DEVICE_SPECS[d][0])} / {remat.max_rows(DEVICE_SPECS[d][0])}'
               for d in names]
      print(f'| {name} | {n} | {plain.per_row / GIB:.2f} | {remat.per_row / GIB:.2f} | '
            + ' | '.join(cells) + ' |')
  print(f'\nPROJECTION, not a measurement: tokens/s per device at {MFU:.0%} MFU of the dense '
        'bfloat16 peak (with remat: x 3/4).\n')
  print('| model | params | GFLOP/token | ' + ' | '.join(names) + ' |')
  print('| --- | ---: | ---: |' + ' ---: |' * len(names))
  for name in models:
    p = projections[name]
    print(f'| {name} | {p["params"] / 1e6:.0f}M | {p["model_flops_per_token"] / 1e9:.2f} | '
          + ' | '.join(f'{p["tokens_per_s_per_device"][d]:,.0f}' for d in names) + ' |')


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--models', default='paper_small,paper_base')
  ap.add_argument('--batches', default='64,96,128,256,512', help='global batch sizes (rows)')
  ap.add_argument('--measure', default='', help=argparse.SUPPRESS)  # worker: one model
  ap.add_argument('--points', default='[]', help=argparse.SUPPRESS)
  args = ap.parse_args()
  if args.measure:
    print(json.dumps(measure(args.measure, [tuple(p) for p in json.loads(args.points)])))
    return
  models = [m for m in args.models.split(',') if m]
  batches = sorted({int(b) for b in args.batches.split(',') if b})
  if any(all(b % n for b in batches) for n in MESHES):
    raise SystemExit(f'--batches: every mesh size {MESHES} needs a batch it divides')
  t0 = time.perf_counter()
  measured = measure_all(models, batches)
  rows, fits = plan(measured, models, batches)
  projections = {name: projection(name) for name in models}
  print_tables(rows, fits, projections, models)
  seconds = time.perf_counter() - t0
  compiles = sum(len(v) for v in measured.values())
  print(f'\n{compiles} compilations, {seconds:.0f} s')
  settings = {f'{name}/{n}/{"remat" if remat else "no_remat"}': {
      'activation_gib_per_row': fit.per_row / GIB,
      'max_rows': {d: fit.max_rows(mem) for d, (mem, _) in DEVICE_SPECS.items()}}
      for (name, n, remat), fit in fits.items()}
  common.finish('memory_plan', {
      'seconds': seconds, 'compilations': compiles,
      'seq_len': {m: int(load_config(m).pipeline.seq_len) for m in models},
      'headroom': HEADROOM, 'compute_dtype_compiled': 'float32',
      'devices': {d: {'memory_gib': m, 'peak_bf16_tflops': p}
                  for d, (m, p) in DEVICE_SPECS.items()},
      'plan': rows, 'settings': settings, 'projection': projections})


if __name__ == '__main__':
  main()
