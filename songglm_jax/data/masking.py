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
counter (:func:`uniforms`); the key comes from ``(seed, epoch, record index, window index)``
(:func:`example_keys`). So an example's task and masks depend only on those four numbers -- not on
which other records share its batch, the batch size, the number of workers or the process -- and
the reference implementation (``masking_reference.py``) reproduces them exactly with plain loops.

Vectorized: a batch of records is held as its concatenated token rows plus offsets
(:class:`RecordBatch`, no padding); objectives and layout are index arithmetic over those flat
arrays, with no Python loop over tokens. Records too long for one packed row are cut into windows
before masking (``masking_windows.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from songglm_jax.data import records as records_lib
from songglm_jax.data import tokenizer as tok

TASKS = ('ngram_smr', 'ngram_srr', 'phrase', 'song')
FINETUNE = 'finetune'
TASK_IDS = {name: i for i, name in enumerate(TASKS + (FINETUNE,))}
FINETUNE_MASKS = {'MASK': tok.MASK, 'LMASK': tok.LMASK}

# Stream ids of the counter-based random draws (one per decision, see module docstring).
STREAM_TASK, STREAM_SONG, STREAM_PHRASE, STREAM_NGRAM = 1, 2, 3, 4
STREAM_T5_CUTS, STREAM_T5_GAPS, STREAM_SHUFFLE = 5, 6, 7


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


# ---- counter-based randomness ---------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM_MUL = np.uint64(0xD1B54A32D192ED03)


def _mix(x: np.ndarray) -> np.ndarray:
  """The splitmix64 finalizer on a uint64 array (a bijection with good avalanche)."""
  x = x ^ (x >> np.uint64(30))
  x = x * np.uint64(0xBF58476D1CE4E5B9)
  x = x ^ (x >> np.uint64(27))
  x = x * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


def _u64(v) -> np.ndarray:
  a = np.atleast_1d(np.asarray(v))
  if a.dtype != np.uint64:
    a = a.astype(np.int64).astype(np.uint64)  # two's complement for negative values
  return a


def example_keys(seed: int, epoch, record_index, window=0) -> np.ndarray:
  """64-bit key of each example: uint64 ``[M]`` from broadcastable ints."""
  with np.errstate(over='ignore'):
    k = _mix(_u64(seed) + _GOLDEN)
    for v in (epoch, record_index, window):
      k = _mix(k + (_u64(v) + np.uint64(1)) * _GOLDEN)
  return k


def uniforms(keys, stream: int, counters) -> np.ndarray:
  """Uniform floats in [0, 1) (float64, 53 random bits), one per (key, counter) pair.

  ``keys`` (uint64) and ``counters`` (ints >= 0) broadcast against each other.
  """
  with np.errstate(over='ignore'):
    base = _mix(_u64(keys) + np.uint64(stream) * _STREAM_MUL)
    h = _mix(base + (_u64(counters) + np.uint64(1)) * _GOLDEN)
  return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def round_half_up(x) -> np.ndarray:
  return np.floor(np.asarray(x, np.float64) + 0.5 + 1e-9).astype(np.int64)


def notes_needed(rate: float, num_notes) -> np.ndarray:
  """Smallest note count that covers ``rate`` of ``num_notes`` (at least 1): int64."""
  return np.maximum(1, np.ceil(rate * np.asarray(num_notes, np.float64) - 1e-9)).astype(np.int64)


def choose_tasks(keys: np.ndarray, weights: Sequence[float]) -> np.ndarray:
  """Task id (index into TASKS) of each example by weight: int64 ``[M]``."""
  w = np.asarray(weights, np.float64)
  cum = np.cumsum(w) / w.sum()
  u = uniforms(keys, STREAM_TASK, 0)
  return np.minimum(np.searchsorted(cum, u, side='right'), len(w) - 1).astype(np.int64)


# ---- a batch of records as flat arrays ------------------------------------------------------
@dataclasses.dataclass
class RecordBatch:
  """M records, their token rows concatenated (no padding).

  Example ``b`` owns rows ``row_start[b]:row_start[b + 1]`` laid out
  ``[BOS] S syllables [EOS] [BOS] N notes [EOS]``; its notes are the flat note indices
  ``note_start[b]:note_start[b + 1]``; its n-gram candidates of lexicon ``x`` are rows
  ``span_start[x][b]:span_start[x][b + 1]`` of ``spans[x]`` ([start, end) note indices).
  """
  tokens: np.ndarray          # int32 [R, F]
  row_start: np.ndarray       # int64 [M + 1]
  num_syllables: np.ndarray   # int64 [M]
  num_notes: np.ndarray       # int64 [M]
  num_phrases: np.ndarray     # int64 [M]
  spans: dict                 # 'smr' / 'srr' -> int64 [K, 2]
  span_start: dict            # 'smr' / 'srr' -> int64 [M + 1]
  keys: np.ndarray            # uint64 [M]

  def __len__(self) -> int:
    return len(self.num_notes)

  @property
  def note_start(self) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(self.num_notes)])

  def note_rows(self) -> np.ndarray:
    """Row (into ``tokens``) of every note, in flat note order: int64 ``[sum N]``."""
    return concat_ranges(self.row_start[:-1] + self.num_syllables + 3, self.num_notes)

  @classmethod
  def from_records(cls, recs: Sequence[records_lib.SongRecord], keys: np.ndarray,
                   names: Optional[Sequence[str]] = None) -> 'RecordBatch':
    """Check the layout of every record and concatenate them.

    Raises:
      ValueError: a record is not laid out ``[BOS] syllables [EOS] [BOS] notes [EOS]`` or holds an
        n-gram span outside its notes (the message names the record).
    """
    if len(recs) == 0:
      raise ValueError('RecordBatch: no records')
    lengths = np.array([len(r.tokens) for r in recs], np.int64)
    tokens = np.concatenate([r.tokens for r in recs]).astype(np.int32, copy=False)
    row_start = np.concatenate([[0], np.cumsum(lengths)])
    typ = tokens[:, tok.F.type]
    s = np.add.reduceat((typ == tok.LYRIC).astype(np.int64), row_start[:-1])
    n = np.add.reduceat((typ == tok.NOTE).astype(np.int64), row_start[:-1])
    first = row_start[:-1]
    bad = ((lengths != s + n + 4) | (s < 1) | (n < 1) | (typ[first] != tok.BOS)
           | (typ[first + s + 1] != tok.EOS) | (typ[np.minimum(first + s + 2, len(typ) - 1)]
                                                != tok.BOS) | (typ[row_start[1:] - 1] != tok.EOS))
    if bad.any():
      i = int(np.flatnonzero(bad)[0])
      raise ValueError(f'record {_name(recs, names, i)}: tokens are not laid out '
                       '[BOS] syllables [EOS] [BOS] notes [EOS] with >= 1 syllable and note')
    num_phrases = tokens[first + s, tok.F.phrase_id].astype(np.int64) - tok.NUM_SPECIAL + 1
    spans, span_start = {}, {}
    for lex in ('smr', 'srr'):
      arrs = [np.asarray(getattr(r, f'spans_{lex}'), np.int64).reshape(-1, 2) for r in recs]
      k = np.array([len(a) for a in arrs], np.int64)
      flat = np.concatenate(arrs) if k.sum() else np.zeros((0, 2), np.int64)
      ex = np.repeat(np.arange(len(recs)), k)
      bad = (flat[:, 0] < 0) | (flat[:, 1] <= flat[:, 0]) | (flat[:, 1] > n[ex])
      if bad.any():
        i = int(ex[np.flatnonzero(bad)[0]])
        raise ValueError(f'record {_name(recs, names, i)}: spans_{lex} holds a span outside '
                         f'[0, {n[i]}) notes or an empty one')
      spans[lex] = flat
      span_start[lex] = np.concatenate([[0], np.cumsum(k)])
    return cls(tokens=tokens, row_start=row_start, num_syllables=s, num_notes=n,
               num_phrases=num_phrases, spans=spans, span_start=span_start,
               keys=np.asarray(keys, np.uint64).reshape(len(recs)))


def _name(recs, names, i: int) -> str:
  return repr(names[i] if names is not None else (recs[i].name or f'#{i}'))


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """``concatenate([arange(a, a + n) for a, n in zip(starts, lengths)])`` without a loop."""
  lengths = np.asarray(lengths, np.int64)
  total = int(lengths.sum())
  offsets = np.cumsum(lengths) - lengths
  return np.repeat(np.asarray(starts, np.int64) - offsets, lengths) + np.arange(total)


def _phrase_of_notes(batch: RecordBatch) -> np.ndarray:
  return batch.tokens[batch.note_rows(), tok.F.phrase_id].astype(np.int64) - tok.NUM_SPECIAL


def mask_notes(batch: RecordBatch, opts: MaskingOptions,
               tasks: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
  """Draw each example's task (unless given) and its masked notes.

  Returns (masked bool ``[sum N]`` in flat note order, task id int64 ``[M]``).
  """
  from songglm_jax.data import masking_spans as spans_lib  # (it imports this module)
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
  from songglm_jax.data import layout  # (it imports this module)
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
