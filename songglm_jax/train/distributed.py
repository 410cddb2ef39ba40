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


def _cluster_helpers():
  """JAX's (private) cluster modules ``(cloud_tpu_cluster, slurm_cluster)``, or None (with a
  warning) when this JAX version does not have them."""
  try:
    from jax._src.clusters import cloud_tpu_cluster, slurm_cluster  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # JAX moved its cluster helpers: callers fall back to SLURM's variables
    logging.warning('distributed: JAX\'s cluster detection (jax._src.clusters) is not '
                    'importable in this JAX version (%s): a Cloud TPU pod slice is not detected '
                    '(give --coordinator_address, --num_processes and --process_id); SLURM '
                    'still is, from its variables', e)
    return None
  return cloud_tpu_cluster, slurm_cluster


def _slurm_from_variables() -> Optional[tuple[int, int]]:
  """(task count, task id) of a SLURM step with more than one task, from its variables, or None."""
  if int(os.environ.get('SLURM_NTASKS', '1')) > 1 and 'SLURM_PROCID' in os.environ:
    return int(os.environ['SLURM_NTASKS']), int(os.environ['SLURM_PROCID'])
  return None


def _detected_cluster() -> Optional[str]:
  """Name of a cluster JAX can configure itself for (SLURM with > 1 task, Cloud TPU), or None."""
  helpers = _cluster_helpers()
  if helpers is None:
    return 'slurm' if _slurm_from_variables() else None
  cloud_tpu_cluster, slurm_cluster = helpers
  if slurm_cluster.SlurmCluster.is_env_present() and int(os.environ['SLURM_NTASKS']) > 1:
    return 'slurm'
  for cluster in (cloud_tpu_cluster.GkeTpuCluster, cloud_tpu_cluster.GceTpuCluster):
    if cluster.is_env_present():
      return 'cloud_tpu'
  return None


def _explicit(coordinator_address, num_processes, process_id) -> bool:
  """True when the three flags are given (checked), False when none is."""
  given = [coordinator_address, num_processes, process_id]
  if all(v is None for v in given):
    return False
  if any(v is None for v in given):
    raise ValueError('--coordinator_address, --num_processes and --process_id go together '
                     f'(got {coordinator_address!r}, {num_processes!r}, {process_id!r})')
  if not 0 <= process_id < num_processes:
    raise ValueError(f'--process_id={process_id}: expected 0 .. {num_processes - 1}')
  return True


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, auto_detect: bool = True) -> str:
  """Start the distributed runtime when there is more than one process (module docstring).

  Returns:
    'explicit', the detected cluster name, or 'single'.

  Raises:
    ValueError: some but not all of the three settings are given, or they are inconsistent.
  """
  if _explicit(coordinator_address, num_processes, process_id):
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


def resolve(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
            process_id: Optional[int] = None, auto_detect: bool = True) -> dict:
  """What :func:`initialize` would start, without starting anything (``main --dry_run``).

  Returns {'cluster', 'coordinator_address', 'num_processes', 'process_id'} for this process:
  the flags as given; SLURM's coordinator (first node of the step, JAX's port rule), task count
  and id from its variables; a Cloud TPU VM's worker number, worker count and coordinator
  (worker 0, JAX's port) from the TPU metadata server, or from TPU_WORKER_ID and
  TPU_WORKER_HOSTNAMES where those are set (GKE). The metadata server is asked only on a TPU VM
  or when GCE_METADATA_IP points somewhere (tests simulate a pod slice that way); off a TPU VM
  JAX itself would not look, so a dry run there shows what the workers of a slice would resolve.
  Single process: coordinator None, 1 process, id 0. Where JAX's cluster helpers are not
  importable, SLURM's task count and id come from its variables and the coordinator is None
  (JAX would choose it at start-up).
  """
  if _explicit(coordinator_address, num_processes, process_id):
    return {'cluster': 'explicit', 'coordinator_address': coordinator_address,
            'num_processes': num_processes, 'process_id': process_id}
  single = {'cluster': 'single', 'coordinator_address': None, 'num_processes': 1,
            'process_id': 0}
  if not auto_detect:
    return single
  helpers = _cluster_helpers()
  if helpers is None:  # as _detected_cluster: SLURM from its variables; JAX picks the coordinator
    slurm_task = _slurm_from_variables()
    if slurm_task is None:
      return single
    return {'cluster': 'slurm', 'coordinator_address': None, 'num_processes': slurm_task[0],
            'process_id': slurm_task[1]}
  cloud_tpu_cluster, slurm_cluster = helpers
  slurm = slurm_cluster.SlurmCluster
  if slurm.is_env_present() and slurm.get_process_count() > 1:
    return {'cluster': 'slurm', 'coordinator_address': slurm.get_coordinator_address(None, None),
            'num_processes': slurm.get_process_count(), 'process_id': slurm.get_process_id()}
  tpu = None
  if (os.environ.get('TPU_WORKER_HOSTNAMES') or os.environ.get('TPU_PROCESS_ADDRESSES')) and (
      'TPU_WORKER_ID' in os.environ):
    tpu = cloud_tpu_cluster.GkeTpuCluster
  elif 'GCE_METADATA_IP' in os.environ or (cloud_tpu_cluster.running_in_cloud_tpu_vm and
                                           'TPU_SKIP_MDS_QUERY' not in os.environ):
    try:
      if cloud_tpu_cluster.get_metadata('agent-worker-number')[1] == 200:
        tpu = cloud_tpu_cluster.GceTpuCluster
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f'dry run: the TPU metadata server did not answer ({e})') from None
  if tpu is None:
    return single
  metadata = tpu is cloud_tpu_cluster.GceTpuCluster

  def value(key):  # JAX's rule: the environment, then (on GCE) the metadata's tpu-env
    return (cloud_tpu_cluster.get_tpu_env_value(key) if metadata else os.environ.get(key))

  workers = tpu._get_worker_list_in_slice()  # pylint: disable=protected-access
  slices, slice_id = int(value('MEGASCALE_NUM_SLICES') or 1), int(value('MEGASCALE_SLICE_ID') or 0)
  host = (value('MEGASCALE_COORDINATOR_ADDRESS') or workers[0]).split(':')[0]
  return {'cluster': 'cloud_tpu',
          'coordinator_address': f'{host}:{cloud_tpu_cluster.coordinator_port}',
          'num_processes': len(workers) * slices,
          'process_id': tpu._get_process_id_in_slice() + slice_id * len(workers)}  # pylint: disable=protected-access
