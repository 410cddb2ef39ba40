"""The best held-out-loss checkpoint: W/<stage>/best/<step> and best.json written by the loop,
kept across a resume, robust to stale files; load_for_inference's 'best' / 'latest' choice.

The held-out losses are scripted (the real evaluator runs, then its loss is replaced), so that
the lowest one is not simply the last one.
"""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from songglm_jax.train import checkpoint as ckpt_lib
from songglm_jax.train import inference as inference_lib
from songglm_jax.train import loop
from tests.train import helpers

SCRIPT = {2: 5.0, 4: 4.0, 6: 4.5}  # step -> held-out loss of the first run: best at step 4


def _config():
  """6 pre-training steps, evaluated and saved every 2 (all three checkpoints kept)."""
  config = helpers.tiny_config(num_train_steps=6, checkpoint_every_steps=2, eval_every_steps=2,
                               keep_checkpoints=3)
  config.stages = 'pretrain'
  return config


def _train(monkeypatch, work, script: dict[int, float]) -> dict:
  """``loop.run_stage`` with the evaluator's loss at step s replaced by ``script[s]``."""
  real, steps = loop.Evaluator.__call__, iter(sorted(s for s in script if s > _start(work)))

  def scripted(self, params):
    out = real(self, params)
    return {**out, 'loss': script[next(steps)]}

  monkeypatch.setattr(loop.Evaluator, '__call__', scripted)
  config = _config()
  (work / 'config.json').write_text(config.to_json())  # what the main job writes
  return loop.run_stage(config, work, 'pretrain')


def _start(work) -> int:
  folder = work / 'pretrain' / 'checkpoints'
  return max((int(p.name) for p in folder.iterdir() if p.name.isdigit()), default=0) if (
      folder.is_dir()) else 0


def _best_steps(work) -> list[int]:
  return ckpt_lib.Checkpoints(work / 'pretrain' / 'best', read_only=True,
                              items=ckpt_lib.BEST_ITEMS).all_steps()


