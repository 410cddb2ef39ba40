"""Atomic file writes: a file is either its old self or complete, never half-written."""

from __future__ import annotations

import json
import os
import pathlib
import uuid


def temporary_path(path: str | os.PathLike) -> pathlib.Path:
  """A fresh hidden name beside ``path`` (same folder, so the final rename is atomic)."""
  path = pathlib.Path(path)
  return path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Write ``data`` to ``path`` through a temporary file and a rename (permissions as by
  ``open``, i.e. following the umask)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = temporary_path(path)
  try:
    with open(tmp, 'xb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
  write_bytes(path, text.encode('utf-8'))


def write_json(path: str | os.PathLike, obj, indent: int | None = 1) -> None:
  """Deterministic JSON (sorted keys, UTF-8, trailing newline), written atomically."""
  write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + '\n')
