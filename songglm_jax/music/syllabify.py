"""Plain lyrics text -> phrases of syllables, offline.

Words (:func:`syllabify_word`): a word is split into as many pieces as its first CMU pronunciation
has vowels (``k``; see ``music/stress.py``), so ``twinkle`` -> ``twin`` ``kle`` and ``alabama``
-> ``al`` ``a`` ``ba`` ``ma``. The pieces concatenate back to the word. Steps:

1. Candidate pieces are pyphen's hyphenation (``en_US`` patterns, at least one letter before the
   first and two after the last break).
2. Vowel nuclei of the spelling: runs of ``a e i o u`` and of ``y`` when it is not the first
   letter and does not stand between two vowels (``many``, ``crying``, but ``yes``, ``player``);
   the ``u`` of ``qu`` is a consonant; a final ``e`` after a consonant is silent (``love``) unless
   it is the ``e`` of a final consonant + ``le`` (``twinkle``) or the word has no other nucleus
   (``the``); the same holds for an ``e`` ending a pyphen piece that is a one-vowel dictionary
   word (``some`` ``body``).
3. A pyphen piece without a nucleus joins its neighbour (``tele pho ne`` -> ``tele phone``).
4. Too many pieces (pyphen split more than ``k``): the adjacent pair whose join holds the fewest
   nuclei is merged, leftmost first, until ``k``.
5. Too few pieces: the piece with the most nuclei is split between its middle two nuclei at the
   onset rule below; when no piece has two nuclei, a vowel run that is a hiatus (``ia io iu ie eo
   oe ua ue ui uo ei oi ea yi ya ye``; never diphthongs such as ``ou``, ``ow``, ``ai``, ``ee``) is
   split before its last vowel (``going`` -> ``go`` ``ing``, ``quiet`` -> ``qui`` ``et``); failing
   that, a silent final ``e`` not after ``r`` is sounded (``may`` ``be``). When the spelling has
   no more places to split (``fire``, ``our``, ``hour`` have two CMU vowels but one written
   syllable), the word keeps fewer pieces than ``k``.
6. Onset rule for a consonant run between two nuclei: one consonant starts the next piece
   (``mu`` ``sic``) except ``x``, which ends the previous one; a run that is one of ``ch sh th ph
   wh`` starts the next piece (``no`` ``thing``) and one ending in ``ck`` ends the previous one
   (``pick`` ``et``); a doubled letter is split (``pret`` ``ty``); otherwise the next piece gets the
   longest legal English onset (``bl``, ``str``, ...) that leaves at least one consonant behind.
7. Words the dictionary does not know take ``k`` = their number of nuclei (at least 1); a token
   with a digit (``99``) is one piece.

Against the 2.6k distinct words that ``stress.syllable_stress`` rebuilds from the shared corpus'
own syllables, the pieces match the corpus split exactly for 75% of occurrences and in number
for 92% (the rest is mostly the corpus' own habits: ``ne ver`` here, ``ev er`` there, multi-vowel
tokens such as ``no body``).

Other languages (``language``, a pyphen dictionary name such as ``de``, ``fr``, ``es``; default
``en``): English uses the steps above; any other language takes pyphen's hyphenation of that
language as it is (one letter allowed on either side of a break, so ``o-ben``), a piece without
a vowel joining its neighbour (``a-ben-d`` -> ``a`` ``bend``). The CMU dictionary is not
consulted then: it pronounces English (``rose``, ``sonne`` and ``liebe`` would get one syllable).

Text (:func:`syllabify_text`): the user's spelling is kept -- case, accents, inner apostrophes,
the characters of any script (a word is split on a lower-case, NFKC copy and the cuts are put
back on the original characters). Words are runs of letters, digits and combining marks with
inner apostrophes (``Don't``); a hyphen between two letters joins the parts of one word
(``well-known``); any other character separates words. Characters of scripts written without
spaces between syllables are one syllable each: CJK ideographs, hiragana and katakana (a small
kana such as ``ょ`` stays with the kana before it: ``きょ``), hangul syllable blocks.

Word structure is kept in the syllable texts by the usual hyphen convention of MIDI lyric events:
a syllable that the next one continues (same word) ends in ``-`` (:data:`CONTINUES`):
``Twinkle`` -> ``Twin-`` ``kle``, ``well-known`` -> ``well-`` ``known``; a CJK character is a word
of its own. The tokenizer strips the mark for the vocabulary, the MusicXML writer turns it into
``syllabic`` begin/middle/end, the MIDI writer writes it as it is.

Phrases: each line and each of ``. , ! ? ; :`` (also the full-width and CJK forms ``。 、 ， ！ ？
； ：`` and ``…``) ends a phrase, and that punctuation is glued to the last syllable of the phrase
as its ASCII mark, one mark only (the strongest of a run: ``? ! . ; : ,``), as in the MIDI data
(``knee.``; phrase segmentation reads these marks back). Empty phrases are dropped. A number is
one syllable token (not spelled out).
"""

