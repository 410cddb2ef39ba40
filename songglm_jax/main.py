r"""The main job: runs the stages ``config.stages`` lists in a workdir.

    python -m songglm_jax.main --config=configs/default.py --workdir=W [--config.a.b=v ...]

Re-running the same command on the same workdir resumes: finished stages are kept, training
continues from its newest checkpoint.

Several processes (one per host, or one per GPU): give every process the same command plus
``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` (JAX does not read the
last two from the environment), or run under SLURM (``srun``) or on a Cloud TPU VM pod slice,
where they are detected (``train/distributed.py``; ``launch/`` has wrappers). The workdir must
be on a filesystem every process sees.
"""

import hashlib
import json
import os
import sys

from absl import flags
from ml_collections import config_flags

from songglm_jax import cli

_CONFIG = config_flags.DEFINE_config_file('config', None, 'config file (configs/*.py)',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'folder for all outputs of the run')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'multi-process runs: host:port of process 0 (all processes)')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'multi-process runs: number of processes')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'multi-process runs: this process, 0 .. num_processes-1')
_AUTO = flags.DEFINE_bool('distributed_auto_detect', True,
                          'without the three flags above, start multi-process when SLURM '
                          '(more than one task) or a Cloud TPU pod slice is detected')
_DRY_RUN = flags.DEFINE_bool('dry_run', False,
                             'print what this process would run (its command, config, workdir, '
                             'process id and coordinator) as one JSON line, and stop: nothing '
                             'is started or written (launch/ scripts: DRY_RUN=1)')


def _print_dry_run(config, identity: dict) -> None:
  """One JSON line: this process's command, config (and its fingerprint), workdir, identity."""
  text = config.to_json(sort_keys=True)
  argv = [a for a in sys.argv[1:] if a not in ('--dry_run', '--dry_run=true', '--dry_run=True')]
  line = json.dumps({
      'dry_run': True, 'command': [sys.executable, '-m', 'songglm_jax.main', *argv],
      'config_file': config_flags.get_config_filename(flags.FLAGS['config']),
      'config_sha256': hashlib.sha256(text.encode()).hexdigest(), 'workdir': _WORKDIR.value,
      **identity}) + '\n'
  # One write of the whole line: the processes of a launcher often share one stdout, and a line
  # written in pieces could interleave with another process's.
  sys.stdout.flush()
  os.write(sys.stdout.fileno(), line.encode())


def main(argv):
  del argv
  try:
    config = _CONFIG.value
    config.stages  # ml_collections reports a config file that failed to load only on use
  except OSError as e:
    raise ValueError('--config: ' + ' '.join(str(e).split()[-6:]))
  from songglm_jax.job import stages  # pylint: disable=g-import-not-at-top
  from songglm_jax.train import distributed  # pylint: disable=g-import-not-at-top
  if _DRY_RUN.value:
    _print_dry_run(config, distributed.resolve(_COORDINATOR.value, _NUM_PROCESSES.value,
                                               _PROCESS_ID.value, auto_detect=_AUTO.value))
    return
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                         auto_detect=_AUTO.value)
  stages.run(config, _WORKDIR.value)


if __name__ == '__main__':
  import jax
  jax.config.config_with_absl()  # --jax_debug_nans and friends from the command line
  flags.mark_flags_as_required(['config', 'workdir'])
  cli.run(main)
