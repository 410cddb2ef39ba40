"""Songs parked on disk between prepare's two passes, so that its memory does not grow with the
corpus.

``prepare`` reads every file before it can tokenize any: the vocabularies are fitted on the
whole train split first. Instead of a list of every song, each song goes, as it is read, to a
temporary file of length-prefixed entries, and the songs are read back one at a time to be
tokenized and written. An entry is ``uint64 length | uint32 header length | JSON header | array
bytes``: the header holds the song's scalar fields, a tag of the caller's (``extra``) and, for
each array, its dtype, shape and byte offset (as in ``records.py``; no pickle). Encoding is exact:
the decoded song equals the original field for field (same dtypes, same values).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import struct
import tempfile
from typing import Iterator

import numpy as np

from songglm_jax.music.song import Song

_TUPLES = ('syllables', 'syllable_stress')


def encode_song(song: Song, extra: dict | None = None) -> bytes:
  """Bytes of ``song`` and a JSON-able ``extra`` tag."""
  header: dict = {'extra': extra or {}, 'fields': {}, 'arrays': {}}
  chunks, offset = [], 0
  for field in dataclasses.fields(Song):
    value = getattr(song, field.name)
    if isinstance(value, np.ndarray):
      a = np.ascontiguousarray(value)
      header['arrays'][field.name] = {'dtype': a.dtype.str, 'shape': list(a.shape),
                                      'offset': offset}
      chunks.append(a.tobytes())
      offset += a.nbytes
    else:
      header['fields'][field.name] = value
  head = json.dumps(header, ensure_ascii=False).encode('utf-8')
  return struct.pack('<I', len(head)) + head + b''.join(chunks)


def decode_song(data: bytes) -> tuple[Song, dict]:
  """(song, extra) from :func:`encode_song`'s bytes."""
  (n,) = struct.unpack('<I', data[:4])
  header = json.loads(data[4:4 + n].decode('utf-8'))
  body = memoryview(data)[4 + n:]
  kwargs = dict(header['fields'])
  for name in _TUPLES:
    if kwargs.get(name) is not None:
      kwargs[name] = tuple(kwargs[name])
  for name, spec in header['arrays'].items():
    dtype = np.dtype(spec['dtype'])
    count = int(np.prod(spec['shape'], dtype=np.int64))
    kwargs[name] = np.frombuffer(body, dtype=dtype, count=count,
                                 offset=spec['offset']).reshape(spec['shape'])
  return Song(**kwargs), header['extra']


class SongSpill:
  """A temporary file of songs: :meth:`add` them, then iterate over them in the order added.

  The file (in ``folder``, default the system's temporary folder, ``TMPDIR``; about 4 KB per
  song of the sample corpus) is unlinked as soon as it is made and only the open handle is kept,
  so it disappears with the process however that ends (killed included). Used as a context
  manager, which closes it.
  """

  def __init__(self, folder: str | os.PathLike | None = None):
    fd, name = tempfile.mkstemp(prefix='songglm-spill-', suffix='.tmp', dir=folder)
    self.path = pathlib.Path(name)
    try:
      self.path.unlink()  # POSIX: the data lives on while the handle is open
      self._linked = False
    except OSError:  # a system that cannot unlink an open file: removed on close instead
      self._linked = True
    self._file = os.fdopen(fd, 'w+b', buffering=1 << 20)
    self.count = 0
    self._reading = False

  def add(self, song: Song, extra: dict | None = None) -> None:
    if self._reading:
      raise ValueError('SongSpill: cannot add songs once reading has started')
    data = encode_song(song, extra)
    self._file.write(struct.pack('<Q', len(data)))
    self._file.write(data)
    self.count += 1

  def __iter__(self) -> Iterator[tuple[Song, dict]]:
    """(song, extra) of every song added, in order (no more may be added once started)."""
    self._reading = True
    self._file.flush()
    self._file.seek(0)
    for _ in range(self.count):
      (n,) = struct.unpack('<Q', self._file.read(8))
      yield decode_song(self._file.read(n))

  def close(self) -> None:
    self._file.close()
    if self._linked:
      self.path.unlink(missing_ok=True)

  def __enter__(self) -> 'SongSpill':
    return self

  def __exit__(self, *exc) -> None:
    self.close()
