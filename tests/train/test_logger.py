"""train/logger.read_metrics: a torn last line is expected after a crash, nothing else is."""

import pytest

from songglm_jax.train import logger


def test_a_torn_last_line_is_skipped(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.5}\n{"step": 3, "lo')
  assert logger.read_metrics(path) == [{'step': 1, 'loss': 3.0}, {'step': 2, 'loss': 2.5}]
  assert logger.read_metrics(tmp_path / 'missing.jsonl') == []


@pytest.mark.parametrize('bad', ['{"step": 2, "lo', '[1, 2]', '\x00\x00'])
def test_a_damaged_line_before_the_last_is_an_error_naming_it(tmp_path, bad):
  path = tmp_path / 'metrics.jsonl'
  path.write_text(f'{{"step": 1}}\n{bad}\n{{"step": 3}}\n')
  with pytest.raises(ValueError, match=rf'^{path}:2: not a metrics record'):
    logger.read_metrics(path)
