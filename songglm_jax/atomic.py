"""Atomic file writes: a file is either its old self or complete, never half-written.

Every write goes to a hidden temporary name beside the target (:func:`temporary_path`), is
flushed to disk (fsync), then renamed over the target. :func:`write_bytes` does it for bytes in
memory; :func:`replacing` for a writer that needs a file name (e.g. ArrayRecord's). A process
killed mid-write leaves its temporary behind; :func:`remove_stale_temporaries` removes those of
processes that no longer run.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pathlib
import re
import uuid
from typing import Iterator

_TEMPORARY = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$')


def temporary_path(path: str | os.PathLike) -> pathlib.Path:
  """A fresh hidden name beside ``path`` (same folder, so the final rename is atomic):
  ``.<name>.<pid>.<8 hex digits>.tmp``."""
  path = pathlib.Path(path)
  return path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """A temporary name for ``path``, for a writer that creates the file itself::

      with atomic.replacing(path) as tmp:
        write_everything_to(tmp)

  On a clean exit the temporary is fsynced and renamed to ``path``; on an exception it is
  removed and ``path`` is left as it was. The parent folder is created when missing.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = temporary_path(path)
  try:
    yield tmp
    fd = os.open(tmp, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Write ``data`` to ``path`` through a temporary file and a rename (permissions as by
  ``open``, i.e. following the umask)."""
  with replacing(path) as tmp:
    with open(tmp, 'xb') as f:
      f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
  write_bytes(path, text.encode('utf-8'))


def write_json(path: str | os.PathLike, obj, indent: int | None = 1) -> None:
  """Deterministic JSON (sorted keys, UTF-8, trailing newline), written atomically."""
  write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + '\n')


def _running(pid: int) -> bool:
  if pid == os.getpid():
    return True  # this process may be writing it right now
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process
    return True
  except OverflowError:  # not a pid at all
    return False
  return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[pathlib.Path]:
  """Remove the temporaries of ``path`` (:func:`temporary_path`) whose writing process no
  longer runs on this machine (one killed mid-write); returns the removed files.

  Only for outputs written from one machine: a pid in the name is looked up locally.
  """
  path = pathlib.Path(path)
  removed = []
  if not path.parent.is_dir():
    return removed
  for tmp in sorted(path.parent.glob(f'.{glob.escape(path.name)}.*.tmp')):
    m = _TEMPORARY.match(tmp.name)
    if m is None or m['name'] != path.name or _running(int(m['pid'])):
      continue
    try:
      tmp.unlink()
    except FileNotFoundError:
      continue
    removed.append(tmp)
  return removed
