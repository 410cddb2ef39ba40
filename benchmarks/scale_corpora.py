"""Synthetic corpora of N songs for ``scale_bench.py``: transposed, re-timed copies of the shared
pre-training songs, written with symusic.

Copy k of a corpus is variant ``v = k // M`` of original ``k % M`` (M originals, sorted by name):
transposed by ``t = (7 v) mod 12 - 5`` semitones (-5..+6; the sample's pitches, 29..93, stay in
range) and re-timed by ``x = FACTORS[(v // 12) mod 5]``: every event time (notes, lyric events,
tempo and time signatures) scaled by x with symusic's ``adjust_time`` and the tempo multiplied by
x, so a copy lasts as long in seconds while its notes fall elsewhere on the tick grid. The lyric
track is copied as it is (its events only move in time), so ``music/midi.py`` reads the same
syllables. Each file is named ``synthetic-v<v>-t<t>-x<x>-<original>.mid``.

The copies are made once into a pool folder (``<root>/songs``, only the missing ones) and each
corpus is a folder of hard links to the first N (``<root>/n<N>``), whose ``<root>/n<N>.json``
marker is written last; a corpus whose marker matches is reused, any other is rebuilt.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time

FACTORS = (1.0, 1.1, 0.9, 1.2, 0.8)
VERSION = 1


def variant(v: int) -> tuple[int, float]:
  """(semitones, time factor) of variant ``v``."""
  return (7 * v) % 12 - 5, FACTORS[(v // 12) % len(FACTORS)]


def copy_name(v: int, original: str) -> str:
  t, x = variant(v)
  return f'synthetic-v{v:03d}-t{t:+d}-x{x:.2f}-{original}'


def _write_copies(originals: list[pathlib.Path], wanted: list[tuple[int, int]],
                  pool: pathlib.Path) -> int:
  """Write the copies ``(v, original index)`` not yet in ``pool``; returns how many."""
  import symusic
  todo: dict[int, list[int]] = {}
  for v, i in wanted:
    if not (pool / copy_name(v, originals[i].name)).exists():
      todo.setdefault(i, []).append(v)
  for i, variants in sorted(todo.items()):
    score = symusic.Score.from_file(str(originals[i]))
    end = score.end()
    for v in variants:
      t, x = variant(v)
      copy = score.shift_pitch(t).adjust_time([0, max(end, 1)], [0, max(round(end * x), 1)])
      for tempo in copy.tempos:
        tempo.qpm = tempo.qpm * x
      path = pool / copy_name(v, originals[i].name)
      tmp = path.with_name(f'.{path.name}.tmp')
      tmp.write_bytes(bytes(copy.dumps_midi()))
      os.replace(tmp, path)
  return sum(len(v) for v in todo.values())


def corpus(source: pathlib.Path, root: pathlib.Path, size: int) -> tuple[pathlib.Path, dict]:
  """The folder of the ``size``-song corpus made from ``source``'s ``*.mid`` files (built now
  unless a complete one is there), and a note of what was done: ``{'reused': bool,
  'written': copies written, 'seconds': build time}``."""
  originals = sorted(source.glob('*.mid'))
  if not originals:
    raise ValueError(f'{source}: no .mid files to copy')
  folder, marker = root / f'n{size}', root / f'n{size}.json'
  want = {'version': VERSION, 'size': size, 'source': str(source.resolve()),
          'originals': len(originals)}
  if marker.is_file() and folder.is_dir():
    try:
      if json.loads(marker.read_text()) == want:
        return folder, {'reused': True, 'written': 0, 'seconds': 0.0}
    except ValueError:
      pass
  t0 = time.perf_counter()
  marker.unlink(missing_ok=True)
  if folder.exists():
    shutil.rmtree(folder)
  pool = root / 'songs'
  pool.mkdir(parents=True, exist_ok=True)
  wanted = [(k // len(originals), k % len(originals)) for k in range(size)]
  written = _write_copies(originals, wanted, pool)
  folder.mkdir()
  for v, i in wanted:
    name = copy_name(v, originals[i].name)
    os.link(pool / name, folder / name)
  marker.write_text(json.dumps(want) + '\n')
  return folder, {'reused': False, 'written': written, 'seconds': time.perf_counter() - t0}
