"""launch/: the shell wrappers parse, print their usage, and local.sh really starts a 2-process run."""

import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.train import helpers

SCRIPTS = ('local.sh', 'slurm.sbatch', 'tpu_vm.sh')


@pytest.mark.parametrize('name', SCRIPTS)
def test_script_is_valid_bash(name):
  r = subprocess.run(['bash', '-n', str(REPO / 'launch' / name)], capture_output=True, text=True)
  assert r.returncode == 0, r.stderr


def test_local_without_arguments_prints_usage():
  r = subprocess.run(['bash', str(REPO / 'launch' / 'local.sh')], capture_output=True, text=True)
  assert r.returncode == 2 and 'launch/local.sh CONFIG WORKDIR' in r.stderr


def test_local_two_processes_train_one_run(tmp_path):
  config = helpers.tiny_config(num_train_steps=2, checkpoint_every_steps=2, eval_every_steps=0)
  config.stages = 'pretrain'
  work = helpers.workdir_with_data(tmp_path)
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  env = dict(helpers.subprocess_env(), NUM_PROCESSES='2', PORT=str(port), PYTHON=sys.executable)
  r = subprocess.run(['bash', 'launch/local.sh', 'configs/default.py', str(work),
                      *helpers.overrides(config)], cwd=REPO, env=env, capture_output=True,
                     text=True, timeout=300)
  assert r.returncode == 0, r.stdout[-3000:]
  assert 'over 2 process(es)' in r.stdout
  assert sorted(helpers.losses(work)) == [1, 2]
  assert (work / 'logs' / 'process_1.txt').is_file()
