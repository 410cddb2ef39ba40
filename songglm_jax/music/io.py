"""One entry point for reading songs from any supported file, and for finding such files."""

from __future__ import annotations

import os
import pathlib
from typing import Optional

from songglm_jax.music.song import Song, SongSkip

MIDI_EXTENSIONS = ('.mid', '.midi', '.kar')
SCORE_EXTENSIONS = ('.musicxml', '.xml', '.mxl', '.abc', '.krn')
SONG_EXTENSIONS = MIDI_EXTENSIONS + SCORE_EXTENSIONS


def find_song_files(root: str | os.PathLike) -> list[pathlib.Path]:
  """Every song file under ``root`` (recursively; a file is taken as it is), sorted by path.

  Raises:
    ValueError: ``root`` does not exist.
  """
  root = pathlib.Path(root)
  if root.is_file():
    return [root]
  if not root.is_dir():
    raise ValueError(f'input path does not exist: {root}')
  found = [p for p in root.rglob('*')
           if p.suffix.lower() in SONG_EXTENSIONS and p.is_file() and not p.name.startswith('.')]
  return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_songs(path: str | os.PathLike, *, max_file_bytes: Optional[int] = None,
               **kwargs) -> tuple[list[Song], dict[str, int]]:
  """The songs in one file (a score with several verses gives one song per verse) and counters.

  A file larger than ``max_file_bytes`` (default ``midi.MAX_FILE_BYTES``, the bound ``prepare``
  applies) is not read, whatever its format, so every program that reads songs has one bound.

  Raises:
    SongSkip: the file gives no song; ``reason`` says why (``too_long`` for the size bound).
  """
  file = str(path).split('#')[0]  # 'x.abc#2': tune 2 of x.abc
  suffix = pathlib.Path(file).suffix.lower()
  _check_size(file, max_file_bytes)
  if suffix in MIDI_EXTENSIONS:
    from songglm_jax.music import midi
    if max_file_bytes is not None:
      kwargs['max_file_bytes'] = max_file_bytes
    song, stats = midi.read_midi(path, **kwargs)
    return [song], stats
  if suffix in SCORE_EXTENSIONS:
    from songglm_jax.music import scores
    return scores.read_score(path, **kwargs)
  raise SongSkip('unsupported_format', f'{path}: unsupported extension {suffix!r}')


def _check_size(file: str, max_file_bytes: Optional[int]) -> None:
  if max_file_bytes is None:
    from songglm_jax.music import midi
    max_file_bytes = midi.MAX_FILE_BYTES
  try:
    size = os.path.getsize(file)
  except OSError:
    return  # the reader says what is wrong with the path
  if size > max_file_bytes:
    raise SongSkip('too_long', f'{file}: {size} bytes > {max_file_bytes}')


def write_song(song: Song, path: str | os.PathLike, *, title: Optional[str] = None) -> None:
  """Write a song as MIDI (``.mid``/``.midi``) or MusicXML (``.musicxml``/``.xml``); ``title``
  is the score's title (default: made from the song's first words; MIDI has none)."""
  suffix = pathlib.Path(path).suffix.lower()
  if suffix in ('.mid', '.midi'):
    from songglm_jax.music import midi
    midi.write_midi(song, path)
  elif suffix in ('.musicxml', '.xml'):
    from songglm_jax.music import scores
    scores.write_musicxml(song, path, title=title)
  else:
    raise ValueError(f'{path}: can write .mid, .midi, .musicxml or .xml, not {suffix!r}')
