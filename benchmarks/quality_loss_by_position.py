r"""Held-out loss of a trained workdir by field and by where in the melody the note is.

    .venv/bin/python benchmarks/quality_loss_by_position.py --workdir=W [--stage=finetune]
        [--checkpoint=best|latest|STEP] [--buckets=0,16,32,64,96,128,192,256,512]

Scores the fine-tuning layout of the validation split (``pipeline.eval_pipeline``, the batches
the training loop's held-out loss uses) with a checkpoint of the workdir and reports the
cross-entropy (nats) and accuracy of every predicted field for the notes at each note index in
the melody (``block_position_ids - 2``: 0 is the first note, bucketed by ``--buckets``) and for
each third of the song. A question this answers: do notes late in a long melody -- block
positions that pre-training's half-song span rarely reaches -- score worse than early ones?

Last line: one JSON object (also ``benchmarks/results/quality_loss_by_position.json``).
"""

import os

for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
  os.environ.setdefault(_var, '1')

import pathlib  # noqa: E402

import common  # noqa: E402  (sets sys.path)

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

BENCH = 'quality_loss_by_position'
flags.DEFINE_string('workdir', None, 'trained workdir')
flags.DEFINE_string('stage', 'finetune', 'checkpoint stage')
flags.DEFINE_string('checkpoint', 'best', "'best', 'latest' or a kept step number")
flags.DEFINE_list('buckets', ['0', '16', '32', '64', '96', '128', '192', '256', '512'],
                  'note-index bucket edges')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  import jax
  import optax
  from flax import nnx
  from songglm_jax.data import pipeline, tokenizer as tk
  from songglm_jax.train import inference, loop
  if not FLAGS.workdir:
    raise ValueError('--workdir is required')
  work = pathlib.Path(FLAGS.workdir)
  inf = inference.load_for_inference(str(work), FLAGS.stage, which=FLAGS.checkpoint)
  config = inf.config
  data_dir = loop.data_dir_for(work, 'finetune')
  if inference.read_tokenizer(data_dir / 'vocab.json').vocab != inf.tokenizer.vocab:
    raise ValueError(f'the {inf.stage} checkpoint was trained on another vocabulary than '
                     f'{data_dir}: its syllable ids do not index this data')
  section = config.finetune
  opts = loop.pipeline_options(config, int(section.batch_size), int(section.get('seq_len', 0)))
  fields = inf.model_cfg.target_fields
  model_fn = jax.jit(lambda p, b: nnx.merge(inf.graphdef, p)(b))
  edges = np.array([int(x) for x in FLAGS.buckets])
  sums = {f: np.zeros((len(edges), 2)) for f in fields}  # [bucket] (ce, correct)
  thirds = {f: np.zeros((3, 2)) for f in fields}
  counts, counts3 = np.zeros(len(edges)), np.zeros(3)
  ds = pipeline.eval_pipeline(data_dir, opts, use='finetune')
  for batch in ds:
    logits = jax.device_get(model_fn(inf.params, batch))
    scored = (batch['loss_mask'] > 0) & (batch['targets'][..., tk.F.type] == tk.NOTE)
    index = batch['block_position_ids'] - 1  # the input at block position p predicts note p - 1
    # notes in each example: the largest index of its scored rows + 1
    seg = batch['segment_ids']
    total = np.zeros_like(index)
    for b in range(seg.shape[0]):
      for s in np.unique(seg[b][seg[b] > 0]):
        m = (seg[b] == s) & scored[b]
        if m.any():
          total[b][seg[b] == s] = index[b][m].max() + 1
    bucket = np.searchsorted(edges, index, side='right') - 1
    third = np.minimum(3 * index // np.maximum(total, 1), 2)
    for f in fields:
      t = batch['targets'][..., tk.FIELDS.index(f)]
      ce = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits[f], t))
      ok = np.argmax(logits[f], -1) == t
      for k in range(len(edges)):
        m = scored & (bucket == k)
        sums[f][k] += (ce[m].sum(), ok[m].sum())
      for k in range(3):
        m = scored & (third == k)
        thirds[f][k] += (ce[m].sum(), ok[m].sum())
    for k in range(len(edges)):
      counts[k] += (scored & (bucket == k)).sum()
    for k in range(3):
      counts3[k] += (scored & (third == k)).sum()
  rows = []
  for k, lo in enumerate(edges):
    if not counts[k]:
      continue
    hi = f'{edges[k + 1] - 1}' if k + 1 < len(edges) else '+'
    row = {'notes': f'{lo}-{hi}', 'count': int(counts[k])}
    for f in fields:
      row[f'ce_{f}'] = float(sums[f][k, 0] / counts[k])
      row[f'acc_{f}'] = float(sums[f][k, 1] / counts[k])
    row['ce_mean'] = float(np.mean([row[f'ce_{f}'] for f in fields]))
    rows.append(row)
  third_rows = []
  for k in range(3):
    row = {'third': k + 1, 'count': int(counts3[k])}
    for f in fields:
      row[f'ce_{f}'] = float(thirds[f][k, 0] / max(counts3[k], 1))
      row[f'acc_{f}'] = float(thirds[f][k, 1] / max(counts3[k], 1))
    row['ce_mean'] = float(np.mean([row[f'ce_{f}'] for f in fields]))
    third_rows.append(row)
  head = ['notes', 'count'] + [f'ce_{f}' for f in fields] + ['ce_mean']
  print(' '.join(f'{h:>14}' for h in head))
  for r in rows + [{'notes': f'third {r["third"]}', **r} for r in third_rows]:
    print(' '.join(f'{r[h]:>14.3f}' if isinstance(r[h], float) else f'{r[h]!s:>14}'
                   for h in head))
  common.finish(BENCH, {'workdir': str(work), 'stage': inf.stage, 'checkpoint': inf.checkpoint,
                        'step': inf.step, 'by_note_index': rows, 'by_third': third_rows})


if __name__ == '__main__':
  from songglm_jax import cli
  cli.run(main)
