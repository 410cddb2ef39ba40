"""The prepared-dataset format: one ArrayRecord file per split, one record per song (window).

Why ArrayRecord: it is the JAX ecosystem's random-access record format; Grain reads it by index
(``grain.python.ArrayRecordDataSource``), so a global shuffle needs no index of our own, and its
writer is byte-deterministic.

A record is ``MAGIC | uint32 header length | JSON header | array bytes``. The header (UTF-8 JSON,
sorted keys) holds the scalar metadata and, for each array, its dtype, shape and byte offset;
arrays are stored little-endian and C-ordered. No pickle: a record decodes with ``np.frombuffer``.

Fields of a song record:
  tokens            int32 [T, F]  the song's token rows (``data/tokenizer.py``)
  time_signatures   int64 [K, 3]  (tick, numerator, denominator) of the song (window)
  spans_smr         int32 [A, 2]  harmonized n-gram spans [start, end) in note index space
  spans_srr         int32 [B, 2]  (both empty when no lexicon was used)
  name, source (str), tempo (float)

A prepared dataset folder holds ``train.array_record``, ``valid.array_record``, ``vocab.json``,
optionally ``lexicon.json``, and ``report.json`` (written last: its presence marks a complete
dataset).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import struct
from typing import Iterable, Sequence

import numpy as np

from songglm_jax import atomic

MAGIC = b'SGR1'
SPLITS = ('train', 'valid')


@dataclasses.dataclass(frozen=True, eq=False)
class SongRecord:
  tokens: np.ndarray
  time_signatures: np.ndarray
  spans_smr: np.ndarray
  spans_srr: np.ndarray
  name: str = ''
  source: str = ''
  tempo: float = 120.0


_ARRAYS = {'tokens': np.int32, 'time_signatures': np.int64, 'spans_smr': np.int32,
           'spans_srr': np.int32}
_SCALARS = ('name', 'source', 'tempo')


def encode(record: SongRecord) -> bytes:
  """Bytes of a record (deterministic: the same record gives the same bytes)."""
  header: dict = {k: getattr(record, k) for k in _SCALARS}
  header['tempo'] = float(header['tempo'])
  chunks, offset, arrays = [], 0, {}
  for key, dtype in _ARRAYS.items():
    a = np.ascontiguousarray(getattr(record, key), dtype=np.dtype(dtype).newbyteorder('<'))
    arrays[key] = {'shape': list(a.shape), 'offset': offset}
    chunks.append(a.tobytes())
    offset += a.nbytes
  header['arrays'] = arrays
  head = json.dumps(header, sort_keys=True, ensure_ascii=False).encode('utf-8')
  return MAGIC + struct.pack('<I', len(head)) + head + b''.join(chunks)


def decode(data: bytes) -> SongRecord:
  """A record from its bytes.

  Raises:
    ValueError: the bytes are not a song record.
  """
  if data[:4] != MAGIC:
    raise ValueError('not a songglm_jax song record (bad magic)')
  (n,) = struct.unpack('<I', data[4:8])
  header = json.loads(data[8:8 + n].decode('utf-8'))
  body = memoryview(data)[8 + n:]
  out = {k: header[k] for k in _SCALARS}
  for key, dtype in _ARRAYS.items():
    spec = header['arrays'][key]
    dt = np.dtype(dtype).newbyteorder('<')
    count = math.prod(spec["shape"])
    arr = np.frombuffer(body, dtype=dt, count=count, offset=spec['offset'])
    out[key] = arr.reshape(spec['shape']).astype(dtype, copy=False)
  return SongRecord(**out)


def write_records(path: str | os.PathLike, records: Iterable[SongRecord]) -> int:
  """Write records to an ArrayRecord file atomically; returns the number written.

  Raises:
    OSError: the file cannot be written (naming it).
  """
  from array_record.python import array_record_module as arm
  count = 0
  with atomic.replacing(path) as tmp:
    writer = arm.ArrayRecordWriter(str(tmp), 'group_size:1')
    try:
      for r in records:
        writer.write(encode(r))
        count += 1
      writer.close()
    except RuntimeError as e:  # how array_record reports a file it cannot open or write
      raise OSError(f'{path}: cannot write ({e})') from None
  return count


class RecordSource:
  """Random access to the decoded records of one or more ArrayRecord files (a Grain source)."""

  def __init__(self, paths: Sequence[str | os.PathLike]):
    import grain.python as grain
    self._paths = [str(p) for p in paths]
    for p in self._paths:
      if not os.path.isfile(p):
        raise ValueError(f'record file not found: {p}')
    self._source = grain.ArrayRecordDataSource(self._paths)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> SongRecord:
    return decode(self._source[index])

  def __repr__(self) -> str:
    return f'RecordSource({self._paths}, {len(self)} records)'


def split_path(folder: str | os.PathLike, split: str) -> pathlib.Path:
  if split not in SPLITS:
    raise ValueError(f'unknown split {split!r}; expected one of {SPLITS}')
  return pathlib.Path(folder) / f'{split}.array_record'