def _record(stage_dir) -> dict:
  return json.loads((stage_dir / 'best.json').read_text())


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A workdir trained with :data:`SCRIPT` (shared: copy it before changing it)."""
  work = helpers.workdir_with_data(tmp_path_factory.mktemp('best'))
  with pytest.MonkeyPatch.context() as mp:
    summary = _train(mp, work, SCRIPT)
  return work, summary


def _copy(trained, tmp_path):
  work = tmp_path / 'work'
  shutil.copytree(trained[0], work)
  return work


def _assert_same(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_best_json_names_the_lowest_eval_step_and_the_folder_holds_it_alone(trained):
  work, summary = trained
  assert _record(work / 'pretrain') == {'step': 4, 'eval_loss': 4.0}
  assert _best_steps(work) == [4]
  assert sorted(p.name for p in (work / 'pretrain' / 'best').iterdir()) == ['.trash', '4']
  assert not any((work / 'pretrain' / 'best' / '.trash').iterdir())
  assert (summary['best_step'], summary['best_eval_loss']) == (4, 4.0)
  assert helpers.losses(work, key='eval_loss') == SCRIPT


def test_load_for_inference_picks_best_or_latest(trained):
  work, _ = trained
  saved = ckpt_lib.Checkpoints(work / 'pretrain' / 'checkpoints', read_only=True)
  best = inference_lib.load_for_inference(str(work), which='best')
  assert (best.stage, best.step, best.checkpoint) == ('pretrain', 4, 'best')
  _assert_same(best.params, saved.restore_params(4, best.params))
  latest = inference_lib.load_for_inference(str(work), which='latest')
  assert (latest.step, latest.checkpoint) == (6, 'latest')
  _assert_same(latest.params, saved.restore_params(6, latest.params))
  assert inference_lib.load_for_inference(str(work)).checkpoint == 'best'  # the default
  kept = inference_lib.load_for_inference(str(work), which='4')
  assert (kept.step, kept.checkpoint) == (4, 'step')
  _assert_same(kept.params, saved.restore_params(4, kept.params))
  with pytest.raises(ValueError, match='no checkpoint of step 5'):
    inference_lib.load_for_inference(str(work), which='5')
  with pytest.raises(ValueError, match=r"^checkpoint: expected one of \('best', 'latest'\)"):
    inference_lib.load_for_inference(str(work), which='newest')


def test_load_for_inference_falls_back_to_the_newest_without_a_usable_best(trained, tmp_path):
  work = _copy(trained, tmp_path)
  shutil.rmtree(work / 'pretrain' / 'best' / '4' / 'model')  # best.json names a broken step
  got = inference_lib.load_for_inference(str(work))
  assert (got.step, got.checkpoint) == (6, 'latest')
  (work / 'pretrain' / 'best.json').unlink()  # no best at all
  got = inference_lib.load_for_inference(str(work))
  assert (got.step, got.checkpoint) == (6, 'latest')


def test_resume_keeps_the_best_record(trained, tmp_path, monkeypatch):
  work = _copy(trained, tmp_path)
  shutil.rmtree(work / 'pretrain' / 'checkpoints' / '6')  # as if killed after saving step 4
  summary = _train(monkeypatch, work, {6: 4.2})  # worse than step 4's 4.0
  assert summary['first_step'] == 5
  assert _record(work / 'pretrain') == {'step': 4, 'eval_loss': 4.0} and _best_steps(work) == [4]


def test_resume_drops_a_best_of_steps_that_are_run_again(trained, tmp_path, monkeypatch):
  work = _copy(trained, tmp_path)
  for step in (4, 6):  # as if killed after saving step 2: step 4 is trained again
    shutil.rmtree(work / 'pretrain' / 'checkpoints' / str(step))
  _train(monkeypatch, work, {4: 4.4, 6: 4.3})
  assert _record(work / 'pretrain') == {'step': 6, 'eval_loss': 4.3} and _best_steps(work) == [6]


def test_stale_or_corrupt_best_files_do_not_break_training(trained, tmp_path, monkeypatch):
  work = _copy(trained, tmp_path)
  shutil.rmtree(work / 'pretrain' / 'checkpoints' / '6')
  (work / 'pretrain' / 'best.json').write_text('{"step": ')  # cut short
  (work / 'pretrain' / 'best' / '9' / 'model').mkdir(parents=True)  # junk step
  (work / 'pretrain' / 'best' / '9.orbax-checkpoint-tmp-1').mkdir()  # unfinished save
  summary = _train(monkeypatch, work, {6: 4.5})
  assert summary['step'] == 6
  assert _record(work / 'pretrain') == {'step': 6, 'eval_loss': 4.5} and _best_steps(work) == [6]
  assert sorted(p.name for p in (work / 'pretrain' / 'best').iterdir()) == ['.trash', '6']
  got = inference_lib.load_for_inference(str(work))
  assert (got.step, got.checkpoint) == (6, 'best')


def test_a_file_in_place_of_the_best_folder_is_replaced(trained, tmp_path, monkeypatch):
  work = _copy(trained, tmp_path)
  shutil.rmtree(work / 'pretrain' / 'checkpoints' / '6')
  shutil.rmtree(work / 'pretrain' / 'best')
  (work / 'pretrain' / 'best').write_text('not a folder')
  _train(monkeypatch, work, {6: 4.5})
  assert _record(work / 'pretrain') == {'step': 6, 'eval_loss': 4.5} and _best_steps(work) == [6]


def test_the_best_manager_is_closed_when_training_fails(trained, tmp_path, monkeypatch):
  """An exception after a best was saved: best.json still names the finished save."""
  work = _copy(trained, tmp_path)
  shutil.rmtree(work / 'pretrain' / 'checkpoints' / '6')
  (work / 'pretrain' / 'best.json').unlink()
  shutil.rmtree(work / 'pretrain' / 'best')
  real = ckpt_lib.Checkpoints.save

  def failing(self, step, *args):
    if step == 6:
      raise RuntimeError('disk full')
    return real(self, step, *args)

  monkeypatch.setattr(ckpt_lib.Checkpoints, 'save', failing)
  with pytest.raises(RuntimeError, match='disk full'):
    _train(monkeypatch, work, {6: 4.5})
  assert _record(work / 'pretrain') == {'step': 6, 'eval_loss': 4.5} and _best_steps(work) == [6]


def test_best_json_moves_only_once_the_new_step_is_final(tmp_path):
  """Direct use: best.json names a complete step at every moment (the older step is deleted
  only after best.json moved on)."""
  params = {'w': jax.numpy.arange(4.0)}
  best = ckpt_lib.BestCheckpoint(tmp_path, start=0)
  try:
    assert best.offer(2, params, 3.0)
    assert not (tmp_path / 'best.json').exists()  # the save may still be running
    best.settle()
    assert _record(tmp_path) == {'step': 2, 'eval_loss': 3.0}
    assert not best.offer(3, params, 3.5) and not best.offer(3, params, float('nan'))
    assert best.offer(4, params, 2.0)
    assert _record(tmp_path)['step'] == 2 and (tmp_path / 'best' / '2').is_dir()
  finally:
    best.close()
  assert _record(tmp_path) == {'step': 4, 'eval_loss': 2.0}
  assert sorted(p.name for p in (tmp_path / 'best').iterdir()) == ['.trash', '4']

