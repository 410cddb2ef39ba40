"""Orbax checkpoints: round trip with the data position, retention, atomicity, the read-only
loader, and resuming after SIGKILL with the uninterrupted run's losses."""

from __future__ import annotations

import functools
import pathlib
import shutil
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from songglm_jax.data import pipeline
from songglm_jax.model import GLM, ModelConfig
from songglm_jax.train import checkpoint as ckpt_lib
from songglm_jax.train import inference as inference_lib
from songglm_jax.train import loop, optim
from songglm_jax.train import step as step_lib
from songglm_jax.train.mesh import Plan
from tests.train import helpers


@functools.lru_cache(maxsize=None)
def _initial_state():
  """The reference run's initial state (the same program, so its compilation is shared)."""
  config = helpers.reference_config()
  data = helpers.prepared_corpus() / 'data' / 'pretrain'
  sizes = inference_lib.read_tokenizer(data / 'vocab.json').field_sizes
  tx, _ = optim.make_optimizer(optim.OptimConfig.from_config(config.optim, config.pretrain))
  model_cfg = ModelConfig.from_config(config.model)
  plan = Plan.from_config(config.mesh)
  return step_lib.create_train_state(lambda r: GLM(model_cfg, sizes, rngs=r), tx,
                                     int(config.seed), plan)[1]


def _state_and_iterator():
  """That state and a fresh pre-training data iterator."""
  config = helpers.reference_config()
  opts = loop.pipeline_options(config, 8)
  it = iter(pipeline.pretrain_pipeline(helpers.prepared_corpus() / 'data' / 'pretrain', opts,
                                       process_index=0, process_count=1))
  return _initial_state(), it


def test_round_trip_restores_state_and_data_position(tmp_path):
  state, it = _state_and_iterator()
  for _ in range(3):
    next(it)
  ck = ckpt_lib.Checkpoints(tmp_path / 'checkpoints', keep=2)
  ck.save(3, state, it)
  expected = [next(it) for _ in range(2)]
  ck.close()
  _, it2 = _state_and_iterator()
  other = jax.tree.map(jnp.zeros_like, state)
  ck = ckpt_lib.Checkpoints(tmp_path / 'checkpoints', keep=2)
  restored = ck.restore(ck.latest_step(), other, it2)
  ck.close()
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
    np.testing.assert_array_equal(a, b)
  for want in expected:
    got = next(it2)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_keeps_the_newest_steps_and_empties_the_trash(tmp_path):
  state, it = _state_and_iterator()
  ck = ckpt_lib.Checkpoints(tmp_path / 'checkpoints', keep=2)
  for step in (1, 2, 3, 4):
    ck.save(step, state, it)
  ck.close()
  assert ckpt_lib.Checkpoints(tmp_path / 'checkpoints', read_only=True).all_steps() == [3, 4]
  assert not any((tmp_path / 'checkpoints' / ckpt_lib.TRASH).iterdir())


def test_the_managers_of_one_stage_never_share_a_barrier(tmp_path):
  """checkpoints/6 and best/6 are saved together after an evaluation; Orbax names a save's
  barriers after the step folder alone, so each manager gets its own prefix (the same on every
  host, whatever the absolute path)."""
  prefix = ckpt_lib.barrier_prefix
  assert prefix(tmp_path / 'w' / 'pretrain' / 'checkpoints') != prefix(
      tmp_path / 'w' / 'pretrain' / 'best')
  assert prefix(tmp_path / 'w' / 'pretrain' / 'best') != prefix(
      tmp_path / 'w' / 'finetune' / 'best')
  assert prefix(pathlib.Path('/a/w/pretrain/best')) == prefix(pathlib.Path('/b/c/w/pretrain/best'))
  ck = ckpt_lib.Checkpoints(tmp_path / 'pretrain' / 'checkpoints')
  try:
    got = ck._manager._checkpointer._barrier_sync_key_prefix  # pylint: disable=protected-access
  finally:
    ck.close()
  assert got == prefix(tmp_path / 'pretrain' / 'checkpoints') == 'pretrain_checkpoints'


def test_an_unfinished_step_folder_is_ignored_and_removed(tmp_path):
  state, it = _state_and_iterator()
  ck = ckpt_lib.Checkpoints(tmp_path / 'checkpoints', keep=2)
  ck.save(2, state, it)
  ck.close()
  partial = tmp_path / 'checkpoints' / '5.orbax-checkpoint-tmp'  # a save cut short
  (partial / 'model').mkdir(parents=True)
  (partial / 'model' / 'junk').write_bytes(b'half')
  ck = ckpt_lib.Checkpoints(tmp_path / 'checkpoints', keep=2)
  assert ck.latest_step() == 2 and ck.all_steps() == [2]
  ck.save(3, state, it)  # the clean-up of the old run's leftovers completes before a save
  ck.close()
  assert not partial.exists()


def test_load_for_inference_prefers_finetune_and_restores_the_model_alone(tmp_path):
  work = tmp_path / 'work'
  shutil.copytree(helpers.reference_run(), work)
  got = inference_lib.load_for_inference(str(work), which='latest')
  assert (got.stage, got.step, got.checkpoint) == ('pretrain', 12, 'latest')
  saved = ckpt_lib.Checkpoints(work / 'pretrain' / 'checkpoints', read_only=True)
  state, _ = _state_and_iterator()
  want = saved.restore(12, state).params
  for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)
  assert got.field_sizes == got.tokenizer.field_sizes
  assert got.model_cfg == ModelConfig.from_config(helpers.reference_config().model)
  # A fine-tuned checkpoint takes precedence.
  shutil.copytree(work / 'pretrain', work / 'finetune')
  shutil.rmtree(work / 'finetune' / 'checkpoints' / '12')
  got = inference_lib.load_for_inference(str(work), which='latest')
  assert (got.stage, got.step) == ('finetune', 9)
  model = got.model()
  assert set(model.heads.keys()) == set(got.model_cfg.target_fields)


def test_load_for_inference_without_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match='no checkpoint'):
    inference_lib.load_for_inference(str(tmp_path))
  with pytest.raises(ValueError, match='train the finetune stage'):
    inference_lib.load_for_inference(str(helpers.reference_run()), stage='finetune')


def test_sigkill_then_rerun_reproduces_every_loss(tmp_path):
  """Kill the run while it trains and saves (SIGKILL: no clean-up), re-run the same command:
  every logged loss -- steps before the kill, repeated steps, later steps -- equals the
  uninterrupted run's exactly."""
  config = helpers.reference_config()
  reference = helpers.reference_run()
  work = helpers.workdir_with_data(tmp_path)
  metrics = work / 'pretrain' / 'metrics.jsonl'
  proc = subprocess.Popen(helpers.main_command(work, config), cwd=helpers.REPO,
                          env=helpers.subprocess_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if metrics.is_file() and len(metrics.read_text().splitlines()) >= 7:
      break
    time.sleep(0.005)
  assert proc.poll() is None, f'the run ended before it could be killed: {proc.stderr.read()}'
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  proc.stderr.close()
  killed_at = max(helpers.losses(work))
  assert killed_at < 12
  r = helpers.run_main(work, config)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from' in r.stdout  # step 7 was logged, so the save of step 3 had finished
  want, got = helpers.losses(reference), helpers.losses(work)
  assert sorted(got) == list(range(1, 13))
  assert got == want
  assert helpers.losses(work, key='eval_loss') == helpers.losses(reference, key='eval_loss')
