"""ABC tunes with ``w:`` lyrics -> music21 parts whose notes carry the lyrics.

music21 (10.5) parses the notes of an ABC file but drops its ``w:`` lines, so this module runs
music21's own ABC tokenizer and translator (``abcFormat.ABCHandler``, ``translate.
abcToStreamPart``; the same steps ``converter.parse`` takes) and attaches the syllables itself.

Alignment (ABC standard 2.1, section 5):
- A ``w:`` line applies to the notes since the previous block of ``w:`` lines; adjacent ``w:``
  lines are verses 1, 2, ... of the same notes; a line ending in ``\\`` continues on the next
  ``w:`` line (same verse). Notes after the last block have no lyrics line: they are not sung
  and become rests (a tune texted only in its first line is its first line).
- Syllables go to notes and chords in order; rests, grace notes and notes tied from the
  previous note take no syllable (in the corpus's Josquin files this is what makes the syllable
  and note counts agree).
- Inside a line: blanks and ``-`` separate syllables; ``-`` after a blank or another ``-``,
  ``_`` and ``*`` each pass over one note without a new syllable (the previous one is held);
  ``~`` is a space and ``\\-`` a hyphen inside one syllable; ``|`` moves on to the first note of
  the next bar. Syllables beyond the last note are dropped.
"""

from __future__ import annotations

import re

from music21 import abcFormat, harmony, note, stream
from music21.abcFormat import translate

from songglm_jax.music.song import SongSkip

_SYL, _HOLD, _BAR = 'syl', 'hold', 'bar'


def lyric_items(line: str) -> list[tuple[str, str]]:
  """A ``w:`` line's content as items ``(kind, text)``: kind 'syl', 'hold' or 'bar'."""
  items: list[tuple[str, str]] = []
  cur: list[str] = []
  prev = ' '  # the previous character; a line starts as after a blank

  def flush():
    if cur:
      items.append((_SYL, ''.join(cur)))
      cur.clear()

  i = 0
  while i < len(line):
    c = line[i]
    if c == '\\' and line[i + 1:i + 2] == '-':
      cur.append('-')
      i += 2
      prev = 'x'
      continue
    if c.isspace():
      flush()
    elif c == '-':
      if cur:
        flush()
      elif prev.isspace() or prev == '-':
        items.append((_HOLD, ''))
    elif c in '_*':
      flush()
      items.append((_HOLD, ''))
    elif c == '|':
      flush()
      items.append((_BAR, ''))
    elif c == '~':
      cur.append(' ')
    else:
      cur.append(c)
    prev = c
    i += 1
  flush()
  return items


def _makes_note(t) -> bool:
  """Whether ``translate.parseABCNote`` turns token ``t`` into a music21 note, rest or chord."""
  if not isinstance(t, abcFormat.ABCNote):
    return False
  if isinstance(t, abcFormat.ABCChord) and not t.subTokens:
    return False
  if t.chordSymbols:
    name = re.sub('"', '', t.chordSymbols[0]).strip()
    if name.startswith('>'):
      return False
  return True


def _apply(items, eligible, bars, out, verse: int, pos: int) -> int:
  for kind, text in items:
    if kind == _BAR:
      if 0 < pos < len(eligible):
        target = bars[pos - 1] + 1
        while pos < len(eligible) and bars[pos] < target:
          pos += 1
      continue
    if pos >= len(eligible):
      break
    if kind == _SYL:
      out[eligible[pos]].setdefault(verse, text)
    pos += 1
  return pos


def token_lyrics(tokens) -> tuple[list[dict[int, str]], int]:
  """Syllables of one voice's note-making tokens.

  Returns:
    ``(lyrics, texted)``: for each note-making token ``{verse number: text}``; ``texted`` is the
    number of leading tokens that precede the last block of ``w:`` lines (those after it have
    no lyrics line).
  """
  out: list[dict[int, str]] = []
  eligible: list[int] = []  # indices into ``out`` of notes that can take a syllable
  bars: list[int] = []
  bar = 0
  verse = 0  # > 0 while inside a block of w: lines
  pos = 0
  continued = False
  texted = 0
  for t in tokens:
    if isinstance(t, abcFormat.ABCBar):
      bar += 1
    elif _makes_note(t):
      if verse:
        verse, eligible, bars, continued = 0, [], [], False
      out.append({})
      if not t.isRest and not t.inGrace and t.tie not in ('stop', 'continue'):
        eligible.append(len(out) - 1)
        bars.append(bar)
    elif isinstance(t, abcFormat.ABCMetadata) and t.tag == 'w':
      data = t.data
      if not continued:
        verse += 1
        pos = 0
      continued = data.endswith('\\')
      pos = _apply(lyric_items(data.rstrip('\\')), eligible, bars, out, verse, pos)
      texted = len(out)
  return out, texted


def _title(handler) -> str:
  for t in handler.tokens:
    if isinstance(t, abcFormat.ABCMetadata) and t.isTitle():
      return t.data.strip()
  return ''


def _tune_parts(handler, where: str) -> list[stream.Part]:
  """The parts (one per voice) of one tune, lyrics attached to their notes."""
  voices = handler.splitByVoice()
  part_handlers = voices if len(voices) == 1 else [voices[0] + v for v in voices[1:]]
  parts = []
  for ph in part_handlers:
    lyrics, texted = token_lyrics(ph.tokens)  # first: the translator consumes tokens
    part = translate.abcToStreamPart(ph)
    notes = [n for n in part.recurse().notesAndRests if not isinstance(n, harmony.Harmony)]
    if len(notes) != len(lyrics):
      raise SongSkip('unreadable', f'{where}: {len(lyrics)} ABC notes became {len(notes)} '
                     'music21 notes; cannot align the w: lyrics')
    for n, verses in zip(notes, lyrics):
      for number in sorted(verses):
        n.lyrics.append(note.Lyric(text=verses[number], number=number, applyRaw=True))
    if texted:  # notes after the last w: block are not sung: they become rests
      for n in notes[texted:]:
        if n.duration.isGrace:
          n.activeSite.remove(n)
        elif not n.isRest:
          n.activeSite.replace(n, note.Rest(quarterLength=n.quarterLength))
    parts.append(part)
  return parts


def read_abc(text: str, where: str, number: int | None = None
             ) -> list[tuple[str, int | None, list[stream.Part]]]:
  """The tunes of an ABC file: ``(title, X: number or None, parts)`` in file order.

  Args:
    text: the file's content.
    where: the file (or ``file#N``) for messages.
    number: read only the tune with this X: number.

  Raises:
    SongSkip('unreadable'): music21 cannot tokenize or translate it, or tune ``number`` is absent.
  """
  try:
    handler = abcFormat.ABCHandler()
    handler.process(text)
    tunes = (handler.splitByReferenceNumber() if handler.definesReferenceNumbers()
             else {None: handler})
    if number is not None:
      if number not in tunes:
        raise SongSkip('unreadable', f'{where}: no tune X:{number}')
      tunes = {number: tunes[number]}
    return [(_title(h), x, _tune_parts(h, where)) for x, h in tunes.items()]
  except SongSkip:
    raise
  except Exception as e:  # music21 raises many types on malformed ABC
    raise SongSkip('unreadable', f'{where}: {type(e).__name__}: {str(e)[:200]}')
