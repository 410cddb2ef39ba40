"""Tiny and CPU-friendly: the embedded music21 corpus, end to end in minutes on a laptop.

    python -m songglm_jax.main --config=configs/default.py --workdir=workdir/default
"""

from songglm_jax import config as base


def get_config():
  return base.base_config()
