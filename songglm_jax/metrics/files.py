"""Finding, reading and pairing the songs of an evaluation.

``--generated`` is either a folder of songs (one sample set) or a folder of ``sample_K/``
subfolders (one sample set each, in K order; song files directly inside it are then ignored and
reported). Songs are found recursively (``music/io.find_song_files``) and named by file stem;
a generated song pairs with the reference song of the same name.

Files are read with the project's readers (``music/io.read_songs``); a file that gives no song is
skipped and reported with the reader's reason (``no_lyrics``, ``no_notes``, ``unreadable``, ...;
an unexpected reader error as ``error:<Type>``). A score with several verses gives its first
song. One stem in one folder in several formats is one song, read from its MIDI file
(:func:`song_files`); one stem in two folders of a tree: the first by path is used, the other is
skipped as ``duplicate_name``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from typing import Optional

from songglm_jax.music import io as song_io
from songglm_jax.music.song import Song, SongSkip

SAMPLE_DIR = re.compile(r'^sample_(\d+)$')


@dataclasses.dataclass
class ReadResult:
  songs: dict[str, Song]  # name (stem) -> song
  skipped: list[dict]  # {'file', 'reason', 'detail'}


def sample_sets(generated: str | os.PathLike) -> tuple[list[tuple[str, pathlib.Path]], list[str]]:
  """The sample sets under ``generated`` and the files ignored beside ``sample_K/`` folders.

  Returns:
    ``([(set name, folder)], ignored files)``; a folder without ``sample_K/`` subfolders is one
    set named after itself.

  Raises:
    ValueError: the folder does not exist.
  """
  root = pathlib.Path(generated)
  if not root.is_dir():
    raise ValueError(f'--generated: not a folder: {root}')
  subs = [(int(m.group(1)), p) for p in root.iterdir()
          if p.is_dir() and (m := SAMPLE_DIR.match(p.name))]
  if not subs:
    return [(root.name or str(root), root)], []
  subs.sort()
  ignored = [str(p.relative_to(root)) for p in song_io.find_song_files(root)
             if p.parent == root]
  return [(p.name, p) for _, p in subs], ignored


def song_files(root: pathlib.Path) -> list[pathlib.Path]:
  """The song files under ``root``, one per (folder, stem): a song written in several formats
  (``generate`` writes ``NAME.mid`` and ``NAME.musicxml``) is read once, from the first format
  in ``music/io.SONG_EXTENSIONS`` order (MIDI first)."""
  rank = {ext: i for i, ext in enumerate(song_io.SONG_EXTENSIONS)}
  found = song_io.find_song_files(root)
  best: dict[tuple[pathlib.Path, str], pathlib.Path] = {}
  for p in found:
    key = (p.parent, p.stem)
    if key not in best or rank[p.suffix.lower()] < rank[best[key].suffix.lower()]:
      best[key] = p
  keep = set(best.values())
  return [p for p in found if p in keep]


def read_one(path: str) -> tuple[str, Optional[Song], str, str]:
  """Worker: (path, first song or None, skip reason, detail)."""
  try:
    songs, _ = song_io.read_songs(path)
    if not songs:
      return path, None, 'no_song', f'{path}: the reader returned no song'
    return path, songs[0], '', ''
  except SongSkip as e:
    return path, None, e.reason, str(e)
  except Exception as e:  # a reader bug must not stop the evaluation: report it per file
    return path, None, f'error:{type(e).__name__}', f'{path}: {e}'


def read_folder(root: pathlib.Path, results: dict[str, tuple[Optional[Song], str, str]],
                display_root: pathlib.Path) -> ReadResult:
  """Songs of the files under ``root`` (already read into ``results``), by stem."""
  songs: dict[str, Song] = {}
  skipped: list[dict] = []
  for path in song_files(root):
    shown = str(path.relative_to(display_root))
    song, reason, detail = results[str(path)]
    if song is None:
      skipped.append({'file': shown, 'reason': reason, 'detail': detail})
      continue
    name = path.stem
    if name in songs:
      skipped.append({'file': shown, 'reason': 'duplicate_name',
                      'detail': f'another file under {root.name} is named {name!r}'})
      continue
    songs[name] = song.replace(name=name)
  return ReadResult(songs, skipped)


def files_to_read(reference: pathlib.Path, sets: list[tuple[str, pathlib.Path]]) -> list[str]:
  paths = [str(p) for p in song_files(reference)]
  for _, folder in sets:
    paths.extend(str(p) for p in song_files(folder))
  return sorted(set(paths))
