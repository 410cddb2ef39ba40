"""The base config: every field the programs read, each with a comment.

Config files in ``configs/`` call :func:`base_config` and change what they need; a field that is
not declared here does not exist (``lock_config=True`` rejects typos in ``--config.x=v``).
"""

from __future__ import annotations

import ml_collections

STAGES = ('prepare',)  # the stages this version of the program can run, in order


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.stages = 'prepare'     # comma-separated subset of STAGES, run in order
  c.seed = 0               # one seed for data order, masking, initialisation and sampling

  c.data = d = ml_collections.ConfigDict()
  d.pretrain_source = 'music21'  # folder of songs, one song file, or 'music21' (bundled corpus)
  d.finetune_source = ''   # lyrics->melody corpus; '' = fine-tune on the pre-training data
  d.workers = 2            # reader processes of `prepare` (output does not depend on it)
  d.limit = 0              # use only the first N input files of each source (0 = all)
  d.valid_fraction = 0.05  # share of files held out for evaluation (hash of the file path)
  d.min_count = 2          # a syllable enters the vocabulary when seen this often
  d.stress_lookup = 'word'  # 'word': rebuild words from syllables; 'syllable': public SongGLM
  d.max_syllables = 256    # word-id cap: longer songs are cut into windows at phrase boundaries
  d.max_phrases = 128      # phrase-id cap (same windowing)
  d.max_bars = 512         # bar-field cap (same windowing)
  d.max_bar_ticks = 3840   # longest bar the position grid covers (8 quarters at 480 per quarter)
  d.fit_lexicon = True     # fit the harmonized n-gram lexicon on the pre-training data (the
                           # fine-tuning data is then prepared with it)
  d.lexicon_max_n = 12     # longest n-gram scored (N in the paper)
  d.lexicon_min_span_n = 2  # shortest n-gram used for spans: every unigram scores 0 by
                           # definition, so selecting unigrams by rank would select by count
  d.lexicon_max_span_n = 4  # longest n-gram used for spans
  d.lexicon_max_rank = 0.3  # n-grams ranked in the best 30% of their length are used

  c.pipeline = p = ml_collections.ConfigDict()
  p.seq_len = 1024          # tokens per packed row; longer songs are windowed at phrase boundaries
  p.batch_size = 8          # packed rows per step over all processes (multiple of process count)
  p.chunk_records = 256     # records masked and packed together (first-fit decreasing per chunk)
  p.workers = 0             # Grain worker processes: part of the experiment (the stream and a
                            # saved iterator state depend on it)
  p.worker_buffer = 2       # batches each worker prepares ahead
  p.read_threads = 1        # threads preparing chunks ahead in each process (stream unchanged)
  p.word_rate = 0.15        # share of notes masked by the n-gram tasks
  p.phrase_rate = 0.5       # share of notes masked by the phrase task (whole phrases)
  p.song_rate = 0.5         # share of notes in the single song-level span (long-span MASK)
  p.mean_span_length = 5.0  # random-span fallback when a song's n-grams cannot reach word_rate
  p.shuffle_spans = True    # Part B spans in random order
  p.task_weights = ml_collections.ConfigDict(  # relative weights of the pre-training tasks
      dict(ngram_smr=1.0, ngram_srr=1.0, phrase=1.0, song=1.0))
  return c


def parse_stages(config: ml_collections.ConfigDict) -> list[str]:
  """The stages to run, checked against :data:`STAGES`."""
  stages = [s.strip() for s in str(config.stages).split(',') if s.strip()]
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise ValueError(f'config.stages: unknown stage(s) {unknown}; this version runs {STAGES}')
  if not stages:
    raise ValueError('config.stages: empty')
  return sorted(stages, key=STAGES.index)
