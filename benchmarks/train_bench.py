"""Training throughput and model-FLOPs utilisation of the jit-compiled train step on this machine.

    .venv/bin/python benchmarks/train_bench.py [--steps 6] [--only peer_size,paper_small]
        [--plain_malloc]

For each setting: non-padding tokens/s, step time, parameter count and MFU = model FLOPs per
second / the peak of a large float32 ``jnp.dot`` measured in the same run (before and after
every setting; the highest is used). Model FLOPs of a step = 3 x forward matmul FLOPs (2 per
multiply-add): dense layers and heads (2 x params x tokens, all B x L positions) plus attention
scores and values (4 x d_model per (query, key) pair and layer), counted two ways:

* ``mfu_counted`` (``mfu``, PaLM-style): every pair of the L x L score matrix of each packed
  row, as the step computes them;
* ``mfu_useful``: only the pairs the GLM mask of the timed batches allows (``layers.glm_mask``:
  same example, Part A keys, causal in Part B; ``allowed_pair_fraction``), the work a kernel
  that skipped masked blocks would still do.

Embedding gathers and element-wise work are not counted. Batches are synthetic, packed like the
pipeline's output on the shared sample at sequence 768 (examples of 80-540 tokens, ~98.5% of
positions non-padding). ``theoretical_peak_gflops``: the processor's float32 peak from
/proc/cpuinfo (see :func:`theoretical_peak`), or 'unknown'.

Step time is the fastest of ``--steps`` timed steps (best case: this machine is shared, and the
fastest step is the best estimate of what the code does on an idle machine); the median step
and the figures at the median (``*_median``) are the typical case.

Allocator: XLA:CPU allocates its step buffers afresh on every call; with glibc's defaults every
large buffer is a new mmap whose 4 KiB pages fault in again each step (a 150 MB attention score
tensor costs ~37,000 page faults, ~70 ms, per touch). Unless ``--plain_malloc`` is given (or
GLIBC_TUNABLES is already set) the script re-executes itself with ``launch/glibc_tunables``
(:func:`common.tuned_malloc`) --
transparent huge pages for malloc, no mmap for large blocks, no trimming -- which the training
launchers should set too; the JSON records the value used.

Targets (issue 5): MFU >= 35% for paper_small's layer shapes (d_model 1024, FF 2048, 4 layers,
8 heads) at sequence 1024; >= 1,400 non-padding tokens/s at the size the public SongGLM code was
measured at here (d_model 256, FF 512, 4 layers, 8 heads, 8 x 768: about 140 tokens/s).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import time

import common
import jax
import jax.numpy as jnp
import numpy as np

from songglm_jax.model import GLM, INPUT_FIELDS, ModelConfig, synthetic
from songglm_jax.model import layers
from songglm_jax.train import optim
from songglm_jax.train import step as step_lib

# name -> (model overrides, batch, sequence length). 'default' follows configs/default.py's
# model section when that config has one.
SETTINGS = {
    'default': (dict(d_model=128, num_layers=2, num_heads=4, d_ff=512), 8, 1024),
    'paper_small': (dict(d_model=1024, num_layers=4, num_heads=8, d_ff=2048), 8, 1024),
    'peer_size': (dict(d_model=256, num_layers=4, num_heads=8, d_ff=512), 8, 768),
    'peer_size_concat': (dict(d_model=256, num_layers=4, num_heads=8, d_ff=512,
                              embed_combine='concat', embed_field_dim=64), 8, 768),
}
SIZES = synthetic.synthetic_field_sizes(num_syllables=5000, num_stress=40, max_bars=512)


def matmul_peak_gflops(n: int = 2048, reps: int = 20) -> float:
  """Best float32 GFLOP/s of an n x n x n jnp.dot."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda x, y: x @ y)
  f(a, a).block_until_ready()
  best = float('inf')
  for _ in range(reps):
    t = time.perf_counter()
    f(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 / best / 1e9


def theoretical_peak() -> dict:
  """Float32 peak GFLOP/s = cores x clock x 2 (FMA) x float32 lanes of the widest vector flag,
  one FMA instruction per cycle per core, from /proc/cpuinfo; 'unknown' when not derivable.

  /proc/cpuinfo does not say how many FMA units a core has: one full-width FMA per cycle is
  assumed (AMD Zen 4 runs AVX-512 on two 256-bit pipes, i.e. one 512-bit FMA per cycle; a core
  with two 512-bit FMA units would double the figure). The clock is ``cpu MHz`` (under a
  hypervisor the nominal clock; boost is not counted).
  """
  try:
    text = open('/proc/cpuinfo').read()
  except OSError:
    return {'gflops': 'unknown', 'how': '/proc/cpuinfo unreadable'}
  blocks = [b for b in text.split('\n\n') if b.strip()]
  field = lambda b, k: (re.search(rf'^{k}\s*:\s*(.*)$', b, re.M) or [None, None])[1]
  cores = len({(field(b, 'physical id'), field(b, 'core id')) for b in blocks}) or len(blocks)
  mhz, flags = field(blocks[0], 'cpu MHz'), set((field(blocks[0], 'flags') or '').split())
  lanes = 16 if 'avx512f' in flags else 8 if 'avx' in flags else 4 if 'sse' in flags else 0
  if not (mhz and lanes and 'fma' in flags | ({'avx512f'} & flags)):
    return {'gflops': 'unknown', 'how': 'no cpu MHz or FMA vector flag in /proc/cpuinfo'}
  ghz, usable = float(mhz) / 1e3, len(os.sched_getaffinity(0))
  per_core = ghz * 2 * lanes
  return {'gflops': cores * per_core, 'gflops_per_core': per_core,
          'gflops_usable_cores': min(usable, cores) * per_core, 'cores': cores,
          'usable_cores': usable, 'ghz': ghz, 'fp32_lanes': lanes, 'model': field(blocks[0],
                                                                                   'model name'),
          'how': 'cores x cpu MHz x 2 (FMA) x float32 lanes (avx512f 16, avx 8), one FMA '
                 'instruction per cycle per core assumed (/proc/cpuinfo has no FMA unit count)'}


def allowed_pairs(batch: dict) -> int:
  """(query, key) pairs the GLM mask of ``batch`` allows, over all rows."""
  meta = layers.AttnMeta.of_batch(batch)
  return int(np.asarray(layers.glm_mask(meta, meta)).sum())


def model_flops_per_step(cfg: ModelConfig, batch: int, length: int,
                         attn_pairs: float | None = None) -> float:
  """Training FLOPs of one step (see module docstring); ``attn_pairs``: the (query, key) pairs
  counted for attention (default all B x L x L)."""
  d, tokens = cfg.d_model, batch * length
  dense = cfg.num_layers * (4 * d * d + 2 * d * cfg.d_ff)
  dense += d * sum(SIZES[f] for f in cfg.target_fields)
  if cfg.embed_combine == 'concat':
    dense += cfg.embed_field_dim * len(INPUT_FIELDS) * d
  pairs = tokens * length if attn_pairs is None else attn_pairs
  forward = 2 * dense * tokens + cfg.num_layers * 4 * d * pairs
  return 3.0 * forward


def _default_overrides() -> dict | None:
  path = common.REPO / 'configs' / 'default.py'
  spec = importlib.util.spec_from_file_location('default_config', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  if 'model' not in c:
    return None
  keys = ('d_model', 'num_layers', 'num_heads', 'd_ff')
  return {k: c.model[k] for k in keys}


def run(name: str, steps: int) -> dict:
  overrides, batch, length = SETTINGS[name]
  source = 'benchmark table'
  if name == 'default' and (from_config := _default_overrides()) is not None:
    overrides, source = from_config, 'configs/default.py'
  cfg = ModelConfig(**overrides, dropout_rate=0.1, max_len=length)
  tx, schedule = optim.make_optimizer(optim.OptimConfig(num_train_steps=1000))
  graphdef, state, _ = step_lib.create_train_state(lambda r: GLM(cfg, SIZES, rngs=r), tx, 0)
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  train = step_lib.jit_train_step(step_lib.make_train_step(graphdef, tx, schedule))
  rng = np.random.default_rng(0)
  batches = [jax.device_put(synthetic.synthetic_batch(rng, batch, length, SIZES, min_example=80,
                                                      max_example=540, pad_fraction=0.015))
             for _ in range(2)]
  t = time.perf_counter()
  state, m = train(state, batches[0])
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  state, m = train(state, batches[1])
  jax.block_until_ready(m)
  times, tokens = [], []
  for i in range(steps):
    t = time.perf_counter()
    state, m = train(state, batches[i % 2])
    tokens.append(float(m['tokens']))  # waits for the step
    times.append(time.perf_counter() - t)
  step_s, median_s = float(np.min(times)), float(np.median(times))
  pairs = np.mean([allowed_pairs(b) for b in batches])
  return {'model': overrides, 'sizes_from': source, 'batch': batch, 'seq_len': length,
          'params': n_params, 'step_s': step_s, 'step_s_median': median_s, 'steps': steps,
          'compile_s': compile_s,
          'non_padding_fraction': float(np.mean(tokens)) / (batch * length),
          'tokens_per_s': float(np.mean(tokens)) / step_s,
          'tokens_per_s_median': float(np.mean(tokens)) / median_s,
          'allowed_pair_fraction': float(pairs) / (batch * length * length),
          'model_tflops_per_step': model_flops_per_step(cfg, batch, length) / 1e12,
          'useful_tflops_per_step': model_flops_per_step(cfg, batch, length, pairs) / 1e12}


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--steps', type=int, default=6, help='timed steps per setting')
  ap.add_argument('--only', default='', help='comma-separated subset of ' + ','.join(SETTINGS))
  ap.add_argument('--plain_malloc', action='store_true', help='keep the default glibc malloc')
  args = ap.parse_args()
  common.tuned_malloc(plain=args.plain_malloc)
  names = [n for n in args.only.split(',') if n] or list(SETTINGS)
  peaks = [matmul_peak_gflops()]
  runs = {}
  for name in names:
    runs[name] = r = run(name, args.steps)
    peaks.append(matmul_peak_gflops())
    print(f'{name}: {r["tokens_per_s"]:.0f} tokens/s, step {r["step_s"]:.3f} s fastest of '
          f'{args.steps} (median {r["step_s_median"]:.3f} s), '
          f'{r["model_tflops_per_step"] * 1e3 / r["step_s"]:.0f} model GFLOP/s, '
          f'{r["params"] / 1e6:.1f}M params', flush=True)
  peak = max(peaks)  # the best the machine showed in this run: the conservative denominator
  for r in runs.values():
    for kind, flops in (('counted', r['model_tflops_per_step']),
                        ('useful', r['useful_tflops_per_step'])):
      r[f'mfu_{kind}'] = flops * 1e3 / r['step_s'] / peak
      r[f'mfu_{kind}_median'] = flops * 1e3 / r['step_s_median'] / peak
    r['mfu'] = r['mfu_counted']
  by = lambda key: {k: v[key] for k, v in runs.items()}
  theo = theoretical_peak()
  if isinstance(theo['gflops'], float):
    theo['measured_matmul_fraction'] = peak / theo['gflops_usable_cores']
    if peak > theo['gflops_usable_cores']:
      theo['note'] = ('the measured matmul exceeds this: the cores run above the cpu MHz '
                      'reported (boost), so it is a floor, not a ceiling')
  common.finish('train_bench', {
      'tokens_per_s': by('tokens_per_s'), 'tokens_per_s_median': by('tokens_per_s_median'),
      'mfu': by('mfu'), 'mfu_counted': by('mfu_counted'), 'mfu_useful': by('mfu_useful'),
      'mfu_counted_median': by('mfu_counted_median'), 'mfu_useful_median': by('mfu_useful_median'),
      'best_of_steps': args.steps,
      'convention': 'tokens_per_s and mfu_* from the fastest of best_of_steps timed steps, '
                    '*_median from the median step; mfu_counted counts attention over all L x L '
                    'pairs of each packed row (PaLM-style), mfu_useful only the pairs the GLM '
                    'mask allows; denominator matmul_peak_gflops',
      'matmul_peak_gflops': peak, 'theoretical_peak': theo,
      'runs': runs, 'devices': str(jax.devices()),
      'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''),
      'targets': {'mfu.paper_small': 0.35, 'tokens_per_s.peer_size': 1400}})


if __name__ == '__main__':
  main()
