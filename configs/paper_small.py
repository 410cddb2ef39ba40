"""SongGLM-small as in the paper and the public code: d_model 1024, FF 2048, 4 layers, 8 heads.

    python -m songglm_jax.main --config=configs/paper_small.py --workdir=W \
        --config.data.pretrain_source=PRETRAIN_SONGS --config.data.finetune_source=FINETUNE_SONGS

Paper settings: rows of 768 tokens, batch 92, AdamW (0.9, 0.98, eps 1e-6, weight decay 0.01),
peak learning rate 2e-4 for pre-training and 5e-5 for fine-tuning, 20% linear warm-up then
cosine decay, dropout 0.1, clipping 1.0. Step counts follow the public code's trainer caps
(max_steps 500,000 pre-training, 200,000 fine-tuning); shorten them for smaller corpora.

Batch: 92 rows do not split over 8 devices, so the batch is 96 (8 x 12, +4% rows per step); on
a mesh whose data x fsdp divides 92 (1, 2, 4 devices) --config.pretrain.batch_size=92 gives the
paper's exact size. A packed row holds several songs, so a row-batch here carries at least as
many songs as the paper's padded one. On a single small accelerator keep the batch and raise
grad_accum_steps (e.g. 4: micro-batches of 24 rows, the same update).
"""

from songglm_jax import config as base

SIZE = dict(d_model=1024, d_ff=2048, num_layers=4, num_heads=8)


def get_config(size=SIZE):
  c = base.base_config()
  c.pipeline.update(seq_len=768, workers=2)
  c.model.update(size, dropout_rate=0.1)
  c.pretrain.update(num_train_steps=500_000, batch_size=96, learning_rate=2e-4,
                    warmup_fraction=0.2, checkpoint_every_steps=1000, keep_checkpoints=3,
                    log_every_steps=100, eval_every_steps=2000, eval_batches=50)
  c.finetune.update(num_train_steps=200_000, batch_size=96, learning_rate=5e-5,
                    warmup_fraction=0.2, checkpoint_every_steps=1000, keep_checkpoints=3,
                    log_every_steps=100, eval_every_steps=2000, eval_batches=50)
  return c