from __future__ import annotations

import functools
import re
import unicodedata

import pyphen

from songglm_jax.music import stress

PHRASE_MARKS = '?!.;:,'  # strongest first
CONTINUES = '-'  # ends a syllable that the next one continues (same word)
DEFAULT_LANGUAGE = 'en'
_VOWELS = frozenset('aeiou')
_DIGRAPHS = frozenset('ch sh th ph wh'.split())
_HIATUS = frozenset('ia io iu ie eo oe ua ue ui uo ei oi ea yi ya ye'.split())
_ONSETS = frozenset("""
bl br ch cl cr dr fl fr gl gr gn kn ph pl pr qu sc sch scr sh shr sk sl sm sn sp sph spl spr squ
st str sw th thr tr tw wh wr
""".split())
_APOSTROPHES = frozenset("'\u2019\u2018\u02bc")
_HYPHENS = frozenset('-\u2010\u2011')
_MARKS = {**{m: m for m in PHRASE_MARKS}, '\u3002': '.', '\uff61': '.', '\uff0e': '.',
          '\u2026': '.', '\u2025': '.', '\u3001': ',', '\uff64': ',', '\uff0c': ',',
          '\uff01': '!', '\uff1f': '?', '\uff1b': ';', '\uff1a': ':'}
_SMALL_KANA = frozenset('ぁぃぅぇぉゃゅょゎゕゖァィゥェォャュョヮヵヶ') | frozenset(
    chr(c) for c in range(0x31F0, 0x3200))
# Letters of scripts sung one character per syllable (inclusive code point ranges).
_ONE_PER_CHAR = ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
                 (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFF66, 0xFF9D), (0x20000, 0x3134F))
_VOWEL_LETTERS = frozenset('aeiouyаеёиоуыэюяіїєαεηιουω')
_CHECKED_SCRIPTS = ('LATIN', 'CYRILLIC', 'GREEK')  # scripts whose vowels _VOWEL_LETTERS knows


def language_dictionary(language: str) -> str:
  """The pyphen dictionary for ``language`` (``'en'`` -> ``'en_US'``, ``'de'`` -> ``'de'``).

  Raises:
    ValueError: pyphen has no dictionary for it.
  """
  lang = str(language).strip().replace('-', '_')
  if lang.lower() in ('en', 'en_us'):
    return 'en_US'
  found = pyphen.language_fallback(lang) if lang else None
  if found is None:
    short = sorted({k.split('_')[0] for k in pyphen.LANGUAGES})
    raise ValueError(f'--language {language!r}: no hyphenation dictionary; pyphen has '
                     f'{", ".join(short)} (and regional forms such as de_AT, pt_BR)')
  return found


@functools.lru_cache(maxsize=16)
def _hyphenator(dictionary: str = 'en_US') -> pyphen.Pyphen:
  if dictionary.startswith('en'):
    return pyphen.Pyphen(lang=dictionary, left=1, right=2)
  return pyphen.Pyphen(lang=dictionary, left=1, right=1)


def _silent_e(word: str, flags: list[bool], end: int, start: int = 0) -> bool:
  """Is word[end - 1] a silent e closing the piece word[start:end] (step 2)?"""
  if end - start < 3 or word[end - 1] != 'e' or flags[end - 2] or not word[end - 2].isalpha():
    return False
  if word[end - 2] == 'l' and not flags[end - 3]:
    return False  # consonant + le: twinkle
  return any(flags[start:end - 1])


