"""Bad input to the programs (issue 13): each run ends with a non-zero exit and exactly one line
on stderr naming the problem, no traceback, and leaves nothing that a later run would trust;
inputs that used to give wrong results without an error.

(Damaged checkpoints: tests/train/test_corrupt_checkpoint.py.)
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from songglm_jax import atomic
from songglm_jax.inference import generate_run
from songglm_jax.job import stages
from songglm_jax.data import records
from songglm_jax.metrics import evaluation
from songglm_jax.music import midi
from tests.conftest import REPO
from tests.metrics.helpers import random_set
from tests.train import helpers


def _run(program: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', f'songglm_jax.{program}', *args], cwd=REPO,
                        env=helpers.subprocess_env(), capture_output=True, text=True, timeout=300)


def one_line_error(r: subprocess.CompletedProcess, program: str, *needles: str) -> str:
  """Assert exit 1, no traceback, and one line on stderr (the project's INFO log lines aside)
  that is the program's error and contains every needle; returns it."""
  assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
  assert 'Traceback' not in r.stderr, r.stderr[-3000:]
  lines = [x for x in r.stderr.strip().splitlines() if not re.match(r'I\d{4} ', x)]
  assert len(lines) == 1 and lines[0].startswith(f'songglm_jax.{program}: error: '), lines
  for needle in needles:
    assert needle in lines[0], (needle, lines[0])
  return lines[0]


@pytest.fixture(scope='module')
def songs() -> pathlib.Path:
  """The training tests' 28 random songs (MIDI)."""
  return helpers.prepared_corpus() / 'songs'


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> pathlib.Path:
  """A workdir pre-trained for 2 steps (config.json written as by the main job)."""
  work = helpers.workdir_with_data(tmp_path_factory.mktemp('trained'))
  config = helpers.tiny_config(num_train_steps=2, checkpoint_every_steps=2, eval_every_steps=0)
  config.stages = 'pretrain'
  stages.run(config, str(work))
  return work


@pytest.fixture
def a_file(tmp_path) -> pathlib.Path:
  path = tmp_path / 'a_file'
  path.write_text('keep me\n')
  return path


# ---- output paths: checked before the work, OSError as one line ------------------------------

def test_prepare_output_that_is_a_file(songs, a_file):
  r = _run('prepare', f'--source={songs}', f'--output={a_file}', '--workers=1')
  one_line_error(r, 'prepare', f'output folder {a_file}: is not a folder')
  assert a_file.read_text() == 'keep me\n'


def test_prepare_output_under_a_file(songs, a_file):
  r = _run('prepare', f'--source={songs}', f'--output={a_file / "out"}', '--workers=1')
  one_line_error(r, 'prepare', f'output folder {a_file / "out"}: {a_file} is not a folder')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_prepare_output_in_a_read_only_folder(songs, tmp_path):
  folder = tmp_path / 'ro'
  folder.mkdir()
  folder.chmod(0o555)
  try:
    r = _run('prepare', f'--source={songs}', f'--output={folder / "out"}', '--workers=1')
  finally:
    folder.chmod(0o755)
  one_line_error(r, 'prepare', f'{folder} is not writable')
  assert not any(folder.iterdir())


def test_a_record_file_that_cannot_be_written_is_an_os_error_naming_it(tmp_path, monkeypatch):
  # array_record reports a file it cannot open with a RuntimeError at the first write
  monkeypatch.setattr(atomic, 'temporary_path', lambda p: tmp_path / 'gone' / 'x.tmp')
  target = tmp_path / 'train.array_record'
  with pytest.raises(OSError, match=f'^{re.escape(str(target))}: cannot write \\(open'):
    records.write_records(target, [])
  assert not target.exists()


def test_an_os_error_of_any_program_is_one_line_naming_the_path(tmp_path):
  code = ('from songglm_jax import cli\n'
          'def main(argv):\n'
          f'  open({str(tmp_path / "no" / "such" / "file")!r}, "w")\n'
          'cli.run(main)\n')
  r = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=helpers.subprocess_env(),
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 1 and 'Traceback' not in r.stderr
  assert r.stderr.strip() == (f'-c: error: {tmp_path / "no" / "such" / "file"}: '
                              'No such file or directory')


@pytest.fixture(scope='module')
def eval_dirs(tmp_path_factory) -> pathlib.Path:
  """gen/sample_0 and gen/sample_1 (3 songs each; sample_1/s2 unreadable), reference (3)."""
  root = tmp_path_factory.mktemp('eval')
  rng = np.random.default_rng(0)
  ref = random_set(rng, 3)
  for folder in ('reference', 'gen/sample_0', 'gen/sample_1'):
    (root / folder).mkdir(parents=True)
    for name, song in ref.items():
      midi.write_midi(song, root / folder / f'{name}.mid')
  (root / 'gen' / 'sample_1' / 's2.mid').write_bytes(b'not a midi file')
  return root


def _evaluate(root: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
  return _run('evaluate', f'--generated={root / "gen"}', f'--reference={root / "reference"}',
              '--workers=1', *args)


def test_evaluate_output_that_is_a_folder(eval_dirs, tmp_path):
  one_line_error(_evaluate(eval_dirs, f'--output={tmp_path}'), 'evaluate',
                 f'--output {tmp_path}: is a folder; expected a file name')


def test_evaluate_output_under_a_file(eval_dirs, a_file):
  one_line_error(_evaluate(eval_dirs, f'--output={a_file / "result.json"}'), 'evaluate',
                 f'--output {a_file / "result.json"}: {a_file} is not a folder')


def test_evaluate_plots_that_is_a_file(eval_dirs, a_file, tmp_path):
  r = _evaluate(eval_dirs, f'--output={tmp_path / "r.json"}', f'--plots={a_file}')
  one_line_error(r, 'evaluate', f'--plots {a_file}: is not a folder')
  assert not (tmp_path / 'r.json').exists()


def test_generate_output_that_is_a_file(trained, a_file):
  r = _run('generate', f'--workdir={trained}', f'--output={a_file}', '--lyrics=la la la')
  one_line_error(r, 'generate', f'output folder {a_file}: is not a folder')
  assert 'generate:' not in r.stdout  # refused before loading and decoding


def test_main_workdir_that_is_a_file(a_file):
  r = _run('main', '--config=configs/default.py', f'--workdir={a_file}',
           '--config.stages=prepare')
  one_line_error(r, 'main', f'--workdir {a_file}: is not a folder')


# ---- values out of range ----------------------------------------------------------------------

@pytest.mark.parametrize('flag, needle', [
    ('--seed=99999999999999999999', 'generate.seed: got 99999999999999999999, expected a whole '
     'number in 0 .. 4294967295'),
    ('--temperature=nan', 'generate.temperature: got '),
    ('--temperature=pitch=inf', 'expected finite numbers'),
    ('--top_p=pitch=1.5', 'generate.top_p: got '),  # the sample config samples pitch in top-p
    ('--top_p=0', 'expected values in (0, 1]'),
    ('--top_k=bar=2.5', None),  # an int flag value that does not parse
])
def test_generate_sampling_values_out_of_range(trained, tmp_path, flag, needle):
  r = _run('generate', f'--workdir={trained}', f'--output={tmp_path / "out"}', '--lyrics=la la',
           flag)
  one_line_error(r, 'generate', *([needle] if needle else []))
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('steps', ['0', '-1'])
def test_main_with_no_steps_to_train(trained, tmp_path, steps):
  work = tmp_path / 'work'
  shutil.copytree(trained, work)
  config = helpers.tiny_config(num_train_steps=2, checkpoint_every_steps=2, eval_every_steps=0)
  config.stages = 'pretrain'
  r = helpers.run_main(work, config, extra=[f'--config.pretrain.num_train_steps={steps}'])
  one_line_error(r, 'main', f'config.pretrain.num_train_steps={steps}: expected a whole number')
  assert 'already trained' not in r.stdout


# ---- stale output and reused data --------------------------------------------------------------

def test_generate_replaces_an_earlier_runs_samples(trained, songs, tmp_path, capsys):
  out = tmp_path / 'generated'
  sing = lambda n, **kw: generate_run.run(str(trained), out, songs_from=str(songs),
                                          resume=True, num_samples=n, **kw)
  sing(2)
  assert sorted(p.name for p in out.iterdir()) == ['generate.json', 'sample_0', 'sample_1']
  (out / 'sample_0' / 'sub').mkdir()
  (out / 'sample_0' / 'sub' / 'old_song.mid').write_bytes(b'')  # songs of other lyrics
  sing(1)  # a different sample count into the same folder (as the eval stage may)
  assert sorted(p.name for p in out.iterdir()) == ['generate.json', 'sample_0']
  assert not (out / 'sample_0' / 'sub').exists()
  result = evaluation.evaluate_dirs(out, songs)
  assert result['num_sample_sets'] == 1 and result['num_pairs'] == len(list(songs.glob('*.mid')))
  capsys.readouterr()
  sing(1)  # the same run again: kept
  assert 'already generated' in capsys.readouterr().out


def test_generate_refuses_a_sample_folder_holding_other_files(trained, tmp_path):
  out = tmp_path / 'generated'
  (out / 'sample_3').mkdir(parents=True)
  (out / 'sample_3' / 'notes.txt').write_text('mine')
  with pytest.raises(ValueError, match=r'sample_3/notes.txt: not written by generate'):
    generate_run.run(str(trained), out, text='la la', num_samples=1)
  assert (out / 'sample_3' / 'notes.txt').read_text() == 'mine'


def _prepare(work: pathlib.Path, source: pathlib.Path) -> dict:
  config = helpers.tiny_config()
  config.data.pretrain_source = str(source)
  return stages.run_prepare(config, work)['pretrain']


def _some_songs(songs: pathlib.Path, folder: pathlib.Path, count: int) -> pathlib.Path:
  folder.mkdir(parents=True)
  for path in sorted(songs.glob('*.mid'))[:count]:
    shutil.copy2(path, folder / path.name)
  return folder


def test_prepare_stage_prepares_again_for_another_source_of_the_same_name(songs, tmp_path,
                                                                          capsys):
  work = tmp_path / 'work'
  first = _prepare(work, _some_songs(songs, tmp_path / 'y' / 'songs', 8))
  assert first['files'] == 8
  assert _prepare(work, tmp_path / 'y' / 'songs')['files'] == 8
  assert 'already prepared' in capsys.readouterr().out
  second = _prepare(work, _some_songs(songs, tmp_path / 'x' / 'songs', 20))  # same basename
  assert second['files'] == 20 and 'prepared from other input' in capsys.readouterr().out
  report = json.loads((work / 'data' / 'pretrain' / 'report.json').read_text())
  assert report['source_path'] == str((tmp_path / 'x' / 'songs').resolve())


def test_prepare_stage_prepares_again_when_a_source_file_changes(songs, tmp_path, capsys):
  work = tmp_path / 'work'
  src = _some_songs(songs, tmp_path / 'songs', 8)
  _prepare(work, src)
  victim = sorted(src.iterdir())[0]
  shutil.copy2(sorted(songs.glob('*.mid'))[-1], victim)  # other content, same name
  capsys.readouterr()
  _prepare(work, src)
  assert 'prepared from other input' in capsys.readouterr().out


def test_prepare_stage_keeps_a_dataset_whose_report_predates_the_fingerprint(songs, tmp_path,
                                                                              capsys):
  work = tmp_path / 'work'
  src = _some_songs(songs, tmp_path / 'songs', 8)
  _prepare(work, src)
  path = work / 'data' / 'pretrain' / 'report.json'
  report = json.loads(path.read_text())
  del report['source_path'], report['source_fingerprint']  # as written before they existed
  path.write_text(json.dumps(report))
  capsys.readouterr()
  _prepare(work, src)
  assert 'already prepared' in capsys.readouterr().out
  _some_songs(songs, tmp_path / 'other' / 'songs', 12)  # same folder name, other file count
  _prepare(work, tmp_path / 'other' / 'songs')
  assert 'prepared from other input' in capsys.readouterr().out


# ---- evaluate: missing generated songs said out loud; --strict -------------------------------

def test_evaluate_reports_missing_generated_songs_and_strict_refuses(eval_dirs, tmp_path):
  out = tmp_path / 'result.json'
  r = _evaluate(eval_dirs, f'--output={out}')
  assert r.returncode == 0, r.stderr[-3000:]
  warning = ('1 of 6 generated songs are missing or unreadable (sample_1/s2: not_midi); the '
             'metrics cover only the 5 pairs found')
  assert r.stdout.splitlines()[0] == f'WARNING: {warning}'
  result = json.loads(out.read_text())
  assert result['warning'] == warning
  assert result['missing_generated'] == [{'set': 'sample_1', 'name': 's2', 'reason': 'not_midi'}]
  out.unlink()
  r = _evaluate(eval_dirs, f'--output={out}', '--strict', f'--plots={tmp_path / "plots"}')
  one_line_error(r, 'evaluate', f'--strict: {warning}; nothing written')
  assert not out.exists() and not (tmp_path / 'plots').exists()


def test_evaluate_without_missing_songs_has_no_warning(eval_dirs, tmp_path):
  gen = tmp_path / 'gen'
  shutil.copytree(eval_dirs / 'gen' / 'sample_0', gen / 'sample_0')
  (gen / 'sample_0' / 'extra.mid').write_bytes(b'junk')  # unreadable, but of no pair
  result = evaluation.evaluate_dirs(gen, eval_dirs / 'reference', strict=True)
  assert result['missing_generated'] == [] and 'warning' not in result
