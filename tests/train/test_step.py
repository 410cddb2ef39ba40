"""Train/eval steps and the optimizer on one device."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from songglm_jax.model import GLM, ModelConfig, synthetic
from songglm_jax.train import optim
from songglm_jax.train import step as step_lib

SIZES = synthetic.synthetic_field_sizes(num_syllables=50, max_bars=32)
CFG = ModelConfig(d_model=32, num_layers=2, num_heads=4, d_ff=64, dropout_rate=0.0, max_len=128)
OPT = optim.OptimConfig(learning_rate=3e-3, warmup_fraction=0.1, num_train_steps=20)


@pytest.fixture(scope='module')
def setup():
  tx, schedule = optim.make_optimizer(OPT)
  graphdef, state, _ = step_lib.create_train_state(lambda r: GLM(CFG, SIZES, rngs=r), tx, seed=0)
  train = step_lib.jit_train_step(step_lib.make_train_step(graphdef, tx, schedule))
  evaluate = jax.jit(step_lib.make_eval_step(graphdef))
  batch = synthetic.synthetic_batch(np.random.default_rng(0), 8, 96, SIZES, min_example=12,
                                    max_example=40)
  return dict(tx=tx, schedule=schedule, graphdef=graphdef, state=state, train=train,
              evaluate=evaluate, batch=batch)


def _copy(state):
  return jax.tree.map(np.array, state)


def test_loss_decreases_on_a_fixed_batch(setup):
  state, losses = _copy(setup['state']), []
  for _ in range(8):
    state, m = setup['train'](state, setup['batch'])
    losses.append(float(m['loss']))
  assert losses[-1] < losses[0] - 0.5, losses
  assert int(state.step) == 8


def test_metrics_cover_every_predicted_field(setup):
  _, m = setup['train'](_copy(setup['state']), setup['batch'])
  b = setup['batch']
  for f in CFG.target_fields:
    assert 0.0 <= float(m[f'accuracy_{f}']) <= 1.0
    assert float(m[f'loss_{f}']) > 0.0
  np.testing.assert_allclose(
      float(m['loss']), np.mean([float(m[f'loss_{f}']) for f in CFG.target_fields]), rtol=1e-6)
  assert float(m['target_tokens']) == b['loss_mask'].sum()
  assert float(m['tokens']) == (b['segment_ids'] != 0).sum()
  assert bool(m['finite']) and float(m['grad_norm']) > 0.0
  np.testing.assert_allclose(float(m['learning_rate']), float(setup['schedule'](0)))


def test_eval_step_reports_the_loss_before_the_update(setup):
  state = _copy(setup['state'])
  ev = setup['evaluate'](state.params, setup['batch'])
  _, m = setup['train'](state, setup['batch'])
  for k in ('loss', 'loss_pitch', 'accuracy_bar', 'target_tokens'):
    np.testing.assert_allclose(float(ev[k]), float(m[k]), rtol=1e-5)


def test_non_finite_loss_is_flagged_and_the_update_skipped(setup):
  bad = {k: v.copy() for k, v in setup['batch'].items()}
  bad['position_ids'][0, 0] = CFG.max_len + 5  # outside the table: the gather yields NaN
  before = _copy(setup['state'])
  after, m = setup['train'](_copy(setup['state']), bad)
  assert not bool(m['finite'])
  assert int(after.step) == int(before.step)
  for x, y in zip(jax.tree.leaves(after), jax.tree.leaves(before)):
    np.testing.assert_array_equal(x, y)


def test_gradient_accumulation_matches_one_big_batch(setup):
  accum = step_lib.jit_train_step(step_lib.make_train_step(
      setup['graphdef'], setup['tx'], setup['schedule'], grad_accum_steps=2))
  s1, m1 = setup['train'](_copy(setup['state']), setup['batch'])
  s2, m2 = accum(_copy(setup['state']), setup['batch'])
  for k in ('loss', 'loss_word_id', 'accuracy_pitch', 'grad_norm', 'target_tokens'):
    np.testing.assert_allclose(float(m2[k]), float(m1[k]), rtol=1e-5)
  for x, y in zip(jax.tree.leaves(s2.params), jax.tree.leaves(s1.params)):
    np.testing.assert_allclose(x, y, atol=1e-6)


def test_schedule_warms_up_linearly_then_decays_by_cosine():
  cfg = optim.OptimConfig(learning_rate=1.0, warmup_fraction=0.25, num_train_steps=100,
                          end_lr_fraction=0.1)
  lr = optim.make_schedule(cfg)
  np.testing.assert_allclose([float(lr(s)) for s in (0, 12, 24)], [1 / 25, 13 / 25, 1.0],
                             rtol=1e-6)
  np.testing.assert_allclose(float(lr(99)), 0.1, rtol=1e-5)
  mid = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (62 - 25) / 75))
  np.testing.assert_allclose(float(lr(61)), mid, rtol=1e-5)


def test_weight_decay_only_on_matrices():
  tx, lr = optim.make_optimizer(optim.OptimConfig(learning_rate=0.1, warmup_fraction=0.0,
                                                  num_train_steps=10, weight_decay=0.5))
  params = {'kernel': np.ones((2, 2), np.float32), 'bias': np.ones((2,), np.float32)}
  zeros = jax.tree.map(np.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  assert float(np.abs(updates['bias']).max()) == 0.0
  np.testing.assert_allclose(updates['kernel'], -float(lr(0)) * 0.5 * np.ones((2, 2)), rtol=1e-6)


def test_weight_decay_skips_stacked_norms_and_biases(setup):
  mask = optim.decay_mask(setup['state'].params)
  on = lambda *path: bool(functools.reduce(lambda t, k: t[k], path, mask).get_value())
  assert on('blocks', 'mlp', 'wi') and on('embed', 'fields', 'pitch')
  assert not on('blocks', 'ln_attn', 'scale')  # [layers, d]: a vector per layer
  assert not on('blocks', 'mlp', 'bi')
  assert not on('heads', 'pitch', 'bias')


def test_optim_config_reads_both_sections():
  cfg = optim.OptimConfig.from_config(
      {'b1': 0.9, 'b2': 0.98, 'eps': 1e-6, 'weight_decay': 0.01, 'clip_norm': 1.0,
       'end_lr_fraction': 0.0},
      {'learning_rate': 5e-5, 'warmup_fraction': 0.2, 'num_train_steps': 7,
       'grad_accum_steps': 1})
  assert cfg.learning_rate == 5e-5 and cfg.num_train_steps == 7
  with pytest.raises(ValueError, match='config.optim'):
    optim.OptimConfig.from_config({}, {})


@pytest.mark.parametrize('field,value', [('learning_rate', float('nan')), ('clip_norm', 0.0),
                                         ('b2', float('inf')), ('b1', 1.0),
                                         ('warmup_fraction', float('nan')),
                                         ('num_train_steps', 0), ('eps', float('nan'))])
def test_optim_config_refuses_non_finite_or_out_of_range_values(field, value):
  common = {'b1': 0.9, 'b2': 0.98, 'eps': 1e-6, 'weight_decay': 0.01, 'clip_norm': 1.0,
            'end_lr_fraction': 0.0}
  stage = {'learning_rate': 5e-5, 'warmup_fraction': 0.2, 'num_train_steps': 7,
           'grad_accum_steps': 1}
  (common if field in common else stage)[field] = value
  section = 'optim' if field in common else 'pretrain'
  with pytest.raises(ValueError, match=rf'^config\.{section}\.{field}={value!r}: expected '):
    optim.OptimConfig.from_config(common, stage, 'pretrain')
  with pytest.raises(ValueError, match=rf'^optimizer: {field}='):
    optim.OptimConfig(**{**common, **stage})
