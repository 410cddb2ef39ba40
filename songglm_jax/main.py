r"""The main job: runs the stages ``config.stages`` lists in a workdir.

    python -m songglm_jax.main --config=configs/default.py --workdir=W [--config.a.b=v ...]

Re-running the same command on the same workdir resumes: finished stages are kept.
"""

from absl import flags
from ml_collections import config_flags

from songglm_jax import cli, stages

_CONFIG = config_flags.DEFINE_config_file('config', None, 'config file (configs/*.py)',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'folder for all outputs of the run')


def main(argv):
  del argv
  try:
    config = _CONFIG.value
    config.stages  # ml_collections reports a config file that failed to load only on use
  except OSError as e:
    raise ValueError('--config: ' + ' '.join(str(e).split()[-6:]))
  stages.run(config, _WORKDIR.value)


if __name__ == '__main__':
  import jax
  jax.config.config_with_absl()  # --jax_debug_nans and friends from the command line
  flags.mark_flags_as_required(['config', 'workdir'])
  cli.run(main)
