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


def _tpu_vm(tmp_path, *args, repo=None):
  """Run tpu_vm.sh with a stand-in gcloud that runs --command in bash with HOME=remote (as a
  worker would) and a stand-in python there that records its arguments and folder."""
  local, remote = tmp_path / 'local home', tmp_path / 'remote home'
  bin_dir = tmp_path / 'bin'
  for d in (local, bin_dir):
    d.mkdir(exist_ok=True)
  gcloud = bin_dir / 'gcloud'
  gcloud.write_text('#!/usr/bin/env bash\nfor a in "$@"; do case $a in --command=*) '
                    'cmd=${a#--command=};; esac; done\n'
                    f'cd "{remote}" && HOME="{remote}" exec bash -c "$cmd"\n')
  gcloud.chmod(0o755)
  record = tmp_path / 'args.txt'
  env = {'PATH': f'{bin_dir}:/usr/bin:/bin', 'HOME': str(local), 'TPU': 't', 'ZONE': 'z'}
  if repo is not None:
    env['REPO'] = repo
  for where in (remote / 'songglm_jax', remote / 'my repo'):
    python = where / '.venv' / 'bin' / 'python'
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(f'#!/usr/bin/env bash\n{{ pwd; printf "%s\\n" "$@"; }} > "{record}"\n')
    python.chmod(0o755)
  r = subprocess.run(['bash', str(REPO / 'launch' / 'tpu_vm.sh'), *args], cwd=tmp_path, env=env,
                     capture_output=True, text=True, timeout=60)
  assert r.returncode == 0, r.stderr
  lines = record.read_text().splitlines()
  return lines[0], lines[1:]


def test_tpu_vm_passes_every_argument_as_one_word_and_runs_nothing(tmp_path):
  config, workdir = 'configs/my config.py', '/shared/run $(touch PWNED1); touch PWNED2 "x"'
  flag = "--config.generate.lyrics=it's `touch PWNED3` & more"
  folder, args = _tpu_vm(tmp_path, config, workdir, flag)
  assert args == ['-m', 'songglm_jax.main', f'--config={config}', f'--workdir={workdir}', flag]
  assert folder == str(tmp_path / 'remote home' / 'songglm_jax')  # ~ of the worker, not ours
  assert not list(tmp_path.rglob('PWNED*'))


def test_tpu_vm_repo_under_the_workers_home_and_no_extra_flags(tmp_path):
  folder, args = _tpu_vm(tmp_path, 'configs/default.py', '/w', repo='~/my repo')
  assert folder == str(tmp_path / 'remote home' / 'my repo')
  assert args == ['-m', 'songglm_jax.main', '--config=configs/default.py', '--workdir=/w']
