"""bfloat16 compute end to end on CPU: the tiny config trained with compute_dtype=bfloat16 (both
attention paths) follows the float32 run.

Tolerance: every logged training loss of the 12 steps (5.47 -> 4.62 in float32) and every
held-out loss within 0.5% of the float32 run's [measured on this CPU: at most 0.005%]; every
loss finite. Parameters, optimizer state,
LayerNorm statistics, logits and the loss are float32 in both runs (README: Accelerators).
"""

from __future__ import annotations

import math

import pytest

from songglm_jax.job import stages
from tests.train import helpers


@pytest.mark.parametrize('attention', ['explicit', 'xla_library'])
def test_bfloat16_training_follows_float32(tmp_path, attention):
  want = helpers.losses(helpers.reference_run())
  want_eval = helpers.losses(helpers.reference_run(), key='eval_loss')
  config = helpers.reference_config()
  config.model.update(compute_dtype='bfloat16', attention=attention)
  work = helpers.workdir_with_data(tmp_path)
  stages.run(config, str(work))
  got = helpers.losses(work)
  got_eval = helpers.losses(work, key='eval_loss')
  assert sorted(got) == sorted(want) == list(range(1, 13))
  assert sorted(got_eval) == sorted(want_eval) and want_eval
  assert got[12] < got[1] - 0.5  # it learns
  for table, ref in ((got, want), (got_eval, want_eval)):
    for step, loss in table.items():
      assert math.isfinite(loss), step
      assert abs(loss - ref[step]) <= 0.005 * ref[step], (step, loss, ref[step])
