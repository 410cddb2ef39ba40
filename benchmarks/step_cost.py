r"""Relative cost of a training step under model and packing variants, measured side by side.

    .venv/bin/python benchmarks/step_cost.py [--rounds=8] [--variants=NAME,...]

Each variant is the first ``songglm_sample`` model size (d_model 256, 4 layers, 8 heads, FF 512)
with some ``config.model`` fields changed and a batch shape (rows x length, the same number of
tokens per step). The steps of all variants are timed round-robin -- one step of each per round --
so a busy machine slows every variant alike, and the result is each variant's median step time and
its ratio to the first variant. Batches are synthetic packed rows with examples of 80-540 tokens
(the fine-tuning corpus' range). This is what "the same CPU budget" is computed from when a method
change makes steps dearer or a shorter row makes them cheaper.

Last line: one JSON object (also ``benchmarks/results/step_cost.json``).
"""

from __future__ import annotations

import argparse
import time

import common
import jax
import numpy as np

from songglm_jax.model import GLM, ModelConfig, synthetic
from songglm_jax.train import optim
from songglm_jax.train import step as step_lib

BASE = dict(d_model=256, num_layers=4, num_heads=8, d_ff=512, dropout_rate=0.1)
FEATURES = dict(field_conditioning='chain', phrase_position=True, note_syllable_stress=True)
# name -> (model changes, rows, length)
VARIANTS = {
    'independent_8x1024': ({}, 8, 1024),
    'chain_8x1024': (dict(field_conditioning='chain'), 8, 1024),
    'features_8x1024': (FEATURES, 8, 1024),
    'features_chain128_8x1024': (dict(FEATURES, chain_hidden=128), 8, 1024),
    'features_16x512': (FEATURES, 16, 512),
    'independent_16x512': ({}, 16, 512),
    # model sizes around the sample model, for "a larger and a smaller model at the same CPU
    # time" (docs/quality.md, budget): steps are scaled by these ratios
    'features_small_8x1024': (dict(FEATURES, d_model=192, num_layers=3, num_heads=6, d_ff=384),
                              8, 1024),
    'features_large_8x1024': (dict(FEATURES, d_model=320, num_layers=5, num_heads=8, d_ff=640),
                              8, 1024),
}
SIZES = synthetic.synthetic_field_sizes(num_syllables=3000, num_stress=20, max_bars=512)


def _setup(changes: dict, rows: int, length: int):
  cfg = ModelConfig(**{**BASE, **changes}, max_len=1024)
  tx, schedule = optim.make_optimizer(optim.OptimConfig(num_train_steps=1000))
  graphdef, state, _ = step_lib.create_train_state(lambda r: GLM(cfg, SIZES, rngs=r), tx, 0)
  train = step_lib.jit_train_step(step_lib.make_train_step(graphdef, tx, schedule))
  rng = np.random.default_rng(0)
  batch = jax.device_put(synthetic.synthetic_batch(rng, rows, length, SIZES, layout='finetune',
                                                   min_example=80, max_example=min(540, length),
                                                   pad_fraction=0.015))
  state, m = train(state, batch)  # compile
  jax.block_until_ready(m)
  return {'train': train, 'state': state, 'batch': batch,
          'params': sum(x.size for x in jax.tree.leaves(state.params))}


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--rounds', type=int, default=8)
  ap.add_argument('--variants', default=','.join(VARIANTS))
  args = ap.parse_args()
  names = [n.strip() for n in args.variants.split(',') if n.strip()]
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    raise SystemExit(f'step_cost: unknown variant(s) {unknown}; known: {list(VARIANTS)}')
  runs = {n: _setup(*VARIANTS[n]) for n in names}
  times = {n: [] for n in names}
  for _ in range(args.rounds):
    for n in names:
      r = runs[n]
      t = time.perf_counter()
      r['state'], m = r['train'](r['state'], r['batch'])
      jax.block_until_ready(m)
      times[n].append(time.perf_counter() - t)
  first = float(np.median(times[names[0]]))
  out = {}
  print(f'{"variant":28s} {"params":>9s} {"median s":>9s} {"ratio":>6s}')
  for n in names:
    med = float(np.median(times[n]))
    out[n] = {'model_changes': VARIANTS[n][0], 'rows': VARIANTS[n][1], 'length': VARIANTS[n][2],
              'params': int(runs[n]['params']), 'step_s_median': med,
              'step_s_min': float(np.min(times[n])), 'ratio_to_first': med / first}
    print(f'{n:28s} {runs[n]["params"]:9d} {med:9.3f} {med / first:6.2f}')
  common.finish('step_cost', {'rounds': args.rounds, 'variants': out,
                              'note': 'median step time, round-robin on this machine'})


if __name__ == '__main__':
  main()
