"""The model's own attention mask (``layers.glm_mask`` over ``AttnMeta.of_batch``) on packed
rows, and what it must be, worked out pair by pair from where each example sits in the row.

The expected mask is built from *examples* -- (start, end) spans of a row and each token's Part A
flag -- by the four rules of the GLM layout, one query at a time:

1. a padding token (in no example) attends to nothing, and nothing attends to it;
2. no token attends outside its own example;
3. a Part A token attends to every Part A token of its example (bidirectional), to no Part B;
4. a Part B token attends to every Part A token of its example and to the Part B tokens of its
   example at or before its own position (causal).

The spans come either from the packer's placements (:func:`spans_from_placement`, no batch field
read) or from the row's ``segment_ids`` as maximal runs of one non-zero id
(:func:`spans_from_segments`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from songglm_jax.model import AttnMeta, glm_mask


def model_mask(segment_ids: np.ndarray, is_part_a: np.ndarray) -> np.ndarray:
  """bool [R, L, L] (query, key): the mask the model applies to these packed rows."""
  meta = AttnMeta.of_batch({'segment_ids': jnp.asarray(segment_ids, jnp.int32),
                            'is_part_a': jnp.asarray(is_part_a)})
  return np.asarray(glm_mask(meta, meta))[:, 0]


def spans_from_placement(row: np.ndarray, offset: np.ndarray, lengths: np.ndarray,
                         num_rows: int) -> list[list[tuple[int, int]]]:
  """Per row, the (start, end) of every example placed in it (``packing.first_fit``'s output)."""
  spans = [[] for _ in range(num_rows)]
  for r, o, n in zip(row.tolist(), offset.tolist(), lengths.tolist()):
    spans[r].append((o, o + n))
  return spans


def spans_from_segments(segment_ids: np.ndarray) -> list[tuple[int, int]]:
  """The (start, end) of every maximal run of one non-zero segment id in a row."""
  spans, start = [], None
  seg = segment_ids.tolist()
  for t, s in enumerate(seg + [0]):
    if start is not None and (t == len(seg) or s != seg[start]):
      spans.append((start, t))
      start = None
    if start is None and t < len(seg) and s != 0:
      start = t
  return spans


def expected_mask(length: int, spans: list[tuple[int, int]], part_a: list[bool]) -> np.ndarray:
  """bool [L, L] by the rules of the module docstring (``part_a``: each token's flag)."""
  allowed = np.zeros((length, length), dtype=bool)
  for start, end in spans:
    a_keys = [j for j in range(start, end) if part_a[j]]
    for i in range(start, end):
      keys = list(a_keys)  # rules 3 and 4: all of Part A of the example
      if not part_a[i]:
        keys += [j for j in range(start, i + 1) if not part_a[j]]  # rule 4: Part B so far
      allowed[i, keys] = True
  return allowed  # rules 1 and 2: nothing else


def assert_same(got: np.ndarray, want: np.ndarray, where: str = '') -> None:
  """``got == want`` elementwise, else an AssertionError naming the first differing pair."""
  bad = np.argwhere(got != want)
  if len(bad):
    i, j = bad[0].tolist()
    raise AssertionError(f'{where}: {len(bad)} pairs differ; first: query {i} -> key {j} '
                         f'is {bool(got[i, j])} in the mask, expected {bool(want[i, j])}')
