"""A checkpoint file cut short: resume falls back to the newest step that restores (the damaged
one set aside, not deleted); loading it for inference or a warm start is one clear error; the
Orbax manager leaves nothing running at exit."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from songglm_jax.train import checkpoint as ckpt_lib
from songglm_jax.train import loop
from tests.conftest import REPO
from tests.train import helpers


def truncate(step_dir: pathlib.Path) -> pathlib.Path:
  """Cut the largest parameter file of a saved step to half its size (a really truncated file,
  as a full disk or a killed copy leaves it); returns it."""
  files = [p for p in (step_dir / 'model').rglob('*') if p.is_file()]
  biggest = max(files, key=lambda p: p.stat().st_size)
  os.truncate(biggest, biggest.stat().st_size // 2)
  return biggest


def _config():
  config = helpers.tiny_config(num_train_steps=6, checkpoint_every_steps=2, eval_every_steps=0,
                               keep_checkpoints=3)
  config.stages = 'pretrain'
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """6 steps saved at 2, 4, 6, and the losses of that uninterrupted run."""
  work = helpers.workdir_with_data(tmp_path_factory.mktemp('corrupt'))
  loop.run_stage(_config(), work, 'pretrain')
  return work, helpers.losses(work)


def _copy(trained, tmp_path) -> pathlib.Path:
  work = tmp_path / 'work'
  shutil.copytree(trained[0], work)
  return work


def test_resume_falls_back_to_the_newest_step_that_restores(trained, tmp_path, caplog):
  work = _copy(trained, tmp_path)
  ckpts = work / 'pretrain' / 'checkpoints'
  shutil.rmtree(ckpts / '6')  # as if killed after saving step 4 ...
  cut = truncate(ckpts / '4')  # ... whose largest file was cut short
  size = cut.stat().st_size
  summary = loop.run_stage(_config(), work, 'pretrain')
  assert summary['first_step'] == 3 and summary['step'] == 6
  assert helpers.losses(work) == trained[1]  # the uninterrupted run's losses from step 3 on
  aside = work / 'pretrain' / 'checkpoints.corrupt' / '4'
  kept = aside / cut.relative_to(ckpts / '4')
  assert kept.stat().st_size == size  # kept aside as it was, not deleted
  assert ckpt_lib.Checkpoints(ckpts, read_only=True).all_steps() == [2, 4, 6]
  assert re.search(r'checkpoints/4: does not restore \(.*\); trying the step before it',
                   caplog.text)
  assert 'resuming from step 2; step 4 (does not restore) set aside as ' in caplog.text


def test_no_step_restores_is_one_error_and_nothing_is_moved(trained, tmp_path):
  work = _copy(trained, tmp_path)
  ckpts = work / 'pretrain' / 'checkpoints'
  shutil.rmtree(ckpts / '6')
  for step in (2, 4):
    truncate(ckpts / str(step))
  with pytest.raises(ValueError, match=r'checkpoints/4: does not restore .*no older step '
                     r'restores either \(tried \[4, 2\]\); nothing was moved') as e:
    loop.run_stage(_config(), work, 'pretrain')
  assert len(str(e.value).splitlines()) == 1
  assert sorted(p.name for p in ckpts.iterdir() if p.name.isdigit()) == ['2', '4']
  assert not (work / 'pretrain' / 'checkpoints.corrupt').exists()


def test_a_manager_leaves_no_cleanup_thread_running(tmp_path):
  (tmp_path / 'c' / '3.orbax-checkpoint-tmp-1').mkdir(parents=True)  # an unfinished save
  ck = ckpt_lib.Checkpoints(tmp_path / 'c', keep=2)
  try:
    assert getattr(ck._manager, '_cleanup_tmp_directory_future', None) is None  # pylint: disable=protected-access
    assert not (tmp_path / 'c' / '3.orbax-checkpoint-tmp-1').exists()
  finally:
    ck.close()


def _problems(r: subprocess.CompletedProcess) -> list[str]:
  """stderr without the project's INFO log lines."""
  return [x for x in r.stderr.strip().splitlines() if not re.match(r'I\d{4} ', x)]


