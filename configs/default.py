"""Tiny and CPU-friendly: the embedded music21 corpus, prepare -> pretrain -> finetune in minutes.

    python -m songglm_jax.main --config=configs/default.py --workdir=workdir/default

The works with lyrics in music21's bundled corpus (~730 songs, ~100k tokens) train a 0.9M-parameter
GLM (d_model 128, 2 layers) on 8 x 512 packed rows; fine-tuning runs on the same songs in the
lyrics -> melody layout (no separate fine-tuning corpus).

Decoding adds the legato prior (``generate.legato_bias`` 2: inside a phrase, a note starts where
the previous one ends). This small model leaves rests at 16.5% of its syllables inside phrases
(the corpus: 1.4%), which put its mean inter-onset interval per song near 666 ticks against the
corpus' 528 (``W/eval/plots/ioi.png``); with the prior it sings 533. OA(IOI) reads 81.6 -> 73.8,
but that is one validation song: without Josquin's "Mille regrets" (mean IOI 1914 ticks) it is
84.9 -> 84.5, within the std (seed 1: 82.7 -> 85.3; docs/quality.md diagnosis 14 and "The tiny
default").
"""

from songglm_jax import config as base


def get_config():
  c = base.melody_quality(base.base_config())  # chained fields, phrase positions, sampling
  c.generate.legato_bias = 2.0  # closes the rests inside phrases (docstring)
  c.pipeline.seq_len = 512
  c.pretrain.update(num_train_steps=300, batch_size=8, learning_rate=1e-3,
                    checkpoint_every_steps=100, log_every_steps=20, eval_every_steps=100)
  c.finetune.update(num_train_steps=150, batch_size=8, learning_rate=5e-4,
                    checkpoint_every_steps=50, log_every_steps=10, eval_every_steps=50)
  return c
