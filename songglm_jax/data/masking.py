"""Blank-infilling examples from prepared song records, vectorized over a batch of records.

Pre-training (SongGLM) gives each example one of four tasks, drawn by weight:
  ngram_smr, ngram_srr  word level: harmonized n-gram spans of the record (``spans_smr`` /
                        ``spans_srr``) in random order, skipping any that overlaps one already
                        drawn, until they cover ``word_rate`` of the notes; a record whose n-grams
                        cannot reach the rate (none, too few) takes T5-style random spans instead
                        (mean length ``mean_span_length``).
  phrase                whole phrases in random order until they cover ``phrase_rate``.
  song                  one contiguous span of ``round(song_rate * N)`` notes (at least 1) at a
                        uniform random offset, shown in Part A as the long-span mask LMASK.
Spans are the maximal runs of masked notes, so adjacent drawn n-grams or phrases merge into one
span. Fine-tuning examples mask the whole note part (see ``layout.py``).

Randomness: every draw is a counter-based hash of the example's 64-bit key, a stream id and a
counter (``masking_random.py``), so an example's task and masks depend only on
``(seed, epoch, record index, window index)`` and the reference implementation
(``masking_reference.py``) reproduces them exactly with plain loops.

Vectorized: a batch of records is held as its concatenated token rows plus offsets
(``record_batch.RecordBatch``, no padding); the objectives (``masking_spans.py``) and the layout
(``layout.py``) are index arithmetic over those flat arrays, with no Python loop over tokens.
Records too long for one packed row are cut into windows before masking (``masking_windows.py``).

This module draws the tasks and puts the steps together; it also re-exports the names callers use
as ``masking.<name>`` from the modules below it (``example_keys``, ``uniforms``, ``STREAM_*``,
``RecordBatch``, ``concat_ranges``, ``round_half_up``, ``notes_needed``).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from songglm_jax.data import layout
from songglm_jax.data import masking_spans as spans_lib
from songglm_jax.data import records as records_lib
from songglm_jax.data import tokenizer as tok
# Re-exported (see the module docstring); each name's home is the module it comes from.
from songglm_jax.data.masking_random import (  # noqa: F401
    STREAM_NGRAM, STREAM_PHRASE, STREAM_SHUFFLE, STREAM_SONG, STREAM_T5_CUTS, STREAM_T5_GAPS,
    STREAM_TASK, example_keys, uniforms)
from songglm_jax.data.masking_spans import notes_needed, round_half_up  # noqa: F401
from songglm_jax.data.record_batch import RecordBatch, concat_ranges  # noqa: F401

TASKS = ('ngram_smr', 'ngram_srr', 'phrase', 'song')
FINETUNE = 'finetune'
TASK_IDS = {name: i for i, name in enumerate(TASKS + (FINETUNE,))}
FINETUNE_MASKS = {'MASK': tok.MASK, 'LMASK': tok.LMASK}


@dataclasses.dataclass(frozen=True)
class MaskingOptions:
  """How examples are made (``config.pipeline`` mirrors these fields)."""
  word_rate: float = 0.15         # share of notes the word-level (n-gram) tasks mask
  phrase_rate: float = 0.5        # share of notes the phrase task masks (whole phrases)
  song_rate: float = 0.5          # share of notes in the song-level span (exact)
  task_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # order of TASKS
  mean_span_length: float = 5.0   # T5 fallback: mean length of a random span
  shuffle_spans: bool = True      # Part B spans in random order (else in song order)
  finetune_mask: str = 'MASK'     # the fine-tuning cue for the whole melody: 'MASK' (public
                                  # SongGLM code) or 'LMASK' (pre-training's song-level token)

  def validate(self) -> None:
    for name in ('word_rate', 'phrase_rate', 'song_rate'):
      v = getattr(self, name)
      if not 0 < v <= 1:
        raise ValueError(f'pipeline.{name}: expected a share in (0, 1], got {v}')
    w = np.asarray(self.task_weights, np.float64)
    if w.shape != (len(TASKS),) or np.any(w < 0) or w.sum() <= 0:
      raise ValueError(f'pipeline.task_weights: expected {len(TASKS)} weights >= 0 for {TASKS} '
                       f'with a positive sum, got {self.task_weights}')
    if self.finetune_mask not in FINETUNE_MASKS:
      raise ValueError(f'pipeline.finetune_mask: expected one of {tuple(FINETUNE_MASKS)}, got '
                       f'{self.finetune_mask!r}')
    if self.mean_span_length < 1:
      raise ValueError(f'pipeline.mean_span_length: expected >= 1, got {self.mean_span_length}')

  @classmethod
  def from_config(cls, cfg) -> 'MaskingOptions':
    """From a ConfigDict section holding the fields above; ``task_weights`` is a section with
    one float per task name."""
    opts = cls(word_rate=float(cfg.word_rate), phrase_rate=float(cfg.phrase_rate),
               song_rate=float(cfg.song_rate),
               task_weights=tuple(float(cfg.task_weights[t]) for t in TASKS),
               mean_span_length=float(cfg.mean_span_length),
               shuffle_spans=bool(cfg.shuffle_spans),
               finetune_mask=str(cfg.finetune_mask) if 'finetune_mask' in cfg else 'MASK')
    opts.validate()
    return opts


# ---- tasks and masks ------------------------------------------------------------------------
def choose_tasks(keys: np.ndarray, weights: Sequence[float]) -> np.ndarray:
  """Task id (index into TASKS) of each example by weight: int64 ``[M]``."""
  w = np.asarray(weights, np.float64)
  cum = np.cumsum(w) / w.sum()
  u = uniforms(keys, STREAM_TASK, 0)
  return np.minimum(np.searchsorted(cum, u, side='right'), len(w) - 1).astype(np.int64)


def _phrase_of_notes(batch: RecordBatch) -> np.ndarray:
  return batch.tokens[batch.note_rows(), tok.F.phrase_id].astype(np.int64) - tok.NUM_SPECIAL


def mask_notes(batch: RecordBatch, opts: MaskingOptions,
               tasks: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
  """Draw each example's task (unless given) and its masked notes.

  Returns (masked bool ``[sum N]`` in flat note order, task id int64 ``[M]``).
  """
  if tasks is None:
    tasks = choose_tasks(batch.keys, opts.task_weights)
  tasks = np.asarray(tasks, np.int64)
  n = batch.num_notes
  note_start = batch.note_start
  masked = np.zeros(int(note_start[-1]), bool)
  for task in np.unique(tasks).tolist():
    idx = np.flatnonzero(tasks == task)
    notes = concat_ranges(note_start[idx], n[idx])
    keys = batch.keys[idx]
    name = (TASKS + (FINETUNE,))[task]
    if name == 'song':
      m = spans_lib.song_mask(n[idx], keys, opts.song_rate)
    elif name == 'phrase':
      m = spans_lib.phrase_mask(_phrase_of_notes(batch)[notes], n[idx], batch.num_phrases[idx],
                                keys, opts.phrase_rate)
    elif name == FINETUNE:
      m = np.ones(len(notes), bool)
    else:
      lex = name.split('_')[1]
      k0 = batch.span_start[lex][idx]
      k = batch.span_start[lex][idx + 1] - k0
      cand = batch.spans[lex][concat_ranges(k0, k)]
      m = spans_lib.ngram_mask(n[idx], cand, k, keys, opts.word_rate, opts.mean_span_length)
    masked[notes] = m
  return masked, tasks


def make_examples(recs: Sequence[records_lib.SongRecord], keys: np.ndarray, opts: MaskingOptions,
                  task: Optional[str] = None):
  """GLM examples (``layout.Examples``) of records (which must fit) with the given keys.

  ``task``: None draws a pre-training task per example by weight; a name of ``TASKS`` forces it;
  ``'finetune'`` makes fine-tuning examples.
  """
  return batch_examples(RecordBatch.from_records(recs, keys), opts, task)


def batch_examples(batch: RecordBatch, opts: MaskingOptions, task: Optional[str] = None):
  """:func:`make_examples` of a record batch."""
  tasks = None
  if task is not None:
    if task not in TASK_IDS:
      raise ValueError(f'unknown task {task!r}; expected one of {TASKS + (FINETUNE,)}')
    tasks = np.full(len(batch), TASK_IDS[task], np.int64)
  masked, tasks = mask_notes(batch, opts, tasks)
  long_mask = (tasks == TASK_IDS['song']) | (
      (tasks == TASK_IDS[FINETUNE]) & (opts.finetune_mask == 'LMASK'))
  return layout.glm_layout(batch, masked, long_mask=long_mask,
                           finetune=tasks == TASK_IDS[FINETUNE], shuffle=opts.shuffle_spans,
                           tasks=tasks)
