"""train/distributed: cluster detection without JAX's private cluster helpers."""

import logging
import sys

from songglm_jax.train import distributed


def test_moved_cluster_helpers_give_one_warning_and_slurm_still_detected(monkeypatch, caplog):
  monkeypatch.setitem(sys.modules, 'jax._src.clusters', None)  # as if JAX had moved them
  for var in ('SLURM_NTASKS', 'SLURM_PROCID'):
    monkeypatch.delenv(var, raising=False)
  with caplog.at_level(logging.WARNING):
    assert distributed._detected_cluster() is None  # pylint: disable=protected-access
  warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1
  text = warnings[0].getMessage()
  assert 'jax._src.clusters' in text and 'Cloud TPU' in text and '--coordinator_address' in text
  monkeypatch.setenv('SLURM_NTASKS', '2')
  monkeypatch.setenv('SLURM_PROCID', '0')
  assert distributed._detected_cluster() == 'slurm'  # pylint: disable=protected-access


def test_cluster_helpers_present_give_no_warning(monkeypatch, caplog):
  for var in ('SLURM_NTASKS', 'SLURM_PROCID', 'SLURM_JOB_ID'):
    monkeypatch.delenv(var, raising=False)
  with caplog.at_level(logging.WARNING):
    distributed._detected_cluster()  # pylint: disable=protected-access
  assert not [r for r in caplog.records if 'jax._src.clusters' in r.getMessage()]


def test_dry_run_without_the_cluster_helpers_resolves_slurm_from_its_variables(monkeypatch):
  monkeypatch.setitem(sys.modules, 'jax._src.clusters', None)  # as if JAX had moved them
  for var in ('SLURM_NTASKS', 'SLURM_PROCID'):
    monkeypatch.delenv(var, raising=False)
  assert distributed.resolve()['cluster'] == 'single'
  monkeypatch.setenv('SLURM_NTASKS', '4')
  monkeypatch.setenv('SLURM_PROCID', '3')
  assert distributed.resolve() == {'cluster': 'slurm', 'coordinator_address': None,
                                   'num_processes': 4, 'process_id': 3}
