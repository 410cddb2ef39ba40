"""launch/: the shell wrappers parse, print their usage, and local.sh really starts a 2-process run."""

import http.server
import json
import socket
import threading
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


def _glibc_tunables():
  value = (REPO / 'launch' / 'glibc_tunables').read_text().strip()
  assert value.startswith('glibc.malloc.') and '\n' not in value
  return value


def test_malloc_tuning_has_one_definition():
  files = [REPO / 'Makefile', *(REPO / 'launch').iterdir(), *(REPO / 'benchmarks').glob('*.py'),
           *(REPO / 'songglm_jax').rglob('*.py')]
  holders = [f.relative_to(REPO).as_posix() for f in files
             if f.is_file() and 'glibc.malloc.' in f.read_text(errors='replace')]
  assert holders == ['launch/glibc_tunables']


def test_makefile_local_sh_and_benchmarks_use_the_one_definition(tmp_path):
  value = _glibc_tunables()
  env = {k: v for k, v in helpers.subprocess_env().items() if k != 'GLIBC_TUNABLES'}
  r = subprocess.run(['make', '-n', '-W', 'requirements.txt', 'run', 'VENV=/nonexistent'],
                     cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
  assert f'GLIBC_TUNABLES={value} ' in r.stdout, r.stdout + r.stderr
  fake = tmp_path / 'python'  # a stand-in interpreter that prints what it was given
  fake.write_text('#!/usr/bin/env bash\necho "GLIBC_TUNABLES=$GLIBC_TUNABLES"\n')
  fake.chmod(0o755)
  r = subprocess.run(['bash', 'launch/local.sh', 'configs/default.py', str(tmp_path / 'w')],
                     cwd=REPO, env=dict(env, PYTHON=str(fake)), capture_output=True, text=True,
                     timeout=60)
  assert r.returncode == 0 and r.stdout.strip() == f'GLIBC_TUNABLES={value}', r.stderr
  probe = tmp_path / 'probe.py'  # a benchmark's start: re-executes itself unless --plain
  probe.write_text(f'import os, sys\nsys.path.insert(0, {str(REPO / "benchmarks")!r})\n'
                   'import common\ncommon.tuned_malloc(plain="--plain" in sys.argv)\n'
                   'print(os.environ.get("GLIBC_TUNABLES", "unset"))\n')
  for args, want in (([], value), (['--plain'], 'unset')):
    r = subprocess.run([sys.executable, str(probe), *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == want, r.stderr


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


# Dry runs: the launchers under DRY_RUN=1, with the environment each process of a SLURM job or a
# Cloud TPU VM slice would have simulated, print one JSON line per process (main --dry_run).

def _dry_run_lines(stdout: str) -> list[dict]:
  return [json.loads(l) for l in stdout.splitlines() if l.startswith('{')]


def _check_one_run(lines, n, coordinator, flag):
  assert len(lines) == n
  assert sorted(l['process_id'] for l in lines) == list(range(n))  # distinct ids
  for l in lines:
    assert l['dry_run'] and l['num_processes'] == n and l['coordinator_address'] == coordinator
    assert l['command'] == lines[0]['command'] and flag in l['command']
    assert '--dry_run' not in l['command']
    assert l['config_file'] == 'configs/default.py'
  assert len({l['config_sha256'] for l in lines}) == 1


def _env(tmp_path, **extra):
  env = helpers.subprocess_env()
  for k in list(env):
    if k.lower().endswith('_proxy') or k.startswith(('SLURM', 'TPU_', 'GCE_', 'MEGASCALE')):
      del env[k]
  env.update(PATH=f'{tmp_path / "bin"}:{env["PATH"]}', NO_PROXY='127.0.0.1,localhost',
             PYTHON=sys.executable, DRY_RUN='1', **extra)
  return env


def _write_tool(tmp_path, name, text):
  (tmp_path / 'bin').mkdir(exist_ok=True)
  tool = tmp_path / 'bin' / name
  tool.write_text(text)
  tool.chmod(0o755)


def test_slurm_dry_run_every_task_same_config_distinct_id_same_coordinator(tmp_path):
  # srun as SLURM runs a step: every task with its SLURM_PROCID / SLURM_LOCALID / SLURM_NODEID
  # and the step's node list, on top of the job's variables sbatch set.
  _write_tool(tmp_path, 'srun', '#!/usr/bin/env bash\n'
              'while [[ $1 == --* ]]; do shift; done\n'
              'per=$SLURM_NTASKS_PER_NODE\n'
              'for ((i = 0; i < SLURM_NTASKS; i++)); do\n'
              '  SLURM_PROCID=$i SLURM_LOCALID=$((i % per)) SLURM_NODEID=$((i / per)) '
              'SLURM_STEP_NODELIST=$SLURM_JOB_NODELIST SLURM_STEP_NUM_NODES=$SLURM_NNODES '
              'SLURM_STEP_NUM_TASKS=$SLURM_NTASKS "$@" &\n'
              'done\nwait\n')
  env = _env(tmp_path, SLURM_JOB_ID='4242', SLURM_JOB_NODELIST='gpu[07-08]', SLURM_NNODES='2',
             SLURM_NTASKS='4', SLURM_NTASKS_PER_NODE='2', SLURM_SUBMIT_DIR=str(REPO))
  r = subprocess.run(['bash', str(REPO / 'launch' / 'slurm.sbatch'), 'configs/default.py',
                      str(tmp_path / 'run'), '--config.seed=7'], env=env, cwd=tmp_path,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'dry run: srun --kill-on-bad-exit=1' in r.stdout
  # JAX's rule: the first node of the step, port 61440 + job id mod 4096.
  _check_one_run(_dry_run_lines(r.stdout), 4, f'gpu07:{61440 + 4242 % 4096}', '--config.seed=7')
  assert not (tmp_path / 'run').exists()  # nothing started, nothing written


class _Metadata(http.server.BaseHTTPRequestHandler):
  """One TPU VM worker's metadata server (the attributes JAX reads)."""
  worker = 0

  def do_GET(self):  # pylint: disable=invalid-name
    values = {'agent-worker-number': str(self.worker),
              'worker-network-endpoints': ','.join(f'w{i}:{i}:10.1.0.{5 + i}' for i in range(4)),
              'tpu-env': "ACCELERATOR_TYPE: 'v5litepod-16'\n"}
    key = self.path.rsplit('/', 1)[-1]
    body = values.get(key, '').encode()
    self.send_response(200 if key in values else 404)
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


def test_tpu_vm_dry_run_every_worker_same_config_distinct_id_same_coordinator(tmp_path):
  # gcloud ... --worker=all runs the command on each of 4 workers, each seeing its own
  # metadata server (GCE_METADATA_IP), as a v5e-16 slice's hosts do.
  servers = []
  for i in range(4):
    handler = type(f'Worker{i}', (_Metadata,), {'worker': i})
    server = http.server.HTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
  try:
    ports = ' '.join(str(s.server_address[1]) for s in servers)
    _write_tool(tmp_path, 'gcloud', '#!/usr/bin/env bash\n'
                'for a in "$@"; do case $a in --command=*) cmd=${a#--command=};; esac; done\n'
                f'for port in {ports}; do GCE_METADATA_IP=127.0.0.1:$port bash -c "$cmd" & done\n'
                'wait\n')
    env = _env(tmp_path, TPU='t', ZONE='z', REPO=str(REPO))
    r = subprocess.run(['bash', str(REPO / 'launch' / 'tpu_vm.sh'), 'configs/default.py',
                        str(tmp_path / 'run'), '--config.seed=7'], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
  finally:
    for s in servers:
      s.shutdown()
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'dry run: on every worker: cd ' in r.stdout
  _check_one_run(_dry_run_lines(r.stdout), 4, '10.1.0.5:8482', '--config.seed=7')
  assert not (tmp_path / 'run').exists()


def test_dry_run_single_process_and_explicit_flags(tmp_path):
  env = _env(tmp_path)
  base = [sys.executable, '-m', 'songglm_jax.main', '--config=configs/default.py',
          f'--workdir={tmp_path / "run"}', '--dry_run']
  r = subprocess.run(base, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
  (line,) = _dry_run_lines(r.stdout)
  assert line['cluster'] == 'single' and line['num_processes'] == 1
  r = subprocess.run(base + ['--coordinator_address=h:1', '--num_processes=3',
                             '--process_id=2', '--config.seed=5'], env=env, cwd=REPO,
                     capture_output=True, text=True, timeout=120)
  (other,) = _dry_run_lines(r.stdout)
  assert (other['cluster'], other['coordinator_address'], other['process_id']) == ('explicit',
                                                                                   'h:1', 2)
  assert other['config_sha256'] != line['config_sha256']  # the seed is in the fingerprint
  assert not (tmp_path / 'run').exists()
