"""The prepared-dataset format: ArrayRecord files per split, one record per song (window).

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

A prepared dataset folder holds each split's records, ``vocab.json``, optionally ``lexicon.json``,
and ``report.json`` (written last: its presence marks a complete dataset). A split's records are
either shards ``train-00000-of-00004.array_record`` ... ``train-00003-of-00004.array_record`` of
at most ``records_per_shard`` records each (``config.data.records_per_shard``), or -- the layout
before sharding, and ``records_per_shard`` 0 -- one file ``train.array_record``. Both read the
same: the split is the concatenation of its shards in shard order, so a record's index in the
split (which seeds its masks) does not depend on the layout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
import struct
from typing import Iterable, Sequence

import numpy as np

from songglm_jax import atomic

MAGIC = b'SGR1'
SPLITS = ('train', 'valid')
_SHARD = re.compile(r'^(?P<split>[a-z]+)-(?P<index>\d{5,})-of-(?P<count>\d{5,})\.array_record$')


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
  """The one-file layout's path of ``split`` (``records_per_shard`` 0, and datasets prepared
  before sharding); :func:`split_files` finds either layout."""
  if split not in SPLITS:
    raise ValueError(f'unknown split {split!r}; expected one of {SPLITS}')
  return pathlib.Path(folder) / f'{split}.array_record'


def shard_path(folder: str | os.PathLike, split: str, index: int, count: int) -> pathlib.Path:
  """``folder/<split>-<index>-of-<count>.array_record`` (five digits or more, from 0)."""
  split_path(folder, split)  # checks the split name
  return pathlib.Path(folder) / f'{split}-{index:05d}-of-{count:05d}.array_record'


def split_files(folder: str | os.PathLike, split: str) -> list[pathlib.Path]:
  """The record files of ``split`` in ``folder``, in order: its shards, or its one file, or
  ``[]`` when there are neither.

  Raises:
    ValueError: shards are missing, of two different counts, or beside a one-file split.
  """
  single = split_path(folder, split)
  folder = pathlib.Path(folder)
  shards = {}
  for p in folder.glob(f'{split}-*-of-*.array_record') if folder.is_dir() else ():
    m = _SHARD.match(p.name)
    if m and m['split'] == split:
      shards[(int(m['index']), int(m['count']))] = p
  if not shards:
    return [single] if single.is_file() else []
  counts = sorted({count for _, count in shards})
  if len(counts) > 1:
    raise ValueError(f'{folder}: {split} shards of {counts[0]} and of {counts[1]} files mixed; '
                     'prepare the dataset again')
  if single.exists():
    raise ValueError(f'{folder}: both {single.name} and {split} shards; prepare the dataset again')
  missing = [shard_path(folder, split, i, counts[0]).name for i in range(counts[0])
             if (i, counts[0]) not in shards]
  if missing:
    raise ValueError(f'{folder}: {len(missing)} {split} shard(s) missing, e.g. {missing[0]}; '
                     'prepare the dataset again')
  return [shards[(i, counts[0])] for i in range(counts[0])]


def open_split(folder: str | os.PathLike, split: str) -> RecordSource:
  """All records of ``split`` (either layout) as one source.

  Raises:
    ValueError: the split has no record files (or a broken set of shards).
  """
  paths = split_files(folder, split)
  if not paths:
    raise ValueError(f'{split_path(folder, split)}: not found (nor {split} shards); prepare the '
                     'dataset first (songglm_jax.prepare)')
  return RecordSource(paths)


def record_counts(paths: Sequence[str | os.PathLike]) -> list[int]:
  """The number of records in each file (read from each file's index, not its records)."""
  from array_record.python import array_record_module as arm
  counts = []
  for p in paths:
    reader = arm.ArrayRecordReader(str(p))
    try:
      counts.append(int(reader.num_records()))
    finally:
      reader.close()
  return counts


class ShardWriter:
  """Writes one split's records as they come, in shards of at most ``records_per_shard``
  (0: one file), so that a whole split never has to be held in memory.

  The number of shards, which their names carry, is known only at the end: each shard is
  written to a temporary ``.<split>-<index>-of-pending.array_record.<pid>.<hex>.tmp`` and
  :meth:`close` renames them all to their final names. Record files of ``split`` left by an
  earlier run are removed when the writer starts (see :func:`remove_split_files`); on an
  exception inside ``with`` the temporaries are removed. The files are byte-identical to
  :func:`write_split`'s for the same records.

  Raises:
    ValueError: ``records_per_shard`` < 0.
    OSError: a file cannot be written (naming it).
  """

  def __init__(self, folder: str | os.PathLike, split: str, records_per_shard: int):
    self._per = check_records_per_shard(records_per_shard)
    split_path(folder, split)  # checks the split name
    self._folder, self._split = pathlib.Path(folder), split
    remove_split_files(folder, split)
    self._done: list[pathlib.Path] = []  # finished shards, under their temporary names
    self._writer, self._tmp, self._in_shard = None, None, 0
    self.count = 0

  def _pending(self, index: int) -> pathlib.Path:
    if self._per == 0:
      return split_path(self._folder, self._split)
    return self._folder / f'{self._split}-{index:05d}-of-pending.array_record'

  def _open(self) -> None:
    from array_record.python import array_record_module as arm
    self._folder.mkdir(parents=True, exist_ok=True)
    self._tmp = atomic.temporary_path(self._pending(len(self._done)))
    try:
      self._writer = arm.ArrayRecordWriter(str(self._tmp), 'group_size:1')
    except RuntimeError as e:  # how array_record reports a file it cannot open
      raise OSError(f'{self._tmp}: cannot write ({e})') from None
    self._in_shard = 0

  def _finish(self) -> None:
    if self._writer is None:
      return
    try:
      self._writer.close()
    except RuntimeError as e:
      raise OSError(f'{self._tmp}: cannot write ({e})') from None
    fd = os.open(self._tmp, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)
    self._done.append(self._tmp)
    self._writer = self._tmp = None

  def write(self, record: SongRecord) -> None:
    if self._writer is None or (self._per and self._in_shard == self._per):
      self._finish()
      self._open()
    try:
      self._writer.write(encode(record))
    except RuntimeError as e:
      raise OSError(f'{self._tmp}: cannot write ({e})') from None
    self._in_shard += 1
    self.count += 1

  def close(self) -> list[pathlib.Path]:
    """Finish the last shard (an empty split is one empty shard) and give every shard its
    final name; returns the paths in order."""
    if self._writer is None and not self._done:
      self._open()
    self._finish()
    n = len(self._done)
    paths = ([split_path(self._folder, self._split)] if self._per == 0 else
             [shard_path(self._folder, self._split, i, n) for i in range(n)])
    for tmp, path in zip(self._done, paths):
      os.replace(tmp, path)
    self._done = []
    return paths

  def abort(self) -> None:
    """Drop what was written (the temporaries)."""
    if self._writer is not None:
      try:
        self._writer.close()
      except RuntimeError:
        pass
    for tmp in self._done + ([self._tmp] if self._tmp else []):
      tmp.unlink(missing_ok=True)
    self._writer, self._tmp, self._done = None, None, []

  def __enter__(self) -> 'ShardWriter':
    return self

  def __exit__(self, exc_type, *exc) -> None:
    if exc_type is not None:
      self.abort()


def write_split(folder: str | os.PathLike, split: str, recs: Iterable[SongRecord],
                records_per_shard: int) -> list[pathlib.Path]:
  """Write ``split`` in ``ceil(len / records_per_shard)`` shards (at least one, so an empty
  split is one empty shard), or as one file when ``records_per_shard`` is 0; returns the paths.
  Record files of ``split`` left by an earlier run are removed first (see
  :func:`remove_split_files`); the records stream through a :class:`ShardWriter`.

  Raises:
    ValueError: ``records_per_shard`` < 0.
    OSError: a file cannot be written.
  """
  with ShardWriter(folder, split, records_per_shard) as writer:
    for r in recs:
      writer.write(r)
    return writer.close()


def remove_split_files(folder: str | os.PathLike, split: str) -> list[pathlib.Path]:
  """Remove every record file of ``split`` in ``folder`` (either layout, any shard count) and
  their temporaries left by killed runs; returns what was removed."""
  folder = pathlib.Path(folder)
  single = split_path(folder, split)
  names = [p.name for p in folder.glob(f'{split}-*-of-*.array_record')
           if (m := _SHARD.match(p.name)) and m['split'] == split]
  names += [p.name[1:].split('.array_record.')[0] + '.array_record'
            for p in folder.glob(f'.{split}-*-of-*.array_record.*.tmp')]
  removed = []
  for name in sorted(set(names) | {single.name}):
    path = folder / name
    if path.is_file() and (name == single.name or _SHARD.match(name)):
      path.unlink()
      removed.append(path)
    removed += atomic.remove_stale_temporaries(path)
  return removed


def check_records_per_shard(value) -> int:
  """``value`` as a shard size: an integer >= 0 (0 = one file per split).

  Raises:
    ValueError: anything else, naming the config field.
  """
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
    raise ValueError(f'records_per_shard (config.data.records_per_shard): expected an integer '
                     f'>= 0 (records per shard file; 0 = one file per split), got {value!r}')
  return int(value)
