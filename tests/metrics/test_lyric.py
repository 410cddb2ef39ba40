"""AA, SBA, SPA and PEA on tiny hand-made songs (flags given explicitly, and from the stress,
skeleton and phrases modules)."""

import math

import numpy as np
import pytest

from songglm_jax.metrics import lyric, oracle
from tests.metrics.helpers import random_song
from tests.songs import make_song


def _quarters(pitches, note_syllable, syllables, ts=((0, 4, 4),), phrases=None):
  n = len(pitches)
  return make_song(pitches, [480 * i for i in range(n)], [480] * n, note_syllable, syllables,
                   time_signatures=ts, phrases=phrases)


def test_strong_beats_are_beats_1_and_3_in_four_four():
  song = _quarters([60] * 5, [0, 1, 2, 3, 4], list('abcde'))
  np.testing.assert_array_equal(lyric.strong_beat_notes(song), [1, 0, 1, 0, 1])


def test_strong_beat_is_beat_1_only_in_other_meters():
  song = _quarters([60] * 4, [0, 1, 2, 3], list('abcd'), ts=((0, 3, 4),))
  np.testing.assert_array_equal(lyric.strong_beat_notes(song), [1, 0, 0, 1])
  cut = _quarters([60] * 5, [0, 1, 2, 3, 4], list('abcde'), ts=((0, 2, 2),))
  np.testing.assert_array_equal(lyric.strong_beat_notes(cut), [1, 0, 0, 0, 1])  # beat 2 is weak


def test_off_grid_onset_is_not_strong():
  song = make_song([60, 62], [0, 970], [480, 480], [0, 1], ['a', 'b'])
  np.testing.assert_array_equal(lyric.strong_beat_notes(song), [1, 0])


def test_alignment_accuracy_counts_equal_note_numbers():
  ref = _quarters([60] * 3, [0, 1, 2], ['a', 'b', 'c'])
  gen = _quarters([60] * 4, [0, 1, 1, 2], ['a', 'b', 'c'])
  aa, diff = lyric.alignment_accuracy(gen, ref)
  assert aa == pytest.approx(2 / 3) and diff == pytest.approx(1 / 3)


def test_different_syllables_are_misaligned():
  ref = _quarters([60] * 2, [0, 1], ['a', 'b'])
  gen = _quarters([60] * 2, [0, 1], ['a', 'c'])
  assert all(math.isnan(v) for v in lyric.alignment_accuracy(gen, ref))


def test_sba_counts_primary_syllables_starting_on_strong_beats():
  # Syllables start on beats 1, 2, 3, 4 (one quarter each); primary stress on syllables 0, 1, 3.
  song = _quarters([60] * 4, [0, 1, 2, 3], list('abcd'))
  assert lyric.stress_on_strong_beats(song, [1, 1, 0, 1]) == pytest.approx(1 / 3)
  assert math.isnan(lyric.stress_on_strong_beats(song, [0, 0, 0, 0]))


def test_spa_counts_primary_syllables_holding_a_peak():
  # Syllable 0 on notes 0-1 (peak at 1), syllable 1 on note 2, syllable 2 on note 3 (peak).
  song = _quarters([60, 64, 62, 65, 60], [0, 0, 1, 2, 3], list('abcd'))
  peaks = [0, 1, 0, 1, 0]
  assert lyric.stress_on_peaks(song, [1, 1, 0, 0], peaks) == pytest.approx(1 / 2)
  assert lyric.stress_on_peaks(song, [1, 1, 1, 0], peaks) == pytest.approx(2 / 3)


