"""The main job's evaluate stage (songglm_jax/job/eval_stage.py) on the training tests' tiny corpus."""

import json

from songglm_jax.job import eval_stage, stages
from songglm_jax.music import io as song_io
from tests.train import helpers


def test_file_names_are_safe_and_keep_the_record_apart():
  assert eval_stage.file_name('bach/bwv1.6.mxl|v2#0') == 'bach_bwv1.6.mxl_v2_0'
  assert eval_stage.file_name('///') == 'song'
  assert eval_stage.file_name('../shared/finetune/1.mid') == 'shared_finetune_1.mid'


def test_stage_sings_validation_lyrics_evaluates_then_keeps_the_result(tmp_path, capsys):
  work = helpers.workdir_with_data(tmp_path)
  config = helpers.tiny_config(num_train_steps=2, checkpoint_every_steps=2, eval_every_steps=0)
  config.data.pretrain_source = str(helpers.prepared_corpus() / 'songs')
  config.stages = 'pretrain,evaluate'
  config.generate.update(plot=False)
  config.evaluate.update(num_songs=3, num_samples=2, plots=False)
  stages.run(config, str(work))
  out = work / 'eval'
  refs = sorted(p.stem for p in (out / 'reference').glob('*.mid'))
  recs = eval_stage.valid_records(work / 'data' / 'pretrain', 3)
  assert refs == sorted(eval_stage.file_name(r.name) for r in recs)
  for name in refs:  # the songs come back with their own syllables (no <unk>)
    (song,), _ = song_io.read_songs(out / 'reference' / f'{name}.mid')
    (again,), _ = song_io.read_songs(out / 'generated' / 'sample_1' / f'{name}.mid')
    assert '<unk>' not in song.syllables and again.syllables == song.syllables
  result = json.loads((out / 'result.json').read_text())
  assert result['num_pairs'] == 6 and result['num_sample_sets'] == 2
  assert 0.0 <= result['OA_PCH'] <= 1.0 and result['MD'] > 0
  assert result['evaluate_stage']['step'] == 2
  stamp = (out / 'result.json').stat().st_mtime_ns
  capsys.readouterr()
  stages.run(config, str(work))
  assert 'already evaluated' in capsys.readouterr().out
  assert (out / 'result.json').stat().st_mtime_ns == stamp
  # A result of before the sample std (no std_ddof in its stamp) is evaluated again.
  assert result['std_ddof'] == 1 and result['evaluate_stage']['std_ddof'] == 1
  del result['evaluate_stage']['std_ddof']
  (out / 'result.json').write_text(json.dumps(result))
  stages.run(config, str(work))
  assert 'already evaluated' not in capsys.readouterr().out
  assert json.loads((out / 'result.json').read_text())['evaluate_stage']['std_ddof'] == 1
