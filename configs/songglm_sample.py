"""The SongGLM public sample: 1000 pre-training songs, 900 fine-tuning songs (../shared).

    python -m songglm_jax.main --config=configs/songglm_sample.py --workdir=workdir/sample
"""

import os

from songglm_jax import config as base

_ROOT = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'songglm_sample')


def get_config():
  c = base.base_config()
  c.data.pretrain_source = os.path.normpath(os.path.join(_ROOT, 'pretrain'))
  c.data.finetune_source = os.path.normpath(os.path.join(_ROOT, 'finetune'))
  return c
