"""The oracle's own stress and phrase flags (metrics/oracle_lyric.py) agree with the ones the
evaluation uses (music/stress.py, music/phrases.py via metrics/lyric.py), worked out separately."""

import numpy as np
import pytest

from songglm_jax.metrics import lyric
from songglm_jax.metrics import oracle_lyric as ol
from songglm_jax.music import stress
from tests.conftest import require_sample
from tests.metrics.helpers import random_song
from tests.songs import make_song


def test_own_dictionary_parse_equals_the_stress_module():
  d = ol.dictionary()
  assert {w: p for w, (p, _) in d.items()} == stress.load_cmudict()
  for word in ('iron', 'idea', 'igo', 'apple', 'alabama', "don't"):
    assert d[word][1] == stress.first_vowel(word), word


@pytest.mark.parametrize('syllables, patterns', [
    (['al', 'a', 'bam', 'a'], ['2', '0', '1', '0']),
    (['every', 'thing'], ['10', '2']),
    (['in', 'a'], ['0', '0']),  # function words: not 'ina'
    (['a', 'man'], ['0', '1']),  # a stressed leading 'a' is refused
    (['and', 'i'], ['0', '1']),  # the pronoun never ends a word (not 'andi')
    (['twin-', 'kle'], ['1', '0']),  # a trailing hyphen continues the word
    (['knee.', 'ing'], ['1', '1']),  # trailing punctuation ends it
    (['hmmm'], ['?']),
])
def test_word_mode_on_known_runs(syllables, patterns):
  assert ol.word_mode_patterns(syllables) == patterns
  assert list(stress.syllable_stress(syllables, 'word')) == patterns


def _variants(song):
  """The song, as one phrase (punctuation rule), and one phrase without punctuation (melodic
  rule)."""
  one = song.replace(syllable_phrase=np.zeros(song.num_syllables, np.int32))
  bare = one.replace(syllables=tuple(s.rstrip('.,!?;:"\'') or s for s in song.syllables))
  return song, one, bare


def test_flags_agree_on_random_songs():
  rng = np.random.default_rng(7)
  for k in range(40):
    ts = ((0, 4, 4),) if k % 3 else ((0, 3, 4), (1440, 4, 4), (3360, 6, 8))
    song = random_song(rng, int(rng.integers(2, 30)), punctuation=k % 2 == 0, time_signatures=ts)
    for v in _variants(song):
      assert ol.phrase_final(v) == lyric.phrase_final(v).tolist()
      assert ol.primary_stress(v) == lyric.primary_stress(v).tolist()


def test_phrase_flags_by_hand():
  # Quarter notes, no punctuation. Note 4, a half note, is the longest of bar 2 and longer than
  # a quarter; note 5 is followed by an eighth rest. They are adjacent: note 4 is kept (strictly
  # longer), note 5 dropped. The last syllable always ends a phrase.
  song = make_song([60] * 7, [0, 480, 960, 1440, 1920, 2880, 3600],
                   [480, 480, 480, 480, 960, 480, 480], list(range(7)), list('abcdefg'))
  assert ol.melodic_boundary_notes(song) == [4]
  assert ol.phrase_final(song) == [False] * 4 + [True, False, True]
  assert lyric.phrase_final(song).tolist() == ol.phrase_final(song)


def test_flags_agree_on_the_shared_corpus():
  from songglm_jax.music import io as song_io
  folder = require_sample('finetune')
  for path in sorted(folder.glob('*.mid'))[:150]:
    (song,), _ = song_io.read_songs(path)
    for v in _variants(song):
      assert ol.phrase_final(v) == lyric.phrase_final(v).tolist(), path.name
      assert ol.primary_stress(v) == lyric.primary_stress(v).tolist(), path.name


def test_word_mode_agrees_on_the_shared_pretrain_lyrics():
  symusic = pytest.importorskip('symusic')
  folder = require_sample('pretrain')
  for path in sorted(folder.glob('*.mid'))[:400]:
    syllables = [ly.text for ly in symusic.Score(str(path)).tracks[0].lyrics]
    assert ol.word_mode_patterns(syllables) == list(stress.syllable_stress(syllables, 'word')), (
        path.name)
