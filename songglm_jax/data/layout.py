"""GLM blank-infilling layout of masked records, vectorized over a batch (no loop over tokens).

For one example with record rows ``[BOS] syllables [EOS] [BOS] notes [EOS]`` and its spans (the
maximal runs of masked notes):
  Part A  the record with each span replaced by one MASK row (LMASK for the song-level task);
          fine-tuning drops the note part's BOS/EOS, so Part A is ``[BOS] syllables [EOS] MASK``.
  Part B  for each span, in shuffled order (or song order): ``[SEP] span rows``.
  targets Part A: PAD rows; Part B shifted by one, so a span's SEP predicts its first note and its
          last note predicts a closing SEP row.
  position_ids        Part A: 0, 1, ...; Part B: the Part A index of the span's MASK.
  block_position_ids  Part A: 0; Part B: 1 (the SEP), 2, 3, ... along the span.
  word_ids/phrase_ids raw alignment ids of the row (field value - NUM_SPECIAL); BOS rows 0, EOS
          rows those of the last syllable, MASK and SEP those of the span's first note.
An example has ``T + 2K`` tokens (T record rows, K spans); a fine-tuning example ``T``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from songglm_jax.data import masking_random
from songglm_jax.data import tokenizer as tok
from songglm_jax.data.record_batch import RecordBatch

BATCH_KEYS = ('tokens', 'targets', 'loss_mask', 'position_ids', 'block_position_ids', 'word_ids',
              'phrase_ids', 'is_part_a')
"""Per-token arrays of an example (the packed batch adds ``segment_ids``)."""


@dataclasses.dataclass
class Examples:
  """M examples as flat arrays: example ``b`` is ``arrays[k][starts[b]:starts[b + 1]]``."""
  arrays: dict        # BATCH_KEYS -> [sum L] (tokens/targets [sum L, F])
  starts: np.ndarray  # int64 [M + 1]
  tasks: np.ndarray   # int64 [M], index into masking.TASKS + ('finetune',)

  def __len__(self) -> int:
    return len(self.starts) - 1

  @property
  def lengths(self) -> np.ndarray:
    return np.diff(self.starts)

  def example(self, i: int) -> dict:
    a, b = int(self.starts[i]), int(self.starts[i + 1])
    return {k: v[a:b] for k, v in self.arrays.items()}


def glm_layout(batch: RecordBatch, masked: np.ndarray, *, long_mask: np.ndarray,
               finetune: np.ndarray, shuffle: bool,
               tasks: Optional[np.ndarray] = None) -> Examples:
  """Examples of a record batch given its masked notes.

  Args:
    batch: the records.
    masked: bool ``[sum N]``, flat note order; every example needs at least one masked note.
    long_mask: bool ``[M]``: Part A shows LMASK instead of MASK.
    finetune: bool ``[M]``: fine-tuning layout (all notes masked; note BOS/EOS dropped).
    shuffle: Part B spans in random order (stream ``STREAM_SHUFFLE`` of the example key).
  """
  m = len(batch)
  t_rows = batch.tokens
  n_rows = len(t_rows)
  rs = batch.row_start
  s = batch.num_syllables
  row_ex = np.repeat(np.arange(m), np.diff(rs))
  local = np.arange(n_rows) - rs[row_ex]
  row_masked = np.zeros(n_rows, bool)
  row_masked[batch.note_rows()] = masked
  if np.any(np.add.reduceat(row_masked, rs[:-1]) == 0):
    raise ValueError('glm_layout: an example has no masked note')
  prev = np.concatenate([[False], row_masked[:-1]])
  nxt = np.concatenate([row_masked[1:], [False]])
  is_start = row_masked & ~prev  # a note row is never first or last of an example
  is_end = row_masked & ~nxt
  keep_a = ~row_masked | is_start
  ft_row = np.asarray(finetune, bool)[row_ex]
  note_bos_eos = (local == s[row_ex] + 2) | (local == np.diff(rs)[row_ex] - 1)
  keep_a &= ~(ft_row & note_bos_eos)
  cum_a = np.cumsum(keep_a)
  before_ex = np.concatenate([[0], cum_a])[rs[:-1]]
  pos_a = cum_a - 1 - before_ex[row_ex]
  len_a = np.add.reduceat(keep_a.astype(np.int64), rs[:-1])

  # Spans, in row order: first row, length, example; then Part B offsets in the drawn order.
  sp_first = np.flatnonzero(is_start)
  sp_len = np.flatnonzero(is_end) - sp_first + 1
  sp_ex = row_ex[sp_first]
  k = np.bincount(sp_ex, minlength=m)
  sp_start = np.concatenate([[0], np.cumsum(k)])
  sp_j = np.arange(len(sp_first)) - sp_start[sp_ex]
  if shuffle:
    u = masking_random.uniforms(batch.keys[sp_ex], masking_random.STREAM_SHUFFLE, sp_j)
    order = np.lexsort((u, sp_ex))
  else:
    order = np.arange(len(sp_first))
  size = sp_len[order] + 1
  off = np.cumsum(size) - size
  off = off - off[sp_start[sp_ex]]  # order keeps examples grouped: sp_ex[order] == sp_ex
  sp_off = np.empty(len(order), np.int64)
  sp_off[order] = off

  lengths = len_a + np.bincount(sp_ex, weights=sp_len + 1, minlength=m).astype(np.int64)
  starts = np.concatenate([[0], np.cumsum(lengths)])
  total = int(starts[-1])

  # Source of every output token: a record row, or one of four special rows appended after them.
  pad_row, mask_row, lmask_row, sep_row = n_rows, n_rows + 1, n_rows + 2, n_rows + 3
  rows_a = np.flatnonzero(keep_a)
  dest_a = starts[row_ex[rows_a]] + pos_a[rows_a]
  sep_dest = starts[sp_ex] + len_a[sp_ex] + sp_off
  rows_b = np.flatnonzero(row_masked)
  sp_of_row = np.cumsum(is_start)[rows_b] - 1
  along = rows_b - sp_first[sp_of_row]
  dest_b = sep_dest[sp_of_row] + 1 + along
  dest_mask = starts[sp_ex] + pos_a[sp_first]

  src = np.empty(total, np.int64)  # every position is written below
  src[dest_a] = rows_a  # (the MASK positions hold the span's first row for now)
  src[sep_dest] = sp_first
  src[dest_b] = rows_b
  # Raw alignment ids of every record row (specials: BOS 0, EOS the last syllable's); MASK and
  # SEP take those of the span's first row, which ``src`` points at.
  raw = t_rows[:, [tok.F.word_id, tok.F.phrase_id]].astype(np.int32) - tok.NUM_SPECIAL
  typ = t_rows[:, tok.F.type]
  raw[typ == tok.BOS] = 0
  eos = np.flatnonzero(typ == tok.EOS)
  raw[eos] = raw[rs[row_ex[eos]] + s[row_ex[eos]]]
  out_raw = np.take(raw, src, axis=0)
  src[dest_mask] = np.where(np.asarray(long_mask, bool), lmask_row, mask_row)[sp_ex]
  src[sep_dest] = sep_row
  tgt = np.full(total, pad_row, np.int64)
  tgt[dest_b - 1] = rows_b
  tgt[dest_b[is_end[rows_b]]] = sep_row
  f = t_rows.shape[1]
  ext = np.concatenate([t_rows, np.repeat(np.array([tok.PAD, tok.MASK, tok.LMASK, tok.SEP],
                                                   np.int32)[:, None], f, axis=1)])
  out_tok = np.take(ext, src, axis=0)
  out_tgt = np.take(ext, tgt, axis=0)

  is_a = np.zeros(total, bool)
  is_a[dest_a] = True
  loss = (~is_a).astype(np.float32)
  pos = np.empty(total, np.int32)
  pos[dest_a] = pos_a[rows_a]
  pos[sep_dest] = pos_a[sp_first]
  pos[dest_b] = pos_a[sp_first][sp_of_row]
  block = np.zeros(total, np.int32)
  block[sep_dest] = 1
  block[dest_b] = 2 + along

  arrays = {'tokens': out_tok, 'targets': out_tgt, 'loss_mask': loss, 'position_ids': pos,
            'block_position_ids': block, 'word_ids': np.ascontiguousarray(out_raw[:, 0]),
            'phrase_ids': np.ascontiguousarray(out_raw[:, 1]), 'is_part_a': is_a}
  if tasks is None:
    tasks = np.full(m, -1, np.int64)
  return Examples(arrays=arrays, starts=starts, tasks=np.asarray(tasks, np.int64))
