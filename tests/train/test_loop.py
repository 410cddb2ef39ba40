"""The training loop in-process: smoke run and resume, logs, skip when finished, refusals,
non-finite stop, fine-tuning from the pre-trained parameters."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from songglm_jax.job import stages
from songglm_jax.train import checkpoint as ckpt_lib
from songglm_jax.train import inference as inference_lib
from songglm_jax.train import loop, warm_start
from tests.train import helpers


def test_smoke_train_then_resume_from_step_two(tmp_path):
  config = helpers.reference_config()
  config.pretrain.update(checkpoint_every_steps=2, keep_checkpoints=10, eval_every_steps=0)
  work = helpers.workdir_with_data(tmp_path)
  first = loop.run_stage(config, work, 'pretrain')
  assert first['step'] == 12 and first['last_loss'] < first['first_loss'] - 0.5
  want = helpers.losses(work)
  # As if the run had died after saving step 2: the same call resumes there.
  for step in range(4, 13, 2):
    shutil.rmtree(work / 'pretrain' / 'checkpoints' / str(step))
  second = loop.run_stage(config, work, 'pretrain')
  assert second['first_step'] == 3
  assert helpers.losses(work) == want and sorted(want) == list(range(1, 13))


def test_logs_metrics_events_and_stage_files():
  work = helpers.reference_run()
  records = [json.loads(l) for l in (work / 'pretrain' / 'metrics.jsonl').read_text().splitlines()]
  train = [r for r in records if 'loss' in r]
  evals = [r for r in records if 'eval_loss' in r]
  assert [r['step'] for r in train] == list(range(1, 13))
  assert [r['step'] for r in evals] == [4, 8, 12]
  fields = helpers.reference_config().model.target_fields.split(',')
  for key in ['loss', 'learning_rate', 'tokens_per_s', 'tokens', 'grad_norm'] + [
      f'loss_{f}' for f in fields] + [f'accuracy_{f}' for f in fields]:
    assert all(key in r for r in train), key
  assert all(0 < r['tokens'] <= 8 * 128 and r['tokens_per_s'] > 0 for r in train)
  assert all(f'eval_loss_{f}' in evals[0] for f in fields)
  assert evals[-1]['eval_loss'] < evals[0]['eval_loss']
  assert list((work / 'pretrain').glob('events.out.tfevents.*'))
  saved = json.loads((work / 'pretrain' / 'config.json').read_text())
  assert saved['pretrain']['num_train_steps'] == 12
  assert (work / 'pretrain' / 'vocab.json').read_text() == (
      work / 'data' / 'pretrain' / 'vocab.json').read_text()
  assert ckpt_lib.Checkpoints(work / 'pretrain' / 'checkpoints', read_only=True
                              ).all_steps() == [9, 12]  # keep_checkpoints=2


def test_finished_stage_is_skipped(capsys):
  work = helpers.reference_run()
  out = loop.run_stage(helpers.reference_config(), work, 'pretrain')
  assert out['skipped'] and 'already trained' in capsys.readouterr().out


def test_resuming_under_another_config_is_refused(tmp_path):
  work = tmp_path / 'work'
  shutil.copytree(helpers.reference_run(), work)
  shutil.rmtree(work / 'pretrain' / 'checkpoints' / '12')
  config = helpers.reference_config()
  config.pretrain.learning_rate = 1e-2
  config.pretrain.log_every_steps = 5  # allowed to change
  with pytest.raises(ValueError, match='pretrain.learning_rate'):
    loop.run_stage(config, work, 'pretrain')


def test_a_stage_written_before_later_fields_existed_is_reused(tmp_path, capsys):
  work = tmp_path / 'work'
  shutil.copytree(helpers.reference_run(), work)
  path = work / 'pretrain' / 'config.json'
  old = json.loads(path.read_text())
  del old['model']['field_conditioning'], old['pipeline']['finetune_mask']
  del old['data']['records_per_shard']  # read as 0 (one file per split): free, data unchanged
  del old['pretrain']['dropout_rate']  # read as -1: the model's rate, as before the field
  path.write_text(json.dumps(old))
  config = helpers.reference_config()
  assert loop.run_stage(config, work, 'pretrain')['skipped']
  config.model.field_conditioning = 'chain'  # not what that stage was trained with
  with pytest.raises(ValueError, match='model.field_conditioning'):
    loop.run_stage(config, work, 'pretrain')


def test_batch_that_cannot_be_split_is_a_clear_error(tmp_path):
  config = helpers.tiny_config(grad_accum_steps=3)
  with pytest.raises(ValueError, match='grad_accum_steps=3'):
    loop.run_stage(config, helpers.workdir_with_data(tmp_path), 'pretrain')


def test_accumulation_that_does_not_divide_the_batch_blames_the_accumulation(tmp_path):
  config = helpers.tiny_config(grad_accum_steps=3, batch_size=4)
  for check in (lambda: loop.check_stage_config(config, 'pretrain'),
                lambda: loop.run_stage(config, helpers.workdir_with_data(tmp_path), 'pretrain')):
    with pytest.raises(ValueError) as e:
      check()
    assert str(e.value).startswith('config.pretrain.grad_accum_steps=3 does not divide '
                                   'config.pretrain.batch_size=4')
    assert 'mesh' not in str(e.value)


def test_a_stage_trains_with_its_own_dropout_rate(tmp_path):
  """config.<stage>.dropout_rate replaces model.dropout_rate while that stage trains (-1 keeps
  the model's): the losses are those of a model configured with the stage's rate."""
  def run(name, model_rate, stage_rate):
    config = helpers.tiny_config(num_train_steps=3, checkpoint_every_steps=3, eval_every_steps=0,
                                 dropout_rate=stage_rate)
    config.model.dropout_rate = model_rate
    work = helpers.workdir_with_data(tmp_path / name)
    loop.run_stage(config, work, 'pretrain')
    return helpers.losses(work)
  none = run('none', 0.0, -1.0)
  half = run('half', 0.5, -1.0)
  assert all(half[s] != none[s] for s in none)
  assert run('stage_none', 0.5, 0.0) == none
  assert run('stage_half', 0.0, 0.5) == half


_FINITE_RATE = r'expected a finite number > 0$'
_DROPOUT = r'expected a number in \[0, 1\), or -1 for config\.model\.dropout_rate$'


@pytest.mark.parametrize('field, value, expected', [
    ('learning_rate', float('nan'), _FINITE_RATE), ('learning_rate', float('inf'), _FINITE_RATE),
    ('learning_rate', -1e-3, _FINITE_RATE), ('dropout_rate', 1.0, _DROPOUT),
    ('dropout_rate', -0.5, _DROPOUT), ('dropout_rate', float('nan'), _DROPOUT)])
def test_a_bad_stage_setting_is_refused_with_the_config(field, value, expected):
  config = helpers.tiny_config()
  config.finetune[field] = value
  loop.check_stage_config(config, 'pretrain')
  with pytest.raises(ValueError, match=rf'^config\.finetune\.{field}=.*: ' + expected):
    loop.check_stage_config(config, 'finetune')


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  real, calls = loop._global, []

  def poisoned(batch, *args):  # the batch of step 5 has a position outside the tables
    calls.append(1)
    if len(calls) == 5:
      batch = {**batch, 'position_ids': batch['position_ids'] + 10_000}
    return real(batch, *args)

  monkeypatch.setattr(loop, '_global', poisoned)
  config = helpers.reference_config()
  config.pretrain.update(checkpoint_every_steps=2, eval_every_steps=0)
  work = helpers.workdir_with_data(tmp_path)
  with pytest.raises(loop.NonFiniteLoss, match=r'step 5 .*last good checkpoint: .*checkpoints/4'):
    loop.run_stage(config, work, 'pretrain')
  assert ckpt_lib.Checkpoints(work / 'pretrain' / 'checkpoints', read_only=True
                              ).all_steps() == [2, 4]
  assert max(helpers.losses(work)) == 4


def test_finetune_starts_from_the_pretrained_parameters(tmp_path):
  work = tmp_path / 'work'
  shutil.copytree(helpers.reference_run(), work)
  config = helpers.reference_config()
  config.stages = 'pretrain,finetune'
  config.finetune.update(checkpoint_every_steps=12, eval_every_steps=12)
  stages.run(config, str(work))
  pre = inference_lib.load_for_inference(str(work), 'pretrain', which='latest')  # the warm start
  fine = inference_lib.load_for_inference(str(work), 'finetune', which='latest')
  assert fine.step == 12
  # 12 small AdamW updates from the pre-trained values, not from a fresh initialisation.
  moved = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(fine.params),
                                                          jax.tree.leaves(pre.params))]
  assert 0 < max(moved) < 0.025  # the summed learning rates are ~0.02
  first = helpers.losses(work, 'finetune')[1]
  assert first < helpers.losses(work)[1] - 0.5  # far below an untrained model's loss


def test_warm_start_reindexes_syllable_rows_to_the_new_vocabulary(tmp_path):
  pre = inference_lib.load_for_inference(str(helpers.reference_run()), 'pretrain', which='latest')
  other = helpers.prepared_corpus(1) / 'data' / 'pretrain'  # other songs, other vocabulary
  vocab = inference_lib.read_tokenizer(other / 'vocab.json').vocab
  sizes = inference_lib.read_tokenizer(other / 'vocab.json').field_sizes
  assert vocab.syllables != pre.tokenizer.vocab.syllables
  from songglm_jax.train.mesh import Plan
  plan = Plan.from_config(helpers.tiny_config().mesh)
  _, like = inference_lib.abstract_params(pre.model_cfg, sizes)
  like = jax.tree.map(lambda x, s: jnp.zeros(x.shape, x.dtype, device=s), like,
                      plan.tree_shardings(like))
  params, note = warm_start.load_pretrained(str(helpers.reference_run()), tmp_path,
                                            pre.model_cfg, vocab, like, plan)
  assert 'syllables' in note
  old = np.asarray(pre.params['embed']['fields']['syllable'][...])
  new = np.asarray(params['embed']['fields']['syllable'][...])
  assert new.shape[0] == sizes['syllable']
  np.testing.assert_array_equal(new[:8], old[:8])
  src = {s: i for i, s in enumerate(pre.tokenizer.vocab.syllables)}
  for i, s in enumerate(vocab.syllables):
    np.testing.assert_array_equal(new[8 + i], old[8 + src[s]] if s in src else old[6])
  np.testing.assert_array_equal(np.asarray(params['heads']['pitch']['kernel'][...]),
                                np.asarray(pre.params['heads']['pitch']['kernel'][...]))


def test_finetune_reads_its_own_corpus_when_prepared(tmp_path):
  assert loop.data_dir_for(tmp_path, 'finetune') == tmp_path / 'data' / 'pretrain'
  (tmp_path / 'data' / 'finetune').mkdir(parents=True)
  (tmp_path / 'data' / 'finetune' / 'report.json').write_text('{}')
  assert loop.data_dir_for(tmp_path, 'finetune') == tmp_path / 'data' / 'finetune'
  assert loop.data_dir_for(tmp_path, 'pretrain') == tmp_path / 'data' / 'pretrain'


def test_a_stage_may_pack_shorter_rows_than_the_pipeline(tmp_path):
  config = helpers.reference_config()
  assert loop.pipeline_options(config, 8).seq_len == config.pipeline.seq_len
  assert loop.pipeline_options(config, 8, 64).seq_len == 64
  config.pretrain.seq_len = config.model.max_len + 8
  with pytest.raises(ValueError, match='config.pretrain.seq_len'):
    loop.run_stage(config, helpers.workdir_with_data(tmp_path), 'pretrain')


@pytest.mark.parametrize('steps', [0, -3])
def test_no_steps_to_train_is_an_error_not_already_trained(tmp_path, steps):
  config = helpers.tiny_config(num_train_steps=steps)
  work = helpers.workdir_with_data(tmp_path)
  with pytest.raises(ValueError, match=rf'^config.pretrain.num_train_steps={steps}: expected a '
                     'whole number >= 1$'):
    loop.run_stage(config, work, 'pretrain')
  assert not (work / 'pretrain').exists()


def test_warm_start_reindexes_the_chain_stress_table_too(tmp_path):
  """model.note_syllable_stress with the chain has a second stress table (chain.stress): a
  fine-tuning corpus with another stress vocabulary re-indexes it like the embedding's."""
  config = helpers.tiny_config(num_train_steps=2, checkpoint_every_steps=2, eval_every_steps=0)
  config.stages = 'pretrain'
  config.model.update(field_conditioning='chain', note_syllable_stress=True)
  work = helpers.workdir_with_data(tmp_path / 'pre')
  stages.run(config, str(work))
  pre = inference_lib.load_for_inference(str(work), 'pretrain', which='latest')
  old_vocab = pre.tokenizer.vocab.stress
  # A fine-tuning corpus' stress vocabulary: some patterns in another order, one new.
  new_vocab = tuple(reversed(old_vocab[1:])) + ('unseen-pattern',)
  vocab = dataclasses.replace(pre.tokenizer.vocab, stress=new_vocab)
  sizes = dict(pre.tokenizer.field_sizes, stress=8 + len(new_vocab))
  from songglm_jax.train.mesh import Plan
  plan = Plan.from_config(config.mesh)
  _, like = inference_lib.abstract_params(pre.model_cfg, sizes)
  like = jax.tree.map(lambda x, s: jnp.zeros(x.shape, x.dtype, device=s), like,
                      plan.tree_shardings(like))
  params, note = warm_start.load_pretrained(str(work), tmp_path, pre.model_cfg, vocab, like,
                                            plan)
  assert 'stress' in note and old_vocab != new_vocab
  src = {s: i for i, s in enumerate(old_vocab)}
  for table in (('embed', 'fields', 'stress'), ('chain', 'stress')):
    old = np.asarray(functools.reduce(lambda t, k: t[k], table, pre.params)[...])
    new = np.asarray(functools.reduce(lambda t, k: t[k], table, params)[...])
    assert new.shape[0] == sizes['stress'], table
    for i, s in enumerate(new_vocab):
      np.testing.assert_array_equal(new[8 + i], old[8 + src[s]] if s in src else old[6])
