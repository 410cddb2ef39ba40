"""Lyrics as the generator takes them: syllables, phrases and stress, from text or from songs.

* Text (:func:`from_text`): ``music/syllabify.py`` splits words into syllables offline (English:
  CMU dictionary vowel counts, pyphen fallback: ``Twinkle`` -> ``Twin-`` ``kle``; another
  ``language``: pyphen's dictionary for it; CJK characters, kana and hangul blocks one syllable
  each); each line and each of ``. , ! ? ; :`` ends a phrase, the mark glued to the phrase's last
  syllable (``kle,``). The user's spelling (case, accents, inner apostrophes) is kept, and so is
  the word structure: a syllable that the next one continues ends in ``-`` (``Twin-``), the
  hyphen convention of MIDI lyric events, which the MusicXML writer turns into ``syllabic``.
  The title (for the score) is the text's first line up to its first ``. ; :``.
* Songs (:func:`from_song`, :func:`read_dir`): the syllables of an existing song file, its phrases
  segmented as ``prepare`` does (``phrases.segment_phrases``: punctuation, else the melody), its
  tempo and time signature kept -- what evaluation uses.

Stress is looked up as ``prepare`` does (``stress.syllable_stress`` with the training data's
``stress_lookup`` mode). Syllable texts keep their punctuation: the tokenizer drops it (and the
case, and the ``-``) for the vocabulary, where a syllable it does not know is UNK, and the generated songs carry the texts as given, so their phrases survive a MIDI
round trip (``segment_phrases`` reads punctuation back).

Long lyrics (more than the model's word or phrase ids) are cut into windows of whole phrases
(:meth:`Lyrics.windows`); the generator decodes each window and joins the melodies.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import unicodedata

import numpy as np

from songglm_jax.music import io as song_io
from songglm_jax.music import meter, phrases, stress, syllabify
from songglm_jax.music.song import Song, SongSkip


@dataclasses.dataclass(frozen=True, eq=False)
class Lyrics:
  """S syllables to sing.

  Attributes:
    name: output file stem (may contain '/' for sub-folders).
    title: the title written into scores ('' = made from the syllables by the writer).
    syllables: S texts as written into the outputs (punctuation glued, as in the data; a
      trailing ``-`` when the next syllable continues the word).
    syllable_phrase: int [S], starts at 0, steps by 0 or 1.
    syllable_stress: S stress patterns (``'?'`` unknown).
    tempo: quarter notes per minute of the generated song.
    time_signature: (numerator, denominator) of the generated song (one for the whole song).
  """
  name: str
  syllables: tuple[str, ...]
  syllable_phrase: np.ndarray
  syllable_stress: tuple[str, ...]
  tempo: float = 120.0
  time_signature: tuple[int, int] = (4, 4)
  title: str = ''

  def __post_init__(self):
    s = len(self.syllables)
    ph = np.asarray(self.syllable_phrase, np.int32)
    object.__setattr__(self, 'syllable_phrase', ph)
    if s == 0:
      raise ValueError(f'lyrics {self.name!r}: no syllables')
    if ph.shape != (s,) or ph[0] != 0 or np.any((np.diff(ph) != 0) & (np.diff(ph) != 1)):
      raise ValueError(f'lyrics {self.name!r}: syllable_phrase must have {s} ids starting at 0 '
                       'and stepping by 0 or 1')
    if len(self.syllable_stress) != s:
      raise ValueError(f'lyrics {self.name!r}: {len(self.syllable_stress)} stress patterns for '
                       f'{s} syllables')
    meter.validate_time_signatures(np.array([[0, *self.time_signature]]))

  @property
  def num_syllables(self) -> int:
    return len(self.syllables)

  @property
  def num_phrases(self) -> int:
    return int(self.syllable_phrase[-1]) + 1

  @property
  def bar_ticks(self) -> int:
    return int(meter.bar_lengths(np.array([[0, *self.time_signature]]))[0])

  def part(self, a: int, b: int) -> 'Lyrics':
    """Syllables ``[a, b)`` as lyrics of their own (phrase ids restarted at 0)."""
    ph = self.syllable_phrase[a:b]
    return dataclasses.replace(self, syllables=self.syllables[a:b], syllable_phrase=ph - ph[0],
                               syllable_stress=self.syllable_stress[a:b])

  def windows(self, max_syllables: int, max_phrases: int) -> list['Lyrics']:
    """Consecutive parts of whole phrases, each within both caps (greedy; a phrase longer than
    ``max_syllables`` is cut between syllables). One part when the lyrics fit."""
    if self.num_syllables <= max_syllables and self.num_phrases <= max_phrases:
      return [self]
    starts = np.flatnonzero(np.diff(self.syllable_phrase, prepend=-1)).tolist()
    ends = starts[1:] + [self.num_syllables]
    units = [(a + k, min(a + k + max_syllables, b)) for a, b in zip(starts, ends)
             for k in range(0, b - a, max_syllables)]
    out, start, count = [], units[0][0], 0
    for a, b in units:
      if b - start > max_syllables or count + 1 > max_phrases:
        out.append((start, a))
        start, count = a, 0
      count += 1
    out.append((start, units[-1][1]))
    return [self.part(a, b) for a, b in out]


def slug(text: str, words: int = 4, max_chars: int = 60) -> str:
  """A file stem from the first words of a text: ``'Twinkle, twinkle little star'`` ->
  ``'twinkle_twinkle_little_star'``; accents dropped (``'Schöne Straße'`` -> ``'schone_strasse'``),
  letters of other scripts kept (``'一闪一闪'``); at most ``max_chars`` characters ('lyrics' when
  nothing is left)."""
  text = ''.join(ch for ch in unicodedata.normalize('NFKD', text)
                 if unicodedata.category(ch)[0] != 'M').casefold()
  parts = re.findall(r'[^\W_]+', text)[:words]
  return '_'.join(parts)[:max_chars].strip('_') or 'lyrics'


def title_of(text: str, max_chars: int = 60) -> str:
  """A title from lyrics text: the first non-empty line up to its first ``. ; :`` (or CJK full
  stop), a trailing comma dropped, cut at a word boundary to ``max_chars`` (with ``...``)."""
  line = next((ln for ln in str(text).splitlines() if ln.strip()), '')
  line = re.split(r'[.;:\u3002\uff0e\uff1b\uff1a\u2026]', ' '.join(line.split()))[0]
  line = line.strip().rstrip(',\u3001\uff0c').strip()
  if len(line) > max_chars:
    cut = line[:max_chars].rsplit(' ', 1)[0] if ' ' in line[:max_chars] else line[:max_chars]
    line = cut.rstrip(',') + '...'
  return line


def from_text(text: str, name: str = '', *, stress_lookup: str = 'word', tempo: float = 120.0,
              time_signature: tuple[int, int] = (4, 4),
              language: str = syllabify.DEFAULT_LANGUAGE, title: str = '') -> Lyrics:
  """Lyrics of plain text (see the module docstring); ``name`` defaults to :func:`slug`,
  ``title`` to :func:`title_of`; ``language``: a pyphen language for the words (default English).

  Raises:
    ValueError: the text holds no word, or the language is unknown.
  """
  groups = syllabify.syllabify_text(text, language)
  syl = [s for g in groups for s in g]
  if not syl:
    shown = text.strip()[:40] + ('...' if len(text.strip()) > 40 else '')
    raise ValueError(f'lyrics {name + " " if name else ""}{shown!r}: no words to sing '
                     '(letters are needed)')
  ph = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
  return Lyrics(name=name or slug(text), syllables=tuple(syl), syllable_phrase=ph,
                syllable_stress=stress.syllable_stress(syl, mode=stress_lookup), tempo=tempo,
                time_signature=tuple(time_signature), title=title or title_of(text))


def from_song(song: Song, name: str, *, stress_lookup: str = 'word',
              default_time_signature: tuple[int, int] = (4, 4),
              max_bar_ticks: int = 3840) -> Lyrics:
  """The lyrics of a song: its syllables, phrases (segmented as ``prepare`` does), tempo and
  first time signature (``default_time_signature`` when that bar is not a whole number of
  16ths or is longer than ``max_bar_ticks``)."""
  song = phrases.segment_phrases(song)
  ts = tuple(int(v) for v in song.time_signatures[0, 1:])
  bar = int(meter.bar_lengths(song.time_signatures[:1])[0])
  if bar % 120 or bar > max_bar_ticks:
    ts = tuple(default_time_signature)
  return Lyrics(name=name, syllables=song.syllables, syllable_phrase=song.syllable_phrase,
                syllable_stress=stress.syllable_stress(song.syllables, mode=stress_lookup),
                tempo=song.tempo, time_signature=ts)


def read_dir(root: str | os.PathLike, *, stress_lookup: str = 'word',
             max_bar_ticks: int = 3840) -> tuple[list[Lyrics], dict[str, str]]:
  """Lyrics of every readable song file under ``root`` (a file is taken as it is).

  Names are the files' paths relative to ``root`` without their suffix (``_vK`` added for the
  K-th song of a file holding several). Returns (lyrics, {relative path: skip reason}).

  Raises:
    ValueError: ``root`` does not exist or holds no song file.
  """
  root = pathlib.Path(root)
  files = song_io.find_song_files(root)
  if not files:
    raise ValueError(f'--lyrics_from: no song files under {root}')
  base = root.parent if root.is_file() else root
  out, skipped = [], {}
  for path in files:
    rel = path.relative_to(base).as_posix()
    stem = rel[:-len(path.suffix)] if path.suffix else rel
    try:
      songs, _ = song_io.read_songs(path)
    except SongSkip as e:
      skipped[rel] = e.reason
      continue
    for k, song in enumerate(songs):
      name = stem if len(songs) == 1 else f'{stem}_v{k + 1}'
      out.append(from_song(song, name, stress_lookup=stress_lookup, max_bar_ticks=max_bar_ticks))
  return out, skipped
