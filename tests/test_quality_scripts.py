"""benchmarks/quality_bench.py, quality_table.py and quality_diagnose.py on bad input: a missing
corpus is a reported skip (exit 0, JSON last line says why), a folder without results, a missing
run folder or too few songs for --influence is one line (exit 1)."""

import json
import subprocess
import sys

import numpy as np

from songglm_jax.music import midi
from tests.conftest import REPO
from tests.metrics.helpers import random_set
from tests.train import helpers


def _run(tmp_path, *args):
  env = dict(helpers.subprocess_env(), SONGGLM_BENCH_RESULTS=str(tmp_path / 'results'))
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)


def test_quality_bench_without_the_corpus_reports_a_skip(tmp_path):
  missing = tmp_path / 'no_such_corpus'
  r = _run(tmp_path, 'benchmarks/quality_bench.py', f'--workdir={tmp_path / "w"}',
           f'--config.data.pretrain_source={missing}', f'--config.data.finetune_source={missing}')
  assert r.returncode == 0, r.stderr[-2000:]
  last = json.loads(r.stdout.strip().splitlines()[-1])
  assert 'corpus not found' in last['skipped'] and str(missing) in last['skipped']
  assert not (tmp_path / 'w').exists()  # nothing trained, nothing written
  assert json.loads((tmp_path / 'results' / 'quality_bench.json').read_text()) == last


def test_quality_table_without_results_is_one_line(tmp_path):
  r = _run(tmp_path, 'benchmarks/quality_table.py', str(tmp_path / 'none'))
  assert r.returncode == 1
  assert r.stderr.strip().splitlines() == [f'quality_table: no bench.json under [{str(tmp_path / "none")!r}]']


def _bench(folder, model, steps, generate=None, **more):
  folder.mkdir(parents=True)
  (folder / 'bench.json').write_text(json.dumps({
      'workdir': str(folder.parent.parent), 'tag': folder.name, 'model': model,
      'train_steps': steps, 'generate_options': generate or {}, 'metrics': {'OA_A': 95.0},
      'num_invalid': 0, 'seconds': {'pretrain': 60.0}, 'paper': {'OA_A': 96.83}, **more}))


def test_quality_table_names_a_model_size_schedule_and_stage_dropout_other_than_the_sample_one(
    tmp_path):
  base = dict(field_conditioning='chain', phrase_position=True, note_syllable_stress=False,
              d_model=256, num_layers=4, d_ff=512, dropout_rate=0.1)
  _bench(tmp_path / 'same' / 'quality' / 't', base, {'pretrain': 600, 'finetune': 250},
         train_dropout={'pretrain': 0.1, 'finetune': 0.1})
  _bench(tmp_path / 'small' / 'quality' / 't', dict(base, d_model=192, num_layers=3, d_ff=384),
         {'pretrain': 1120, 'finetune': 466})
  _bench(tmp_path / 'longer' / 'quality' / 't', base, {'pretrain': 600, 'finetune': 500})
  _bench(tmp_path / 'dropout' / 'quality' / 't', base, {'pretrain': 600, 'finetune': 500},
         train_dropout={'pretrain': 0.1, 'finetune': 0.3})
  r = _run(tmp_path, 'benchmarks/quality_table.py', *(str(tmp_path / n) for n in (
      'same', 'small', 'longer', 'dropout')))
  assert r.returncode == 0, r.stderr[-2000:]
  cells = {line.split(' | ')[0].lstrip('| '): line.split(' | ')[1]
           for line in r.stdout.splitlines() if line.startswith('| ') and '/t ' in line}
  assert cells == {'same/t': 'chain + phrase',
                   'small/t': 'chain + phrase; d192 x 3, FF 384; steps 1120 + 466',
                   'longer/t': 'chain + phrase; steps 600 + 500',
                   'dropout/t': 'chain + phrase; steps 600 + 500; fine-tune dropout 0.3'}


def test_quality_table_names_a_top_p_below_one_and_only_then(tmp_path):
  fields = ('bar', 'position', 'duration', 'pitch', 'word_id')
  def options(pitch_top_p):
    return {'temperature': dict.fromkeys(fields, 1.0), 'top_k': dict.fromkeys(fields, 0),
            'top_p': dict(dict.fromkeys(fields, 1.0), pitch=pitch_top_p)}
  _bench(tmp_path / 'whole' / 'quality' / 't', {}, {}, options(1.0))
  _bench(tmp_path / 'nucleus' / 'quality' / 't', {}, {}, options(0.95))
  r = _run(tmp_path, 'benchmarks/quality_table.py', str(tmp_path / 'whole'),
           str(tmp_path / 'nucleus'))
  assert r.returncode == 0, r.stderr[-2000:]
  cells = {line.split(' | ')[0].lstrip('| '): line.split(' | ')[2]
           for line in r.stdout.splitlines() if line.startswith('| ') and '/t ' in line}
  assert cells == {'whole/t': 'T 1.0; k 0', 'nucleus/t': 'T 1.0; k 0; p 1.0 (pitch 0.95)'}


def test_quality_diagnose_bad_run_is_one_line(tmp_path):
  r = _run(tmp_path, 'benchmarks/quality_diagnose.py', f'--run={tmp_path / "none"}')
  assert r.returncode == 1 and r.stdout == ''
  assert r.stderr.strip().splitlines() == [
      f'quality_diagnose: error: --run: not a folder: {tmp_path / "none"}']


def test_quality_diagnose_influence_on_too_few_songs_is_one_line(tmp_path):
  run = tmp_path / 'run'
  for folder in ('reference', 'generated/sample_0'):
    (run / folder).mkdir(parents=True)
    for name, song in random_set(np.random.default_rng(0), 2).items():
      midi.write_midi(song, run / folder / f'{name}.mid')
  r = _run(tmp_path, 'benchmarks/quality_diagnose.py', f'--run={run}', '--influence')
  assert r.returncode == 1
  assert r.stderr.strip().splitlines() == [
      'quality_diagnose: error: oa_influence: no sample set has 3 or more songs with a '
      'reference song']
  assert not (tmp_path / 'results' / 'quality_diagnose.json').exists()  # nothing written
