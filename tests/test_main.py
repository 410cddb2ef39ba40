import json
import subprocess
import sys

from tests.conftest import REPO


def _main(*args, timeout=600):
  return subprocess.run([sys.executable, '-m', 'songglm_jax.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)


def test_default_config_prepares_the_embedded_corpus_and_resumes(tmp_path):
  args = ['--config=configs/default.py', f'--workdir={tmp_path}', '--config.data.limit=12',
          '--config.data.workers=1']
  r = _main(*args)
  assert r.returncode == 0, r.stderr[-2000:]
  assert '[prepare] pretrain:' in r.stdout
  report = json.loads((tmp_path / 'data' / 'pretrain' / 'report.json').read_text())
  assert report['files'] == 12 and report['songs'] >= 10
  config = json.loads((tmp_path / 'config.json').read_text())
  assert config['data']['limit'] == 12
  r = _main(*args)
  assert r.returncode == 0 and 'already prepared' in r.stdout


def test_unknown_config_field_is_one_line_error(tmp_path):
  r = _main('--config=configs/default.py', f'--workdir={tmp_path}', '--config.data.nope=1')
  assert r.returncode != 0
  assert len(r.stderr.strip().splitlines()) == 1 and 'nope' in r.stderr


def test_unknown_stage_is_one_line_error(tmp_path):
  r = _main('--config=configs/default.py', f'--workdir={tmp_path}', '--config.stages=prepare,fly')
  assert r.returncode == 1
  assert len(r.stderr.strip().splitlines()) == 1 and 'fly' in r.stderr


def test_missing_config_file_is_one_line_error(tmp_path):
  r = _main('--config=configs/no_such_config.py', f'--workdir={tmp_path}')
  assert r.returncode == 1
  assert len(r.stderr.strip().splitlines()) == 1 and 'no_such_config' in r.stderr