def _vowel_flags(word: str) -> list[bool]:
  """Per letter: is it part of a vowel nucleus (step 2; the silent final e is not)."""
  n = len(word)
  flags = [ch in _VOWELS for ch in word]
  for i, ch in enumerate(word):
    if ch == 'y' and i > 0:
      flags[i] = not (word[i - 1] in _VOWELS and i + 1 < n and word[i + 1] in _VOWELS)
    elif ch == 'u' and i > 0 and word[i - 1] == 'q':
      flags[i] = False
  if _silent_e(word, flags, n):
    flags[-1] = False
  return flags


def _nuclei(flags: list[bool], a: int, b: int) -> list[tuple[int, int]]:
  """Spans [start, end) of the vowel runs within letters a..b-1."""
  out = []
  i = a
  while i < b:
    if flags[i]:
      j = i
      while j < b and flags[j]:
        j += 1
      out.append((i, j))
      i = j
    else:
      i += 1
  return out


def _onset_split(word: str, a: int, b: int) -> int:
  """Where the consonant run word[a:b] (between two nuclei) is cut; returns an index in a..b."""
  run = word[a:b]
  if len(run) <= 1:
    return b if run == 'x' else a
  if run in _DIGRAPHS:
    return a
  if run.endswith('ck'):
    return b
  if run[-1] == run[-2]:
    return b - 1
  for size in range(min(3, len(run) - 1), 1, -1):
    if run[-size:] in _ONSETS:
      return b - size
  return b - 1


def _split_piece(word: str, flags: list[bool], a: int, b: int) -> int | None:
  """One cut inside word[a:b] that separates two nuclei or a hiatus, or None."""
  nuc = _nuclei(flags, a, b)
  if len(nuc) >= 2:
    m = len(nuc) // 2  # cut near the middle so pieces stay balanced
    return _onset_split(word, nuc[m - 1][1], nuc[m][0])
  for s, e in nuc:
    for i in range(e - 1, s, -1):
      if word[i - 1:i + 1] in _HIATUS:
        return i
  return None


@functools.lru_cache(maxsize=100_000)
def _syllabify_cached(word: str, dictionary: str = 'en_US') -> tuple[str, ...]:
  letters = word.replace("'", '')
  if not letters.isalpha() or not word:
    return (word,) if word else ()
  base = ''.join(unicodedata.normalize('NFKD', ch)[0] for ch in word)  # accents off, same length
  flags = _vowel_flags(base)
  pattern = stress.word_stress(word) or stress.word_stress(base)
  k = len(pattern) if pattern else max(1, len(_nuclei(flags, 0, len(word))))
  cuts = [int(p) for p in _hyphenator(dictionary).positions(word)]
  bounds = [0] + sorted(set(c for c in cuts if 0 < c < len(word))) + [len(word)]
  for a, b in zip(bounds[:-2], bounds[1:-1]):  # silent e closing a compound part: some|body
    if _silent_e(base, flags, b, a) and len(stress.word_stress(word[a:b]) or '') == 1:
      flags[b - 1] = False

  def count(i: int) -> int:  # nuclei in piece i
    return len(_nuclei(flags, bounds[i], bounds[i + 1]))

  while len(bounds) > 2 and min(count(i) for i in range(len(bounds) - 1)) == 0:
    i = min(range(len(bounds) - 1), key=count)  # a piece without a vowel joins a neighbour
    del bounds[i if i == len(bounds) - 2 else i + 1]
  while len(bounds) - 1 > k:
    best = min(range(len(bounds) - 2),
               key=lambda i: (min(count(i), count(i + 1)) > 0, count(i) + count(i + 1), i))
    del bounds[best + 1]
  while len(bounds) - 1 < k:
    order = sorted(range(len(bounds) - 1), key=lambda i: (-count(i), i))
    for i in order:
      cut = _split_piece(word, flags, bounds[i], bounds[i + 1])
      if cut is not None and bounds[i] < cut < bounds[i + 1]:
        bounds.insert(i + 1, cut)
        break
    else:
      if len(base) > 1 and not flags[-1] and base[-1] == 'e' and base[-2] != 'r':
        flags[-1] = True  # a sounded final e: maybe -> may be (but fire, desire stay whole)
        continue
      break
  return tuple(word[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1))