def test_generate_from_a_truncated_checkpoint_is_one_line_naming_it(trained, tmp_path):
  work = _copy(trained, tmp_path)
  (work / 'config.json').write_text(_config().to_json())  # what the main job writes
  truncate(work / 'pretrain' / 'checkpoints' / '6')
  r = subprocess.run([sys.executable, '-m', 'songglm_jax.generate', f'--workdir={work}',
                      f'--output={tmp_path / "out"}', '--lyrics=la la la', '--checkpoint=latest'],
                     cwd=REPO, env=helpers.subprocess_env(), capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
  problems = _problems(r)
  assert len(problems) == 1, problems
  (line,) = problems
  assert line.startswith(f'songglm_jax.generate: error: {work}/pretrain/checkpoints/6: does not '
                         'restore (OUT_OF_RANGE'), line
  assert line.endswith('--checkpoint=<step> (one of [2, 4])')
  assert not (tmp_path / 'out').exists()


def test_warm_start_from_a_truncated_checkpoint_is_one_line_naming_it(trained, tmp_path):
  work = _copy(trained, tmp_path)
  truncate(work / 'pretrain' / 'checkpoints' / '6')
  config = _config()
  config.stages = 'finetune'
  config.finetune.update(num_train_steps=2, eval_every_steps=0)
  r = helpers.run_main(work, config)
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
  problems = _problems(r)
  assert len(problems) == 1, problems
  (line,) = problems
  assert line.startswith('songglm_jax.main: error: config.finetune.init_from: the pre-trained '
                         f'parameters do not restore ({work}/pretrain/checkpoints/6: does not '
                         'restore (OUT_OF_RANGE'), line
  assert not (work / 'finetune' / 'checkpoints').is_dir() or not any(
      (work / 'finetune' / 'checkpoints').iterdir())


def test_an_error_after_the_managers_open_exits_without_an_orbax_traceback(tmp_path):
  """A stage that fails after its checkpoint manager was made (here: no prepared data) prints
  its one line and nothing from Orbax's threads, every time."""
  config = _config()
  for _ in range(3):
    r = helpers.run_main(tmp_path / 'work', config)
    assert r.returncode == 1, r.stderr[-3000:]
    assert _problems(r) == [f'songglm_jax.main: error: {tmp_path}/work/data/pretrain: no prepared '
                            'dataset; run the prepare stage first (config.stages=prepare,...)']


def test_only_the_leftovers_of_a_failed_restore_are_kept_quiet(monkeypatch, caplog):
  """The hooks installed before a restore drop the three kinds of leftovers of a failed one
  (module docstring of train/checkpoint.py) and pass every other error through."""
  import asyncio
  import logging
  seen = []
  monkeypatch.setattr(sys, 'unraisablehook', seen.append)
  monkeypatch.setattr(logging.getLogger('asyncio'), 'filters', [])
  ckpt_lib._quiet_orbax_leftovers()  # pylint: disable=protected-access
  assert sys.unraisablehook is not seen.append
  ckpt_lib._quiet_orbax_leftovers()  # idempotent: one hook, one filter
  assert len(logging.getLogger('asyncio').filters) == 1

  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as e:
    late = e
  hook = sys.unraisablehook
  unraisable = lambda value, obj=None: type('U', (), dict(
      exc_type=type(value), exc_value=value, exc_traceback=value.__traceback__, object=obj,
      err_msg=None))()
  hook(unraisable(late))  # a read finishing after the loop closed: dropped
  other = RuntimeError('Event loop is closed')  # raised elsewhere: passed on
  hook(unraisable(other))
  hook(unraisable(ValueError('x')))
  assert [u.exc_value for u in seen] == [other, seen[1].exc_value]
  assert isinstance(seen[1].exc_value, ValueError)

  with caplog.at_level(logging.ERROR, logger='asyncio'):
    log = logging.getLogger('asyncio')
    log.error('Task exception was never retrieved\nfuture: <Task coro=<f() defined at '
              f'{os.sep}x{os.sep}orbax{os.sep}y.py:1>>')
    log.error('Task exception was never retrieved\nfuture: <Task coro=<f() defined at /x/y.py>>')
    read = ValueError('OUT_OF_RANGE: Error reading "w/0.0" in OCDBT database at local file "/c/"')
    log.error('Future exception was never retrieved\nfuture: <Future finished exception=%r>',
              read, exc_info=(ValueError, read, None))
    log.error('Future exception was never retrieved\nfuture: <Future finished exception=x>',
              exc_info=(ValueError, ValueError('x'), None))
    log.error('Some other OCDBT error')
  assert [r.getMessage() for r in caplog.records] == [
      'Task exception was never retrieved\nfuture: <Task coro=<f() defined at /x/y.py>>',
      'Future exception was never retrieved\nfuture: <Future finished exception=x>',
      'Some other OCDBT error']


def test_an_unstarted_orbax_read_is_collected_quietly(monkeypatch):
  """The fourth leftover: Orbax's read coroutine collected unawaited warns; only that one is
  ignored, any other unawaited coroutine still warns."""
  import warnings
  monkeypatch.setattr(sys, 'unraisablehook', lambda u: None)  # so the hooks install again
  with warnings.catch_warnings(record=True) as got:
    warnings.simplefilter('always')
    ckpt_lib._quiet_orbax_leftovers()  # pylint: disable=protected-access
    warnings.warn("coroutine '_read_array_index_and_device_put' was never awaited",
                  RuntimeWarning)
    warnings.warn("coroutine 'mine' was never awaited", RuntimeWarning)
  assert [str(w.message) for w in got] == ["coroutine 'mine' was never awaited"]