def test_pea_wants_a_rest_of_an_eighth_or_a_quarter_long_last_note():
  # Notes: eighth, then a 240 rest (ok); eighth then 120 rest (not ok); quarter (ok); last note.
  song = make_song([60, 62, 64, 65, 67], [0, 480, 720, 960, 1440], [240, 120, 240, 480, 120],
                   [0, 1, 2, 3, 4], list('abcde'))
  assert lyric.phrase_endings(song, [1, 0, 0, 0, 0]) == 1.0
  assert lyric.phrase_endings(song, [0, 0, 1, 0, 0]) == 0.0  # 240 long, next at +0 ticks
  assert lyric.phrase_endings(song, [0, 0, 0, 1, 0]) == 1.0
  assert lyric.phrase_endings(song, [0, 0, 0, 0, 1]) == 1.0  # the song's last note
  assert lyric.phrase_endings(song, [1, 1, 0, 0, 0]) == 0.5  # 120-tick rest is not enough


def test_flags_of_the_wrong_length_are_an_error():
  song = _quarters([60] * 2, [0, 1], ['a', 'b'])
  with pytest.raises(ValueError, match='primary'):
    lyric.stress_on_strong_beats(song, [1, 0, 1])


def test_primary_stress_comes_from_the_stress_module():
  song = _quarters([60] * 5, [0, 1, 2, 3, 4], ['ba', 'na', 'na', 'is', 'sweet'])
  np.testing.assert_array_equal(lyric.primary_stress(song), [0, 1, 0, 1, 1])


def test_primary_stress_prefers_the_songs_own_patterns():
  song = _quarters([60] * 2, [0, 1], ['ba', 'na']).replace(syllable_stress=('1', '0'))
  np.testing.assert_array_equal(lyric.primary_stress(song), [1, 0])


def test_phrase_final_uses_the_songs_phrases_when_it_has_several():
  song = _quarters([60] * 4, [0, 1, 2, 3], list('abcd'), phrases=[0, 0, 1, 1])
  np.testing.assert_array_equal(lyric.phrase_final(song), [0, 1, 0, 1])


def test_phrase_final_segments_by_punctuation_otherwise():
  song = _quarters([60] * 4, [0, 1, 2, 3], ['a', 'b,', 'c', 'd'])
  np.testing.assert_array_equal(lyric.phrase_final(song), [0, 1, 0, 1])


def test_aligned_pair_judges_generated_on_reference_phrases():
  ref = _quarters([60] * 4, [0, 1, 2, 3], ['hel', 'lo', 'my', 'love'], phrases=[0, 0, 1, 1])
  # Generated: syllable 1 ends with a 120-tick rest only (bad ending), last note fine.
  gen = make_song([60, 62, 64, 65], [0, 480, 840, 1320], [480, 240, 480, 480], [0, 1, 2, 3],
                  ['hel', 'lo', 'my', 'love'])
  m = lyric.pair_metrics(gen, ref)
  assert m.aligned and m.PEA_generated == 0.5 and m.PEA_reference == 1.0


def test_set_means_skip_undefined_values_and_give_differences():
  a = lyric.PairLyricMetrics(True, 1.0, 0.0, 0.5, 0.25, float('nan'), 0.5, 1.0, 1.0)
  b = lyric.PairLyricMetrics(False, float('nan'), float('nan'), 0.0, 0.75, 0.5, 0.5, 0.0, 1.0)
  means = lyric.set_means([a, b])
  assert means['AA'] == 1.0 and means['SPA_generated'] == 0.5
  assert means['SBA_diff'] == pytest.approx(0.25 - 0.5)
  assert lyric.misaligned([a, b], ['x', 'y']) == ['y']


def test_pair_metrics_agree_with_oracle_loops():
  rng = np.random.default_rng(0)
  for k in range(6):
    ref = random_song(rng, 12, punctuation=k % 2 == 0,
                      time_signatures=((0, 4, 4),) if k < 3 else ((0, 3, 4), (2880, 4, 4)))
    gen = random_song(rng, 12, punctuation=k % 2 == 0)
    fast = lyric.pair_metrics(gen, ref).as_dict()
    slow = oracle.lyric_pair(gen, ref)
    for key, v in slow.items():
      assert (math.isnan(v) and math.isnan(fast[key])) or fast[key] == pytest.approx(v, abs=1e-12)
