"""The SongGLM public sample: 1000 pre-training songs, 900 fine-tuning songs (../shared).

    python -m songglm_jax.main --config=configs/songglm_sample.py --workdir=workdir/sample

The model is the size the public SongGLM code was measured at here (d_model 256, 4 layers,
8 heads, FF 512; 4.0M parameters with this corpus' syllable table). Steps of 8 x 1024 packed
tokens run at about 2,400-2,700 non-padding tokens/s on a 2-core CPU (~3.3 s a step).
Measured end to end with `make run` (prepare, 600 pre-training and 250 fine-tuning steps,
generate, evaluate): 48 minutes; pre-training loss 5.55 -> 0.82 (held-out 1.19) in 33 min,
fine-tuning 1.29 -> 0.79 (held-out 0.83) in 14 min. ``config.melody_quality`` (chained note
fields, place-in-phrase and stress features, per-field sampling) adds no step time
(benchmarks/step_cost.py); its quality figures are in docs/quality.md. On top of it, this corpus
decodes with the lyric-melody priors (``generate.stress_beat_bias`` 3, ``phrase_rest_bias`` 2,
``phrase_final_long_bias`` 1: SBA 38.4 -> 45.3 (reference 45.8), PEA 86.9 -> 96.4 (96.8) on the
validation split, the OA metrics within their std); ``configs/default.py`` leaves them off (on
the music21 corpus the first two cost OA(IOI), docs/quality.md).
"""

import os

from songglm_jax import config as base

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data',
                     'songglm_sample')


def get_config():
  c = base.melody_quality(base.base_config())  # docs/quality.md: model options and sampling
  c.data.pretrain_source = os.path.normpath(os.path.join(_ROOT, 'pretrain'))
  c.data.finetune_source = os.path.normpath(os.path.join(_ROOT, 'finetune'))
  c.model.update(d_model=256, num_layers=4, num_heads=8, d_ff=512)
  # chosen on the validation split (docs/quality.md)
  c.generate.update(stress_beat_bias=3.0, phrase_rest_bias=2.0, phrase_final_long_bias=1.0)
  c.pretrain.update(num_train_steps=600, batch_size=8, learning_rate=1e-3,
                    checkpoint_every_steps=100, log_every_steps=20, eval_every_steps=100)
  c.finetune.update(num_train_steps=250, batch_size=8, learning_rate=3e-4,
                    checkpoint_every_steps=100, log_every_steps=20, eval_every_steps=100)
  return c
