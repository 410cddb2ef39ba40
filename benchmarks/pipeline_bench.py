"""Examples/s of the blank-infilling objectives, speed-up over the reference, packing, rows/s.

    .venv/bin/python benchmarks/pipeline_bench.py

Prepares both shared corpora (with the harmonized n-gram lexicon) into a temporary folder, then,
in this one process:
  examples_per_s[task]        decoded records -> masked GLM examples -> packed rows of 1024
                              (chunks of 256 records, the pipeline's unit), vectorized path
  speedup_vs_reference[task]  masking + layout: reference time / vectorized time; the
                              reference (``masking_reference``, the tests' oracle) is the
                              straightforward per-example implementation: plain loops, one
                              vector of random draws per stream
  packing_efficiency          non-padding share of the pre-training pipeline's batches (mixed
                              tasks, pre-training corpus, seq_len 1024)
  rows_per_s                  the whole Grain pre-training pipeline (read, decode, shuffle, mask,
                              pack, batch) in this process, no worker or reader threads
Throughputs are per second of this process's CPU time (``time.process_time``: one core, and
robust to other jobs sharing the machine); ``rows_per_wall_s`` is the wall-clock figure.
Targets (issue 4): >= 20,000 examples/s per task, >= 10x the reference, efficiency >= 0.9.
"""

import sys
import tempfile
import time

import numpy as np

import common  # noqa: F401  (sets sys.path)
from songglm_jax.data import masking, packing, pipeline, prepare, records
from songglm_jax.data import masking_reference as ref

KEYS = masking.TASKS + (masking.FINETUNE,)
SEQ_LEN = 1024
CHUNK = 256
MIN_SECONDS = 1.5


def _prepare(source, out):
  import importlib.util
  lexicon = importlib.util.find_spec('songglm_jax.data.lexicon') is not None
  prepare.prepare_dataset(str(source), out, prepare.PrepareOptions(fit_lexicon=lexicon),
                          workers=2)
  return lexicon


def _records(folder):
  src = records.open_split(folder, 'train')
  return [src[i] for i in range(len(src))]


def _repeat(fn, count):
  """Items per second of ``fn()`` (which handles ``count`` items), run for MIN_SECONDS."""
  fn()  # warm up
  done, t0 = 0, time.process_time()
  while time.process_time() - t0 < MIN_SECONDS:
    fn()
    done += count
  return done / (time.process_time() - t0)


def _vectorized(recs, keys, opts, task, with_packing):
  chunks = [(recs[i:i + CHUNK], keys[i:i + CHUNK]) for i in range(0, len(recs), CHUNK)]

  def run():
    for r, k in chunks:
      ex = masking.make_examples(r, k, opts, task)
      if with_packing:
        packing.pack(ex, SEQ_LEN)
  return run


def _efficiency(recs, opts, task):
  keys = masking.example_keys(0, 0, np.arange(len(recs)))
  rows = [packing.pack(masking.make_examples(recs[i:i + CHUNK], keys[i:i + CHUNK], opts, task),
                       SEQ_LEN) for i in range(0, len(recs), CHUNK)]
  used = sum(int(np.count_nonzero(r['segment_ids'])) for r in rows)
  return used / sum(r['segment_ids'].size for r in rows)


def main():
  pre_src = common.sample_dir('pretrain', 'pipeline_bench')
  fin_src = common.sample_dir('finetune', 'pipeline_bench')
  from absl import flags
  flags.FLAGS(sys.argv[:1])  # Grain reads absl flags
  opts = masking.MaskingOptions()
  with tempfile.TemporaryDirectory() as tmp:
    lexicon = _prepare(pre_src, f'{tmp}/pretrain')
    _prepare(fin_src, f'{tmp}/finetune')
    recs = _records(f'{tmp}/pretrain')
    keys = masking.example_keys(0, 0, np.arange(len(recs)))
    ex_per_s, speedup, ref_per_s = {}, {}, {}
    few = min(len(recs), 300)
    for task in KEYS:
      ex_per_s[task] = _repeat(_vectorized(recs, keys, opts, task, True), len(recs))
      fast = _repeat(_vectorized(recs, keys, opts, task, False), len(recs))
      t0 = time.process_time()
      for i in range(few):
        ref.make_example(recs[i], int(keys[i]), opts, task)
      ref_per_s[task] = few / (time.process_time() - t0)
      speedup[task] = fast / ref_per_s[task]

    fin_recs = _records(f'{tmp}/finetune')
    by_corpus = {name: {'pretrain_tasks': _efficiency(r, opts, None),
                        'finetune': _efficiency(r, opts, masking.FINETUNE)}
                 for name, r in (('pretrain', recs), ('finetune', fin_recs))}

    popts = pipeline.PipelineOptions(seq_len=SEQ_LEN, batch_size=8, chunk_records=CHUNK,
                                     workers=0, read_threads=0, seed=0)
    it = iter(pipeline.pretrain_pipeline(f'{tmp}/pretrain', popts, process_index=0,
                                         process_count=1))
    next(it)
    rows, used, t0, w0 = 0, 0, time.process_time(), time.perf_counter()
    while time.process_time() - t0 < 2 * MIN_SECONDS or rows < 400:
      batch = next(it)
      rows += len(batch['segment_ids'])
      used += int(np.count_nonzero(batch['segment_ids']))
    rows_per_s = rows / (time.process_time() - t0)
    rows_per_wall_s = rows / (time.perf_counter() - w0)
    it.close()

  common.finish('pipeline_bench', {
      'examples_per_s': ex_per_s,
      'speedup_vs_reference': speedup,
      'packing_efficiency': used / (rows * SEQ_LEN),
      'rows_per_s': rows_per_s,
      'rows_per_wall_s': rows_per_wall_s,
      'reference_examples_per_s': ref_per_s,
      'packing_efficiency_by_corpus': by_corpus,
      'records': len(recs), 'seq_len': SEQ_LEN, 'chunk_records': CHUNK, 'lexicon': lexicon,
      'targets': {'examples_per_s': 20000, 'speedup_vs_reference': 10,
                  'packing_efficiency': 0.9}})


if __name__ == '__main__':
  main()
