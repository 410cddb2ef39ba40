r"""The offline evaluation binary: generated songs against reference songs.

    python -m songglm_jax.evaluate --generated=DIR --reference=DIR --output=result.json \
        [--plots=DIR] [--workers=N] [--strict]

``--generated`` is a folder of songs or of ``sample_K/`` folders (one sample set each); songs
pair with reference songs by file name (stem). Prints a table of mean +- std over sample sets
(the sample std, ``ddof=1``, as the public SongGLM metric script reports; 0 for one set) and
writes ``result.json`` (keys and definitions: ``songglm_jax/metrics/evaluation.py``,
``features.py``, ``overlap.py``, ``distance.py``, ``lyric.py``). Unreadable files, songs without
lyrics or notes and unpaired names are reported, not fatal; no pair at all is an error. A
reference song without a readable generated song in a sample set is shown as a WARNING above and
below the table and in ``result.json`` (``warning``, ``missing_generated``); ``--strict`` makes
it an error (nothing written). ``--output`` and ``--plots`` are checked before the work starts.
"""

from __future__ import annotations

import os
import time

from absl import flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string('generated', None, 'folder of generated songs, or of sample_K/ folders')
flags.DEFINE_string('reference', None, 'folder of reference songs (paired by file name)')
flags.DEFINE_string('output', None, 'where to write result.json')
flags.DEFINE_string('plots', None, 'folder for PNGs comparing the distributions (optional)')
flags.DEFINE_integer('workers', max(1, min(8, os.cpu_count() or 1)),
                     'processes for reading files and for the DTW (1 = none)')
flags.DEFINE_bool('strict', False, 'fail (and write nothing) when a generated song of a pair is '
                  'missing or unreadable')


def main(argv):
  del argv
  from songglm_jax.metrics import evaluation, report
  from songglm_jax import atomic
  if FLAGS.workers < 1:
    raise ValueError(f'--workers must be >= 1, got {FLAGS.workers}')
  atomic.check_output_file(FLAGS.output, '--output')  # before the work
  if FLAGS.plots:
    atomic.check_output_folder(FLAGS.plots, '--plots')
  t0 = time.perf_counter()
  result = evaluation.evaluate_dirs(FLAGS.generated, FLAGS.reference, workers=FLAGS.workers,
                                    plots=FLAGS.plots, strict=FLAGS.strict)
  report.write_json(result, FLAGS.output)
  print(report.table(result))
  logging.info('evaluate: %d pairs in %.1f s -> %s', result['num_pairs'],
               time.perf_counter() - t0, FLAGS.output)
  print(f'wrote {FLAGS.output}' + (f' and plots in {FLAGS.plots}' if FLAGS.plots else ''))


if __name__ == '__main__':
  from songglm_jax import cli
  flags.mark_flags_as_required(['generated', 'reference', 'output'])
  cli.run(main)
