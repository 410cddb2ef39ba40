"""The embedded default corpus: the works in music21's bundled corpus that carry lyrics.

music21 ships its corpus inside the package (``music21/corpus``, no network). Listing parses
nothing: a file is kept when its text holds lyric markup for its format --
- MusicXML (``.xml``, ``.musicxml``, and the XML inside ``.mxl`` zips): a ``<lyric>`` element
  (``<lyric-font>`` and ``<lyric-language>`` do not count). Some files are UTF-16 (with a
  byte-order mark); they are decoded first.
- Humdrum (``.krn``): a ``**text`` or ``**lyrics`` spine, the spines music21 reads as lyrics
  (the three Bach chorales with German ``**silbe`` spines are left out: music21 ignores those).
- ABC (``.abc``): a ``w:`` line.
Files whose stem ends in ``_old`` are older copies of works that are also present
(``monteverdi/madrigal.3.1_old.mxl``) and are left out. Whether a listed work really yields songs
is decided per work by :func:`songglm_jax.music.scores.read_score` (e.g. the figured-bass numerals
of a Corelli movement are rejected there as ``lyrics_not_words``).

A file that holds several ABC tunes is listed once; ``read_score`` reads all of its tunes (see
there), and ``path#N`` selects the tune with ``X:N``.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
import re
import zipfile

CORPUS_EXTENSIONS = ('.abc', '.krn', '.musicxml', '.mxl', '.xml')
_XML_LYRIC = re.compile(rb'<lyric[\s>/]')
_KERN_LYRIC = re.compile(rb'^(?:[^\n]*\t)?\*\*(?:text|lyrics)\b', re.MULTILINE)
_ABC_LYRIC = re.compile(rb'^w:', re.MULTILINE)


def music21_corpus_root() -> pathlib.Path:
  """The folder of music21's bundled corpus (found without importing music21).

  Raises:
    ValueError: music21 is not installed or has no bundled corpus.
  """
  spec = importlib.util.find_spec('music21')
  if spec is None or not spec.submodule_search_locations:
    raise ValueError('music21 is not installed; the embedded corpus needs it')
  root = pathlib.Path(list(spec.submodule_search_locations)[0]) / 'corpus'
  if not root.is_dir():
    raise ValueError(f'music21 has no bundled corpus at {root}')
  return root


def _decode(data: bytes) -> bytes:
  """UTF-16 text (by its byte-order mark) re-encoded as UTF-8; other bytes unchanged."""
  if data[:2] in (b'\xff\xfe', b'\xfe\xff'):
    return data.decode('utf-16', errors='replace').encode('utf-8')
  return data


def has_lyric_markup(path: str | pathlib.Path) -> bool:
  """Whether a score file's text holds lyric markup for its format (see the module docstring).

  Unreadable or corrupt files give False.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  try:
    if suffix == '.mxl':
      with zipfile.ZipFile(path) as z:
        return any(_XML_LYRIC.search(_decode(z.read(n))) for n in z.namelist()
                   if not n.startswith('META-INF/') and n.lower().endswith(('.xml', '.musicxml')))
    data = _decode(path.read_bytes())
  except (OSError, zipfile.BadZipFile):
    return False
  if suffix in ('.xml', '.musicxml'):
    return _XML_LYRIC.search(data) is not None
  if suffix == '.krn':
    return _KERN_LYRIC.search(data) is not None
  if suffix == '.abc':
    return _ABC_LYRIC.search(data) is not None
  return False


@functools.lru_cache(maxsize=None)
def _corpus_paths(root: str) -> tuple[str, ...]:
  base = pathlib.Path(root)
  files = [p for p in base.rglob('*') if p.suffix.lower() in CORPUS_EXTENSIONS and p.is_file()
           and not p.name.startswith('.') and not p.stem.endswith('_old')]
  files.sort(key=lambda p: p.relative_to(base).as_posix())
  return tuple(str(p) for p in files if has_lyric_markup(p))


def music21_corpus_paths() -> list[str]:
  """Absolute paths of the bundled-corpus works with lyric markup, sorted by relative path.

  Each path can be given to ``read_score`` as it is. About 0.5 s (the result is cached).
  """
  return list(_corpus_paths(str(music21_corpus_root())))
