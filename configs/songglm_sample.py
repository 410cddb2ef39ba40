"""The SongGLM public sample: 1000 pre-training songs, 900 fine-tuning songs (../shared).

    python -m songglm_jax.main --config=configs/songglm_sample.py --workdir=workdir/sample

The model is the size the public SongGLM code was measured at here (d_model 256, 4 layers,
8 heads, FF 512; 3.3M parameters). 700 pre-training steps and 300 fine-tuning steps of
8 x 1024 packed tokens (about 5 passes over the pre-training songs, 4 over the fine-tuning
songs) take about 45 minutes on a 2-core CPU; the prepare, generate and evaluate stages a few
minutes more.
"""

import os

from songglm_jax import config as base

_ROOT = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'songglm_sample')


def get_config():
  c = base.base_config()
  c.data.pretrain_source = os.path.normpath(os.path.join(_ROOT, 'pretrain'))
  c.data.finetune_source = os.path.normpath(os.path.join(_ROOT, 'finetune'))
  c.model.update(d_model=256, num_layers=4, num_heads=8, d_ff=512)
  c.pretrain.update(num_train_steps=700, batch_size=8, learning_rate=1e-3,
                    checkpoint_every_steps=100, log_every_steps=20, eval_every_steps=100)
  c.finetune.update(num_train_steps=300, batch_size=8, learning_rate=3e-4,
                    checkpoint_every_steps=100, log_every_steps=20, eval_every_steps=100)
  return c
