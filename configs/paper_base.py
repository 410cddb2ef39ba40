"""SongGLM-base: d_model 1536, FF 3072, 8 layers, 8 heads; otherwise as paper_small.

    python -m songglm_jax.main --config=configs/paper_base.py --workdir=W \
        --config.data.pretrain_source=PRETRAIN_SONGS --config.data.finetune_source=FINETUNE_SONGS
"""

from configs import paper_small


def get_config():
  return paper_small.get_config(dict(d_model=1536, d_ff=3072, num_layers=8, num_heads=8))
