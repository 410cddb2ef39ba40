"""The paper's ablations, each one change to a base config (default: paper_small).

    python -m songglm_jax.main --config=configs/ablations.py:VARIANT[,BASE] --workdir=W ...

VARIANT:
  no_alignment      no 2D alignment encoding (word_id and phrase_id embeddings off)
  no_2d_positions   GLM positions without the intra-span (block position) dimension
  random_spans      no harmonized n-gram lexicon: the word-level tasks mask T5-style random
                    spans (mean 5 notes) instead (the data is prepared without span lists)
  single_objective  one pre-training task (word-level n-grams; phrase and song tasks off)
BASE: paper_small (default), paper_base, default (tiny, CPU) or songglm_sample.

Each variant needs its own workdir (random_spans also prepares its own data).
"""

import importlib


def _no_alignment(c):
  c.model.update(use_word_ids=False, use_phrase_ids=False)


def _no_2d_positions(c):
  c.model.position_encoding = '1d'


def _random_spans(c):
  c.data.fit_lexicon = False


def _single_objective(c):
  c.pipeline.task_weights.update(phrase=0.0, song=0.0)


VARIANTS = {'no_alignment': _no_alignment, 'no_2d_positions': _no_2d_positions,
            'random_spans': _random_spans, 'single_objective': _single_objective}


def get_config(arg: str = ''):
  variant, _, base = arg.partition(',')
  if variant not in VARIANTS:
    raise ValueError(f'configs/ablations.py:{arg}: expected VARIANT[,BASE] with VARIANT in '
                     f'{sorted(VARIANTS)}')
  c = importlib.import_module(f'configs.{base or "paper_small"}').get_config()
  VARIANTS[variant](c)
  return c
