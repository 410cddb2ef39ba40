"""Mesh shapes, logical rules, and an 8-device sharded run that matches one device.

The sharded run needs 8 CPU devices, which must be requested before JAX starts; other tests in
this pytest process have already started JAX with one device, so that test re-runs this file as
a script in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from songglm_jax.train import mesh as mesh_lib

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_mesh_shape_fills_minus_one():
  assert mesh_lib.MeshConfig(data=2, fsdp=-1, tensor=2).shape(8) == (2, 2, 2)
  assert mesh_lib.MeshConfig(data=-1, fsdp=1, tensor=1).shape(4) == (4, 1, 1)
  with pytest.raises(ValueError, match='devices'):
    mesh_lib.MeshConfig(data=3, fsdp=-1, tensor=1).shape(8)
  with pytest.raises(ValueError, match='one -1'):
    mesh_lib.MeshConfig(data=-1, fsdp=-1, tensor=1).shape(8)


def test_rules_map_logical_axes_to_mesh_axes():
  rules = mesh_lib.parse_rules('batch=data+fsdp, embed=fsdp, mlp=tensor, vocab=')
  assert dict(rules) == {'batch': ('data', 'fsdp'), 'embed': ('fsdp',), 'mlp': ('tensor',),
                         'vocab': ()}
  with pytest.raises(ValueError, match='mesh axes'):
    mesh_lib.parse_rules('embed=model')
  with pytest.raises(ValueError, match='name=axis'):
    mesh_lib.parse_rules('embed')
  plan = mesh_lib.Plan(mesh_lib.make_mesh(mesh_lib.MeshConfig(1, 1, 1)), rules)
  assert plan.spec(('embed', 'mlp')) == P('fsdp', 'tensor')
  assert plan.spec(('batch', None, 'vocab')) == P(('data', 'fsdp'), None, None)
  assert plan.spec(('embed', 'embed')) == P('fsdp', None)  # a mesh axis is used once
  assert plan.spec(('unlisted',)) == P(None)


def _sharded_run() -> dict:
  """Train 3 steps (dropout on, 2 micro-batches) on a 1-device mesh and on data 2 x fsdp 2 x
  tensor 2; return both."""
  import jax
  from songglm_jax.model import GLM, ModelConfig, synthetic
  from songglm_jax.train import optim
  from songglm_jax.train import step as step_lib

  sizes = synthetic.synthetic_field_sizes(num_syllables=50, max_bars=32)
  cfg = ModelConfig(d_model=32, num_layers=2, num_heads=4, d_ff=64, dropout_rate=0.1,
                    max_len=128)
  tx, schedule = optim.make_optimizer(optim.OptimConfig(learning_rate=3e-3,
                                                        warmup_fraction=0.1, num_train_steps=10))
  batches = [synthetic.synthetic_batch(np.random.default_rng(i), 8, 96, sizes, min_example=12,
                                       max_example=40) for i in range(3)]
  out = {'devices': len(jax.devices())}
  for name, devices, shape in (('one', jax.devices()[:1], (1, 1, 1)),
                               ('eight', jax.devices(), (2, 2, 2))):
    plan = mesh_lib.Plan(mesh_lib.make_mesh(mesh_lib.MeshConfig(*shape), devices))
    graphdef, state, shardings = step_lib.create_train_state(
        lambda r: GLM(cfg, sizes, rngs=r), tx, seed=0, plan=plan)
    train = step_lib.jit_train_step(
        step_lib.make_train_step(graphdef, tx, schedule, grad_accum_steps=2, plan=plan), plan,
        shardings)
    losses = []
    for b in batches:
      state, m = train(state, b)
      losses.append(float(m['loss']))
    wi = state.params['blocks']['mlp']['wi'][...]
    mu = state.opt_state[1][0].mu['blocks']['mlp']['wi'][...]
    out[name] = {'losses': losses, 'wi_shard': list(wi.addressable_shards[0].data.shape),
                 'mu_shard': list(mu.addressable_shards[0].data.shape),
                 'wi_spec': str(wi.sharding.spec)}
  return out


def test_eight_devices_match_one_device():
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                      ' --xla_force_host_platform_device_count=8').strip()
  env['PYTHONPATH'] = os.pathsep.join([str(REPO), env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
  proc = subprocess.run([sys.executable, __file__], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out['devices'] == 8
  one, eight = out['one'], out['eight']
  np.testing.assert_allclose(eight['losses'], one['losses'], rtol=1e-4)
  assert one['losses'][-1] < one['losses'][0]
  # wi [layers 2, 32, 64] is sharded (-, fsdp, tensor), and so is its Adam moment.
  assert one['wi_shard'] == [2, 32, 64]
  assert eight['wi_shard'] == eight['mu_shard'] == [2, 16, 32]
  assert eight['wi_spec'] == "P(None, 'fsdp', 'tensor')"


if __name__ == '__main__':
  print(json.dumps(_sharded_run()))