def _has_vowel(piece: str) -> bool:
  """False only for a piece of Latin, Cyrillic or Greek letters without a vowel letter."""
  base = [unicodedata.normalize('NFKD', ch)[0] for ch in piece if ch.isalpha()]
  if not base or any(not unicodedata.name(ch, '').startswith(_CHECKED_SCRIPTS) for ch in base):
    return True
  return any(ch in _VOWEL_LETTERS for ch in base)


@functools.lru_cache(maxsize=100_000)
def _syllabify_other(word: str, dictionary: str) -> tuple[str, ...]:
  """A word of another language: pyphen's pieces, a piece without a vowel joining a neighbour."""
  if not word:
    return ()
  cuts = sorted({int(p) for p in _hyphenator(dictionary).positions(word) if 0 < p < len(word)})
  pieces = [word[a:b] for a, b in zip([0] + cuts, cuts + [len(word)])]
  while len(pieces) > 1 and not all(map(_has_vowel, pieces)):
    i = next(k for k, p in enumerate(pieces) if not _has_vowel(p))
    j = i - 1 if i == len(pieces) - 1 else i  # join the next piece, the last joins the previous
    pieces[j:j + 2] = [pieces[j] + pieces[j + 1]]
  return tuple(pieces)


def syllabify_word(word: str, language: str = DEFAULT_LANGUAGE) -> list[str]:
  """Split one word into syllable pieces (steps in the module docstring).

  Args:
    word: a word; it is normalised with ``stress.normalize_word`` first (lower case, outer
      punctuation removed), and apostrophes at its ends are dropped unless the dictionary spells
      the word with them (``'cause``) or it ends in ``in'`` (``goin'``).
    language: ``'en'`` (CMU counts and English spelling rules) or another pyphen language.

  Returns:
    Pieces whose concatenation is the normalised word; ``[]`` for a word with no letters/digits.

  Raises:
    ValueError: an unknown language.
  """
  dictionary = language_dictionary(language)
  word = stress.normalize_word(word)
  if (word[:1] == "'" or word[-1:] == "'") and word not in stress.load_cmudict():
    if not word.endswith("in'"):  # quotes around a word, not 'cause or goin'
      word = word.strip("'")
  if dictionary.startswith('en'):
    return list(_syllabify_cached(word, dictionary))
  if not word.replace("'", '').isalpha():
    return [word] if word else []
  return list(_syllabify_other(word, dictionary))


def one_per_char(ch: str) -> bool:
  """Is ``ch`` a letter of a script sung one character per syllable (CJK, kana, hangul)?"""
  c = ord(ch)
  return any(a <= c <= b for a, b in _ONE_PER_CHAR) and ch not in '\u30fb\u30a0'


def _word_char(ch: str) -> bool:
  return unicodedata.category(ch)[0] in 'LNM'


def _split_run(run: str, language: str) -> list[str]:
  """Syllables of a run of letters (no CJK) in the run's own spelling: the word is split on a
  lower-case NFKC copy and the cuts are moved onto the original characters."""
  chunks = [unicodedata.normalize('NFKC', ch).lower() for ch in run]
  chunks = ["'" if ch in _APOSTROPHES else c for ch, c in zip(run, chunks)]
  starts = [0]
  for c in chunks:
    starts.append(starts[-1] + len(c))
  key = ''.join(chunks)
  pieces = syllabify_word(key, language)
  joined = ''.join(pieces)
  offset = key.find(joined)
  if len(pieces) < 2 or offset < 0:
    return [run]
  cuts, pos = [], offset
  for piece in pieces[:-1]:
    pos += len(piece)
    cut = next(i for i, s in enumerate(starts) if s >= pos)  # a cut inside a chunk moves right
    if 0 < cut < len(run) and (not cuts or cut > cuts[-1]):
      cuts.append(cut)
  return [run[a:b] for a, b in zip([0] + cuts, cuts + [len(run)])]


