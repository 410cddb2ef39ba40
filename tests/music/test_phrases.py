import numpy as np

from songglm_jax.music import phrases
from tests.conftest import require_sample
from tests.songs import make_song, scale_song


def test_punctuation_phrases_when_enough_punctuation():
  s = scale_song(12, [1] * 12, punctuation_every=4)
  assert phrases.segment_phrases(s).syllable_phrase.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_punctuation_ignored_below_one_twelfth():
  syl = [f's{i}' for i in range(26)]
  syl[5] = 's5,'  # 1/26 < 1/12: melodic rule instead (all quarters, no rests: one phrase)
  n = len(syl)
  s = make_song([60] * n, np.arange(n) * 480, [480] * n, np.arange(n), syl)
  assert phrases.segment_phrases(s).syllable_phrase.tolist() == [0] * n


def test_trailing_quote_after_punctuation_counts():
  assert phrases.ends_in_punctuation('knee."') and phrases.ends_in_punctuation('oh,')
  assert not phrases.ends_in_punctuation("don't") and not phrases.ends_in_punctuation('a')


def test_melodic_boundaries_rest_and_long_note():
  # bar 0: q q q q ; bar 1: half(long, > quarter) q q ; rest of an eighth after note 7 ; bar 2..
  on = [0, 480, 960, 1440, 1920, 2880, 3360, 3840 + 240, 4320, 4800]
  du = [480, 480, 480, 480, 960, 480, 480, 240, 480, 480]
  on[7] = 3840  # note 7: 3840..4080, then a rest of 240 before note 8 at 4320
  s = make_song([60] * 10, on, du, np.arange(10), [f'x{i}' for i in range(10)])
  # candidates: note 4 (longest in bar 1, 960 > 480), note 7 (eighth rest after), note 9 (last)
  assert phrases.melodic_boundaries(s).tolist() == [4, 7]
  assert phrases.segment_phrases(s).syllable_phrase.tolist() == [0] * 5 + [1] * 3 + [2] * 2


def test_adjacent_candidates_keep_one():
  # notes 1 and 2 are both candidates: 1 is followed by an eighth rest -> keep 1
  on = [0, 480, 1440, 1920, 2400]
  du = [480, 720, 480, 480, 480]
  s = make_song([60] * 5, on, du, np.arange(5), list('abcde'))
  # note 1: rest of 240 after it -> candidate; note 2: longest of bar 0? no (720 is longer).
  assert phrases.melodic_boundaries(s).tolist() == [1]
  # long note 2 (bar 1 longest, 960) adjacent to rest-candidate note 3: 3 has rest -> keep ...
  on = [0, 480, 1920, 2880, 3840]
  du = [480, 480, 960, 720, 480]  # note 2: longest of bar 1 (960); note 3 has rest 240 after
  s = make_song([60] * 5, on, du, np.arange(5), list('abcde'))
  # note 1 (rest of 960 after it) and note 2 adjacent: 1 has a rest after -> keep 1;
  # then note 3 (rest after) is adjacent to 2, which was dropped -> 3 kept on its own
  assert phrases.melodic_boundaries(s).tolist() == [1, 3]


def test_adjacent_candidates_without_rest_keep_the_longer_else_second():
  # bar 0: long note 0 (960, longest) then note 1 (720) longest-of-bar-1 candidate? make both
  on = [0, 960, 1920, 2400]
  du = [960, 960, 480, 480]
  s = make_song([60] * 4, on, du, np.arange(4), list('abcd'))
  # note 0: longest of bar 0 (960 > 480); note 1: 960..1920 lies in bar 0 too (onset 960), so
  # bar 0's longest is note 0 (first of equals). Note 2: bar 1, 480 -> not > quarter.
  assert phrases.melodic_boundaries(s).tolist() == [0]
  on = [0, 1920]
  du = [1920, 2400]  # note 0 longest of bar 0, note 1 longest of bar 1 and longer -> keep 1
  s = make_song([60] * 2, on, du, [0, 1], list('ab'))
  assert phrases.melodic_boundaries(s).tolist() == [1]


def test_split_windows_respects_caps_at_phrase_boundaries():
  s = scale_song(40, [1] * 40, punctuation_every=5)
  s = phrases.segment_phrases(s)
  wins = phrases.split_windows(s, max_syllables=12, max_phrases=128)
  assert [w.num_syllables for w in wins] == [10, 10, 10, 10]
  assert all(w.syllables[-1].endswith(',') for w in wins)
  assert sum(w.num_notes for w in wins) == s.num_notes
  assert wins[0].name.endswith('#0')
  wins = phrases.split_windows(s, max_syllables=256, max_phrases=3)
  assert [w.num_phrases for w in wins] == [3, 3, 2]


def test_split_windows_cuts_an_overlong_phrase():
  s = scale_song(30, [1] * 30)
  wins = phrases.split_windows(s, max_syllables=8)
  assert [w.num_syllables for w in wins] == [8, 8, 8, 6]
  assert all(w.onset[0] < 1920 for w in wins)  # each starts in its own first bar


def test_shared_corpus_phrases_are_plausible():
  from songglm_jax.music import midi
  root = require_sample('pretrain')
  per_phrase = []
  for f in sorted(root.glob('*.mid'))[:200]:
    s = phrases.segment_phrases(midi.read_midi(f)[0])
    per_phrase.append(s.num_syllables / s.num_phrases)
  assert 3 < np.median(per_phrase) < 20
