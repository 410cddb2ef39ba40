"""Prepare's reading stage: input files -> song windows, in worker processes.

Each file is read, its syllables stressed, its phrases segmented and the song cut into windows
(``read_one``); ``read_all`` runs that over every file in spawned worker processes and yields the
results in input order, so what ``prepare`` writes does not depend on the number of workers.
``opts`` is a ``prepare.PrepareOptions`` (only its reading fields are used).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import sys
from typing import Any, Optional

from songglm_jax.music import io as song_io
from songglm_jax.music import phrases
from songglm_jax.music.song import Song, SongSkip


@dataclasses.dataclass
class FileResult:
  path: str  # relative to the source root
  songs: list[Song]
  stats: dict[str, int]
  skip: Optional[tuple[str, str]] = None  # (reason, detail)


def read_one(args: tuple[str, str, Any]) -> FileResult:
  """Worker: (path, name relative to the source root, PrepareOptions) -> the file's song windows
  (stress and phrases set), or the skip reason."""
  path, name, opts = args
  from songglm_jax.music import stress
  try:
    if os.path.getsize(path.split('#')[0]) > opts.max_file_bytes:
      raise SongSkip('too_long', f'{name}: file larger than {opts.max_file_bytes} bytes')
    kwargs = {'max_notes': opts.max_notes} if path.lower().endswith(song_io.MIDI_EXTENSIONS) else {}
    songs, stats = song_io.read_songs(path, max_file_bytes=opts.max_file_bytes, **kwargs)
    out = []
    for song in songs:
      song = song.replace(name=name if len(songs) == 1 else f'{name}|{song.name}',
                          syllable_stress=stress.syllable_stress(song.syllables,
                                                                 mode=opts.stress_lookup))
      song = phrases.segment_phrases(song)
      out.extend(phrases.split_windows(song, max_syllables=opts.max_syllables,
                                       max_phrases=opts.max_phrases, max_bars=opts.max_bars))
    return FileResult(name, out, dict(stats))
  except SongSkip as e:
    return FileResult(name, [], {}, (e.reason, str(e)))
  except Exception as e:  # a reader bug must not stop the run: report it per file
    return FileResult(name, [], {}, (f'error:{type(e).__name__}', f'{name}: {e}'))


def read_all(paths, names, opts, workers):
  """Results of :func:`read_one` for every file, in input order.

  Worker processes are started with spawn (safe beside JAX's threads). A worker that dies (a
  crash inside a C++ parser, say) breaks the pool instead of hanging it: the unfinished files go
  to a fresh pool, and the first of them is first run alone so that the culprit is found and
  reported as ``error:worker_crashed``.
  """
  jobs = [(p, n, opts) for p, n in zip(paths, names)]
  progress = _progress(len(jobs), 'reading')
  if workers <= 1:
    for job in jobs:
      yield read_one(job)
      progress.update()
    progress.close()
    return
  ctx = multiprocessing.get_context('spawn')
  done, crashes_in_a_row = 0, 0
  while done < len(jobs):
    pending = jobs[done:]
    try:
      with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        chunk = max(1, min(32, len(pending) // (workers * 8)))
        for result in pool.map(read_one, pending, chunksize=chunk):
          yield result
          done += 1
          crashes_in_a_row = 0
          progress.update()
    except cf.process.BrokenProcessPool:
      try:
        with cf.ProcessPoolExecutor(1, mp_context=ctx) as alone:
          result = alone.submit(read_one, jobs[done]).result()
        crashes_in_a_row = 0
      except cf.process.BrokenProcessPool:
        crashes_in_a_row += 1
        if crashes_in_a_row >= 3:
          raise ValueError('prepare: worker processes die at start-up (a script that calls '
                           "prepare_dataset needs an `if __name__ == '__main__':` guard)")
        result = FileResult(jobs[done][1], [], {}, ('error:worker_crashed',
                                                     f'{jobs[done][1]}: the reader crashed'))
      yield result
      done += 1
      progress.update()
  progress.close()


def _progress(total: int, what: str):
  from tqdm import tqdm
  return tqdm(total=total, desc=what, unit='file', file=sys.stderr, mininterval=2.0,
              disable=total < 50 or None)
