import json
import subprocess
import sys

from songglm_jax.train import inference
from tests.conftest import REPO
from tests.train import helpers


def _main(*args, timeout=600):
  return subprocess.run([sys.executable, '-m', 'songglm_jax.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)


def test_default_config_prepares_the_embedded_corpus_and_resumes(tmp_path):
  args = ['--config=configs/default.py', f'--workdir={tmp_path}', '--config.data.limit=12',
          '--config.data.workers=1', '--config.stages=prepare']
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


def test_generated_fields_of_the_config_are_the_sampled_columns():
  from songglm_jax import config as config_lib
  from songglm_jax.model import sampling
  assert config_lib.GENERATED_FIELDS == sampling.NOTE_COLUMNS
  assert config_lib.base_config().stages == 'prepare,pretrain,finetune,generate,evaluate'


def test_main_job_runs_every_stage_then_keeps_finished_stages(tmp_path):
  """The `make run` path on a tiny corpus: every stage runs, losses fall, a re-run skips."""
  config = helpers.reference_config()
  config.stages = 'prepare,pretrain,finetune,generate,evaluate'
  config.generate.update(plot=False, num_samples=1)
  config.evaluate.update(num_samples=1, plots=False)
  config.data.pretrain_source = str(helpers.prepared_corpus() / 'songs')
  config.finetune.update(checkpoint_every_steps=6, eval_every_steps=12)
  work = tmp_path / 'work'
  r = helpers.run_main(work, config)
  assert r.returncode == 0, r.stderr[-3000:]
  for line in ('[prepare] pretrain:', '[pretrain] done:', '[finetune] done:'):
    assert line in r.stdout
  for stage in ('pretrain', 'finetune'):
    loss = helpers.losses(work, stage)
    assert sorted(loss) == list(range(1, 13)) and loss[12] < loss[1], (stage, loss)
  assert json.loads((work / 'config.json').read_text())['stages'] == config.stages
  samples = json.loads((work / 'samples' / 'generate.json').read_text())
  assert samples['num_samples'] == 2 and samples['num_invalid'] == 0
  assert samples['stage'] == 'finetune' and samples['step'] == 12
  result = json.loads((work / 'eval' / 'result.json').read_text())
  assert result['num_pairs'] == len(list((work / 'eval' / 'reference').glob('*.mid'))) > 0
  r = helpers.run_main(work, config)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'already prepared' in r.stdout and r.stdout.count('already trained') == 2
  assert 'already generated' in r.stdout and 'already evaluated' in r.stdout
  assert inference.load_for_inference(str(work)).stage == 'finetune'


def test_console_keeps_project_info_and_every_warning_but_drops_library_info():
  import logging
  import os
  from songglm_jax import cli
  keep = cli._ProjectInfoOnly()  # pylint: disable=protected-access
  record = lambda level, path: logging.LogRecord('absl', level, path, 1, 'm', (), None)
  ours = os.path.join(os.path.dirname(cli.__file__), 'train', 'loop.py')
  theirs = '/site-packages/orbax/checkpoint/handler.py'
  assert keep.filter(record(logging.INFO, ours))
  assert not keep.filter(record(logging.INFO, theirs))
  assert keep.filter(record(logging.WARNING, theirs))


def test_bad_training_settings_fail_before_any_stage_runs(tmp_path):
  """learning_rate=nan, an accumulation that does not divide the batch and a stage dropout
  outside [0, 1): one line naming the field, before prepare (nothing is written) rather than
  seconds into training."""
  import re
  import time
  for flag, field in (('--config.finetune.learning_rate=nan', 'config.finetune.learning_rate=nan'),
                      ('--config.pretrain.grad_accum_steps=3',
                       'config.pretrain.grad_accum_steps=3 does not divide'),
                      ('--config.finetune.dropout_rate=1.5',
                       'config.finetune.dropout_rate=1.5: expected a number in [0, 1)')):
    work = tmp_path / 'work'
    t0 = time.perf_counter()
    r = _main('--config=configs/default.py', f'--workdir={work}', flag,
              '--config.pretrain.batch_size=4')
    problems = [x for x in r.stderr.strip().splitlines() if not re.match(r'I\d{4} ', x)]
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert len(problems) == 1 and field in problems[0], problems
    assert not work.exists() and time.perf_counter() - t0 < 60
