"""Atomic file writes: a file is either its old self or complete, never half-written.

Every write goes to a hidden temporary name beside the target (:func:`temporary_path`), is
flushed to disk (fsync), then renamed over the target. :func:`write_bytes` does it for bytes in
memory; :func:`replacing` for a writer that needs a file name (e.g. ArrayRecord's). A process
killed mid-write leaves its temporary behind; :func:`remove_stale_temporaries` removes those of
processes that no longer run. :func:`finished_json` reads back the JSON stamp a finished run
wrote, so that a re-run can keep its output (:func:`keep_finished`: and says so).
:func:`check_output_folder` and
:func:`check_output_file` tell before a program's work starts whether its output path can be
written at all.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pathlib
import re
import uuid
from typing import Callable, Iterator

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


def finished_json(path: str | os.PathLike, stamp: dict,
                  older: Callable[[dict], dict] | None = None) -> dict | None:
  """The JSON object a finished run left in ``path`` when it carries ``stamp``: each top-level
  key of ``stamp`` holds the same value as ``stamp`` (compared as JSON stores it: tuples as
  lists). None when a value differs or the file is missing, not JSON or not an object; a re-run
  uses it to keep its earlier output.

  Args:
    older: for files written before a key of ``stamp`` existed: ``older(old)`` gives the value
      such a file stands for (e.g. from its other keys); a key neither has reads as None.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  try:
    old = json.loads(path.read_text(encoding='utf-8'))
  except ValueError:
    return None
  if not isinstance(old, dict):
    return None
  want = json.loads(json.dumps(stamp))
  have = {**older(old), **old} if older is not None else old
  if {k: have.get(k) for k in want} != want:
    return None
  return old


def keep_finished(path: str | os.PathLike, stamp: dict, message: str,
                  older: Callable[[dict], dict] | None = None) -> dict | None:
  """How a stage resumes: the object a finished run left in ``path`` when it carries ``stamp``
  (:func:`finished_json`, ``older`` as there), after printing ``message`` (what is kept and
  why); None, and nothing printed, when the work must be done again."""
  old = finished_json(path, stamp, older)
  if old is not None:
    print(message, flush=True)
  return old


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


# ---- output paths, checked before the work that fills them ----------------------------------

def _folder_problem(path: pathlib.Path, name_it: bool = False) -> str | None:
  """Why ``path`` cannot be used as an output folder (None: it can); ``name_it``: the message
  names ``path`` when the problem is the path itself."""
  if os.path.lexists(path):
    subject = f'{path} is' if name_it else 'is'
    if not path.is_dir():
      return f'{subject} not a folder'
    if not os.access(path, os.W_OK | os.X_OK):
      return f'{subject} not writable'
    return None
  base = pathlib.Path(os.path.abspath(path))
  while not os.path.lexists(base) and base != base.parent:
    base = base.parent
  if not base.is_dir():
    return f'{base} is not a folder'
  if not os.access(base, os.W_OK | os.X_OK):
    return f'{base} is not writable'
  return None


def check_output_folder(path: str | os.PathLike, what: str) -> pathlib.Path:
  """``path`` as a folder to write into: it is one, or it can be made (its nearest existing
  ancestor is a folder), and this process may write there. Nothing is created.

  Args:
    what: the flag or field the path came from, for the message (e.g. ``'--output'``).

  Raises:
    ValueError: the path is a file (or under one), or the folder is not writable.
  """
  path = pathlib.Path(path)
  problem = _folder_problem(path)
  if problem:
    raise ValueError(f'{what} {path}: {problem}')
  return path


def check_output_file(path: str | os.PathLike, what: str) -> pathlib.Path:
  """``path`` as a file to write (atomically, so its folder must be writable): not a folder,
  and its folder is one or can be made.

  Raises:
    ValueError: the path is a folder, or its folder is not usable.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    raise ValueError(f'{what} {path}: is a folder; expected a file name')
  problem = _folder_problem(path.parent, name_it=True)
  if problem:
    raise ValueError(f'{what} {path}: {problem}')
  return path
