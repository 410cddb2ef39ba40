r"""Songs on disk -> a prepared dataset that Grain reads by index.

    python -m songglm_jax.prepare --source=DIR|music21 --output=OUT \
        [--workers=N] [--valid_fraction=0.05] [--min_count=2] [--stress_lookup=word] \
        [--fit_lexicon | --lexicon=PATH] [--limit=N] [--records_per_shard=10000] \
        [--lexicon_partitions=0]

The stages, the files written and how a re-run treats an earlier output:
``songglm_jax/data/prepare.py`` (:func:`~songglm_jax.data.prepare.prepare_dataset`).
"""

from __future__ import annotations

import os

from absl import flags

from songglm_jax.data.prepare import PrepareOptions, prepare_dataset

FLAGS = flags.FLAGS
flags.DEFINE_string('source', None, "folder of songs (recursive), one song file, or 'music21'")
flags.DEFINE_string('output', None, 'output folder of the prepared dataset')
flags.DEFINE_integer('workers', max(1, min(8, (os.cpu_count() or 1))), 'worker processes')
flags.DEFINE_float('valid_fraction', PrepareOptions.valid_fraction, 'share of files held out')
flags.DEFINE_integer('min_count', PrepareOptions.min_count, 'minimum count of a vocabulary syllable')
flags.DEFINE_enum('stress_lookup', 'word', ['word', 'syllable'], 'syllable stress lookup')
flags.DEFINE_bool('fit_lexicon', False, 'fit the harmonized n-gram lexicon on this corpus')
flags.DEFINE_string('lexicon', '', 'reuse a fitted lexicon.json')
flags.DEFINE_integer('limit', 0, 'use only the first N input files (0 = all)')
flags.DEFINE_integer('records_per_shard', PrepareOptions.records_per_shard,
                     'records per shard file of a split (0: one file per split)')
flags.DEFINE_integer('lexicon_partitions', 0, 'with --fit_lexicon: hash partitions the n-gram '
                     'counts are made in (0: one per 2**18 syllables; -1: the reference fit, which '
                     'holds every train song in memory); the lexicon does not depend on it')


def main(argv):
  del argv
  opts = PrepareOptions(valid_fraction=FLAGS.valid_fraction, min_count=FLAGS.min_count,
                        stress_lookup=FLAGS.stress_lookup, fit_lexicon=FLAGS.fit_lexicon,
                        lexicon=FLAGS.lexicon, limit=FLAGS.limit,
                        records_per_shard=FLAGS.records_per_shard)
  report = prepare_dataset(FLAGS.source, FLAGS.output, opts, workers=FLAGS.workers,
                           lexicon_partitions=FLAGS.lexicon_partitions)
  print(f"prepared {report['songs']} songs {report['splits']} from {report['files']} files "
        f"into {FLAGS.output}; skipped {report['skipped'] or 'none'}")


if __name__ == '__main__':
  from songglm_jax import cli
  flags.mark_flags_as_required(['source', 'output'])
  cli.run(main)
