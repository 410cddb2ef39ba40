"""A batch of prepared records as flat arrays: token rows concatenated, no padding.

The masking objectives (``masking_spans.py``) and the GLM layout (``layout.py``) are index
arithmetic over these arrays, with no Python loop over tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from songglm_jax.data import records as records_lib
from songglm_jax.data import tokenizer as tok


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
