"""The paper's ablations, each one change to a base config (default: paper_small).

    python -m songglm_jax.main --config=configs/ablations.py:VARIANT[,BASE] --workdir=W ...

Every row uses the paper's model: the base config's options beyond the paper
(``config.melody_quality``: chained note fields, phrase-position and note-stress features) are
switched off; its sampling settings are kept.

VARIANT (the paper's row in brackets; benchmarks/ablation_bench.py runs them all):
  full              the base config [SongGLM_small]
  scratch           no pre-training: stages without pretrain, finetune.init_from='none'
                    [Scratch]
  clm               left-to-right pre-training [CLM]. In this GLM framework: the song-level
                    task only, with song_rate=1.0 -- every pre-training example masks the whole
                    melody as one span and predicts it left to right given the lyrics (Part A:
                    the syllables and the long-span cue LMASK), i.e. a causal language model of
                    the notes conditioned on the lyrics, with the same model and 2D encodings
  no_alignment      no 2D alignment encoding [- 2D alignment]: no word_id / phrase_id embedding
                    tables and no word_id output head (word_id leaves model.target_fields), so
                    the model never sees nor predicts which syllable a note is sung on. The
                    decoder then assigns notes to syllables without the alignment head: one note
                    per syllable in order, stopping after the last syllable
                    (model/sampling.py, next_syllable)
  no_2d_positions   GLM positions without the intra-span (block position) dimension (ours)
  random_spans      no harmonized n-gram lexicon: the word-level tasks mask T5-style random
                    spans (mean 5 notes) instead (the data is prepared without span lists)
                    [Random spans]
  ngram_only        the word-level n-gram tasks only (phrase and song tasks off)
                    [Harmonized n-gram only]; alias: single_objective
  no_smr            n-gram spans from the SRR lexicon only: task ngram_smr off, its weight
                    moved to ngram_srr (the word level keeps its share of examples) [- SMR]
  no_srr            n-gram spans from the SMR lexicon only (the mirror image) [- SRR]
  phrase_only       the phrase task only [Phrase only]
  long_span_only    the song-level (long span, song_rate 0.5) task only [Long span only]
BASE: paper_small (default), paper_base, default (tiny, CPU) or songglm_sample.

Each variant needs its own workdir (random_spans also prepares its own data).
"""

import importlib

TASKS = ('ngram_smr', 'ngram_srr', 'phrase', 'song')


def _full(c):
  del c


def _scratch(c):
  c.stages = ','.join(s.strip() for s in str(c.stages).split(',')
                      if s.strip() and s.strip() != 'pretrain')
  c.finetune.init_from = 'none'


def _only(c, *tasks):
  c.pipeline.task_weights.update({t: 1.0 if t in tasks else 0.0 for t in TASKS})


def _clm(c):
  _only(c, 'song')
  c.pipeline.song_rate = 1.0


def _no_alignment(c):
  c.model.update(use_word_ids=False, use_phrase_ids=False)
  c.model.target_fields = ','.join(f.strip() for f in str(c.model.target_fields).split(',')
                                   if f.strip() and f.strip() != 'word_id')


def _no_2d_positions(c):
  c.model.position_encoding = '1d'


def _random_spans(c):
  c.data.fit_lexicon = False


def _ngram_only(c):
  c.pipeline.task_weights.update(phrase=0.0, song=0.0)


def _without(c, lexicon, other):
  # The word-level objective keeps its share of the examples: the other lexicon's task takes
  # the removed task's weight.
  w = c.pipeline.task_weights
  w[f'ngram_{other}'] = w[f'ngram_{other}'] + w[f'ngram_{lexicon}']
  w[f'ngram_{lexicon}'] = 0.0


def _no_smr(c):
  _without(c, 'smr', 'srr')


def _no_srr(c):
  _without(c, 'srr', 'smr')


VARIANTS = {
    'full': _full, 'scratch': _scratch, 'clm': _clm, 'no_alignment': _no_alignment,
    'no_2d_positions': _no_2d_positions, 'random_spans': _random_spans,
    'ngram_only': _ngram_only, 'single_objective': _ngram_only, 'no_smr': _no_smr,
    'no_srr': _no_srr, 'phrase_only': lambda c: _only(c, 'phrase'),
    'long_span_only': lambda c: _only(c, 'song'),
}


def get_config(arg: str = ''):
  variant, _, base = arg.partition(',')
  if variant not in VARIANTS:
    raise ValueError(f'configs/ablations.py:{arg}: expected VARIANT[,BASE] with VARIANT in '
                     f'{sorted(VARIANTS)}')
  c = importlib.import_module(f'configs.{base or "paper_small"}').get_config()
  # The paper's model: the options beyond it (config.melody_quality's chained fields and
  # phrase / stress features) off in every row; sampling stays the base config's per-field
  # temperatures, without the lyric-melody priors of decoding (also beyond the paper, and the
  # runs of seed 0 at b801309 were made without them).
  c.model.update(field_conditioning='none', phrase_position=False, note_syllable_stress=False)
  c.generate.update(stress_beat_bias=0.0, phrase_rest_bias=0.0, stress_duration_bias=0.0,
                    phrase_final_long_bias=0.0, legato_bias=0.0, duration_offsets='')
  # Pitch and word id at T 1.0 over the whole distribution, as every row of docs/ablations.md
  # was sung (songglm_sample samples pitch at 1.2 in top-p 0.95 and the word id at 1.2 since
  # 2026-11-26: chosen for its own model).
  c.generate.temperature.update(pitch=1.0, word_id=1.0)
  c.generate.top_p.pitch = 1.0
  # Every row fine-tuned with the model's dropout (songglm_sample fine-tunes with its own 0.2
  # since 2026-11-26, docs/quality.md diagnosis 15).
  c.finetune.dropout_rate = -1.0
  VARIANTS[variant](c)
  return c
