"""Multi-process start-up: ``jax.distributed.initialize`` from flags or a detected cluster.

Three cases, decided before JAX starts its backend:

* explicit: ``coordinator_address`` (host:port of process 0), ``num_processes`` and
  ``process_id`` all given -- any machines, including several processes on one host (CPU
  collectives use gloo). JAX does not read the process count or id from the environment, so
  launchers pass them as flags.
* detected: none given, and JAX's own cluster detection finds SLURM with more than one task
  (``srun``: coordinator = first node of the step, ids from SLURM_PROCID / SLURM_LOCALID) or a
  Cloud TPU VM (pod slice workers from the TPU metadata) -- ``initialize()`` without arguments.
* single process: otherwise; nothing to do.
"""

from __future__ import annotations

import os
from typing import Optional

import jax
from absl import logging


def _detected_cluster() -> Optional[str]:
  """Name of a cluster JAX can configure itself for (SLURM with > 1 task, Cloud TPU), or None."""
  try:
    from jax._src.clusters import cloud_tpu_cluster, slurm_cluster  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # JAX moved its cluster helpers: fall back to the SLURM variables
    logging.warning('distributed: JAX\'s cluster detection (jax._src.clusters) is not '
                    'importable in this JAX version (%s): a Cloud TPU pod slice is not detected '
                    '(give --coordinator_address, --num_processes and --process_id); SLURM '
                    'still is, from its variables', e)
    return 'slurm' if int(os.environ.get('SLURM_NTASKS', '1')) > 1 and (
        'SLURM_PROCID' in os.environ) else None
  if slurm_cluster.SlurmCluster.is_env_present() and int(os.environ['SLURM_NTASKS']) > 1:
    return 'slurm'
  for cluster in (cloud_tpu_cluster.GkeTpuCluster, cloud_tpu_cluster.GceTpuCluster):
    if cluster.is_env_present():
      return 'cloud_tpu'
  return None


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, auto_detect: bool = True) -> str:
  """Start the distributed runtime when there is more than one process (module docstring).

  Returns:
    'explicit', the detected cluster name, or 'single'.

  Raises:
    ValueError: some but not all of the three settings are given, or they are inconsistent.
  """
  given = [coordinator_address, num_processes, process_id]
  if any(v is not None for v in given):
    if any(v is None for v in given):
      raise ValueError('--coordinator_address, --num_processes and --process_id go together '
                       f'(got {coordinator_address!r}, {num_processes!r}, {process_id!r})')
    if not 0 <= process_id < num_processes:
      raise ValueError(f'--process_id={process_id}: expected 0 .. {num_processes - 1}')
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
    logging.info('distributed: process %d of %d, coordinator %s', process_id, num_processes,
                 coordinator_address)
    return 'explicit'
  cluster = _detected_cluster() if auto_detect else None
  if cluster is None:
    return 'single'
  jax.distributed.initialize()
  logging.info('distributed (%s): process %d of %d', cluster, jax.process_index(),
               jax.process_count())
  return cluster