def _word_syllables(parts: list[str], language: str) -> list[str]:
  """Syllables of one word (``parts``: its pieces between hyphens), with :data:`CONTINUES` on
  every syllable but the last of each run of letters and of each hyphenated part but the last."""
  out: list[str] = []
  for k, part in enumerate(parts):
    i = 0
    while i < len(part):
      if one_per_char(part[i]):
        j = i + 1
        while j < len(part) and (part[j] in _SMALL_KANA or
                                 unicodedata.category(part[j])[0] == 'M'):
          j += 1
        out.append(part[i:j])
      else:
        j = i
        while j < len(part) and not one_per_char(part[j]):
          j += 1
        syl = _split_run(part[i:j], language)
        out.extend([s + CONTINUES for s in syl[:-1]] + syl[-1:])
      i = j
    if k < len(parts) - 1 and out and not one_per_char(out[-1][0]):
      out[-1] += CONTINUES
  return out


def _tokens(text: str):
  """('word', [parts]), ('mark', ASCII mark) and ('line', '') items of the text, in order."""
  n, i = len(text), 0
  while i < n:
    ch = text[i]
    if ch == '\n':
      yield 'line', ''
      i += 1
    elif ch in _MARKS:
      j = i
      while j < n and text[j] in _MARKS:
        j += 1
      yield 'mark', min((_MARKS[c] for c in text[i:j]), key=PHRASE_MARKS.index)
      i = j
    elif _word_char(ch) or (ch in _APOSTROPHES and i + 1 < n and _word_char(text[i + 1])):
      parts, start, j = [], i, i + 1
      while j < n:
        if _word_char(text[j]):
          j += 1
        elif text[j] in _APOSTROPHES and j + 1 < n and _word_char(text[j + 1]):
          j += 1
        elif (text[j] in _HYPHENS and j + 1 < n and _word_char(text[j + 1])
              and _word_char(text[j - 1])):
          parts.append(text[start:j])
          start = j = j + 1
        else:
          break
      if j < n and text[j] in _APOSTROPHES:  # goin'
        j += 1
      parts.append(text[start:j])
      yield 'word', parts
      i = j
    else:
      i += 1


def syllabify_text(text: str, language: str = DEFAULT_LANGUAGE) -> list[list[str]]:
  """Plain lyrics -> phrases, each a list of syllable strings (rules in the module docstring).

  ``'Twinkle, twinkle little star\\nHow I wonder'`` ->
  ``[['Twin-', 'kle,'], ['twin-', 'kle', 'lit-', 'tle', 'star'], ['How', 'I', 'won-', 'der']]``;
  ``'一闪一闪，'`` -> ``[['一', '闪', '一', '闪,']]``.

  Raises:
    ValueError: an unknown language.
  """
  language_dictionary(language)
  text = unicodedata.normalize('NFC', str(text)).replace('\r\n', '\n').replace('\r', '\n')
  phrases: list[list[str]] = []
  cur: list[str] = []

  def end_phrase(mark: str) -> None:
    if cur:
      if mark:
        cur[-1] += mark
      phrases.append(list(cur))
      cur.clear()

  for kind, value in _tokens(text):
    if kind == 'line':
      end_phrase('')
    elif kind == 'mark':
      end_phrase(value)
    else:
      cur.extend(_word_syllables(value, language))
  end_phrase('')
  return phrases


def plain(syllable: str) -> str:
  """A syllable as displayed: without the :data:`CONTINUES` mark."""
  return syllable[:-1] if syllable.endswith(CONTINUES) and len(syllable) > 1 else syllable


def words_of(syllables) -> list[str]:
  """The words the syllables spell: a syllable ending in :data:`CONTINUES` (or followed by one
  starting with ``/``, the data's mark) is joined to the next; one-per-character scripts are
  joined without spaces. ``['Twin-', 'kle,', 'lit-', 'tle']`` -> ``['Twinkle,', 'little']``."""
  out: list[str] = []
  glue = False
  for s in syllables:
    text = plain(s)
    if out and (glue or text.startswith('/') or (one_per_char(out[-1][-1:] or ' ')
                                                 and one_per_char(text[:1] or ' '))):
      out[-1] += text.lstrip('/')
    else:
      out.append(text)
    glue = s.endswith(CONTINUES) and len(s) > 1
  return out
