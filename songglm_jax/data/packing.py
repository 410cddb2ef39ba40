"""First-fit packing of whole examples into rows of ``seq_len`` tokens, with segment ids.

Examples of a chunk are placed longest first (first-fit decreasing): each goes into the first
row that still has room for all of it, else into a new row. A row holds its examples one after
the other from position 0, then padding; ``segment_ids`` numbers the examples of a row 1, 2, ...
in placement order and is 0 on padding. Every per-token array keeps the example's own values
(GLM positions restart at 0 in each example); padding is all zeros (PAD rows, loss mask 0,
``is_part_a`` False).

The model's attention rule needs nothing else from the host:
``allowed[i, j] = seg[i] == seg[j] != 0 and (is_part_a[j] or (not is_part_a[i] and j <= i))``
(``model/layers.glm_mask``; tests/data/attention.py checks it pair by pair on packed rows).
"""

from __future__ import annotations

import numpy as np

from songglm_jax.data import layout

ROW_KEYS = layout.BATCH_KEYS + ('segment_ids',)


def first_fit(lengths: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray, int]:
  """Rows for examples of the given lengths, first-fit decreasing.

  Returns (row of each example int64 [M], its offset in the row int64 [M], number of rows).

  Raises:
    ValueError: an example is longer than ``seq_len``.
  """
  lengths = np.asarray(lengths, np.int64)
  if len(lengths) and lengths.max() > seq_len:
    raise ValueError(f'first_fit: an example of {lengths.max()} tokens exceeds seq_len={seq_len}')
  order = np.argsort(-lengths, kind='stable')
  row = np.empty(len(lengths), np.int64)
  offset = np.empty(len(lengths), np.int64)
  used: list[int] = []  # tokens used in each open row
  least = seq_len  # fewest tokens used in any open row (skip the scan when nothing fits)
  for i, length in zip(order.tolist(), lengths[order].tolist()):
    r = len(used)
    if least + length <= seq_len:
      r = next(k for k, u in enumerate(used) if u + length <= seq_len)
    if r == len(used):
      used.append(0)
    row[i], offset[i] = r, used[r]
    used[r] += length
    least = min(used)
  return row, offset, len(used)


def pack(examples: layout.Examples, seq_len: int) -> dict[str, np.ndarray]:
  """Pack examples into rows: ``ROW_KEYS`` -> ``[R, seq_len]`` (tokens/targets ``[R, L, F]``)."""
  lengths = examples.lengths
  row, offset, num_rows = first_fit(lengths, seq_len)
  ex = np.repeat(np.arange(len(lengths)), lengths)
  within = np.arange(int(examples.starts[-1])) - examples.starts[ex]
  dest = (row * seq_len + offset)[ex] + within
  out = {}
  for key, value in examples.arrays.items():
    flat = np.zeros((num_rows * seq_len,) + value.shape[1:], value.dtype)
    flat[dest] = value
    out[key] = flat.reshape((num_rows, seq_len) + value.shape[1:])
  # Segment id = rank of the example's offset within its row (placement order) + 1.
  seg_of = np.empty(len(lengths), np.int32)
  by_row = np.lexsort((offset, row))
  first = np.searchsorted(row[by_row], row[by_row], side='left')
  seg_of[by_row] = np.arange(len(lengths)) - first + 1
  seg = np.zeros(num_rows * seq_len, np.int32)
  seg[dest] = seg_of[ex]
  out['segment_ids'] = seg.reshape(num_rows, seq_len)
  return out


def efficiency(rows: dict[str, np.ndarray]) -> float:
  """Share of non-padding tokens in packed rows."""
  seg = rows['segment_ids']
  return float(np.count_nonzero(seg)) / max(1, seg.size)


def empty_rows(count: int, seq_len: int, num_fields: int) -> dict[str, np.ndarray]:
  """All-padding rows (used to fill the last batch of a finite pipeline)."""
  shapes = {'tokens': (count, seq_len, num_fields), 'targets': (count, seq_len, num_fields)}
  dtypes = {'loss_mask': np.float32, 'is_part_a': bool}
  return {k: np.zeros(shapes.get(k, (count, seq_len)), dtypes.get(k, np.int32))
          for k in ROW_KEYS}
