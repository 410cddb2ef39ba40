"""Hand-computed features on tiny songs; the set-level (vectorized) form against the per-song one
and against the oracle."""

import numpy as np
import pytest

from songglm_jax.metrics import features, oracle
from tests.metrics.helpers import random_song
from tests.songs import make_song


def _song(pitches, onsets, durations, note_syllable, ts=((0, 4, 4),)):
  s = int(max(note_syllable)) + 1
  return make_song(pitches, onsets, durations, note_syllable, [f'x{i}' for i in range(s)],
                   time_signatures=ts)


def test_duration_classes_are_the_69_sorted_classes_with_unit_10():
  c = features.DURATION_CLASSES
  assert len(c) == 69 and np.all(np.diff(c) > 0)
  assert {40, 80, 160, 320, 640, 30, 1920} <= set(c.tolist())
  assert features.MD_UNIT == 10


def test_alignment_histogram_counts_syllables_by_notes():
  # Syllables sung on 1, 1, 2 and 7 notes.
  ns = [0, 1, 2, 2] + [3] * 7
  song = _song([60] * 11, list(range(0, 11 * 240, 240)), [240] * 11, ns)
  np.testing.assert_array_equal(features.alignment_histogram(song), [2, 1, 0, 0, 0, 1])


def test_pitch_class_histogram_is_fraction_of_notes():
  song = _song([60, 62, 72, 61], [0, 240, 480, 720], [240] * 4, [0, 1, 2, 3])
  expected = np.zeros(12)
  expected[[0, 1, 2]] = [0.5, 0.25, 0.25]
  np.testing.assert_allclose(features.pitch_class_histogram(song), expected)


def test_mean_ioi_in_ticks_and_zero_for_one_note():
  song = _song([60, 62, 64], [0, 240, 720], [240, 240, 240], [0, 1, 2])
  assert features.mean_ioi(song) == 360.0
  assert features.mean_ioi(_song([60], [0], [240], [0])) == 0.0


def test_duration_histogram_ignores_unmatched_durations():
  song = _song([60] * 4, [0, 240, 720, 760], [240, 480, 40, 250], [0, 1, 2, 3])
  dd = features.duration_histogram(song)
  for d in (240, 480, 40):
    assert dd[list(features.DURATION_CLASSES).index(d)] == 0.25
  assert dd.sum() == pytest.approx(0.75)


def test_md_series_repeats_pitch_per_10_ticks_minus_mean():
  song = _song([60, 62, 70], [0, 30, 60], [30, 25, 5], [0, 1, 2])
  series = features.md_series(song)
  raw = np.array([60, 60, 60, 62, 62.0])
  np.testing.assert_allclose(series, raw - raw.mean())


def test_md_runs_merges_repeated_pitches():
  song = _song([60, 60, 62], [0, 100, 200], [100, 50, 20], [0, 1, 2])
  values, lengths = features.md_runs(song)
  np.testing.assert_array_equal(values, [60, 62])
  np.testing.assert_array_equal(lengths, [15, 2])


def test_feature_matrices_equal_per_song_features():
  rng = np.random.default_rng(0)
  songs = [random_song(rng, 10), random_song(rng, 3, time_signatures=((0, 3, 4), (960, 4, 4))),
           _song([64], [0], [480], [0])]
  m = features.feature_matrices(songs)
  for i, s in enumerate(songs):
    np.testing.assert_allclose(m['A'][i], features.alignment_histogram(s), atol=1e-9)
    np.testing.assert_allclose(m['PCH'][i], features.pitch_class_histogram(s), atol=1e-9)
    np.testing.assert_allclose(m['IOI'][i, 0], features.mean_ioi(s), atol=1e-9)
    np.testing.assert_allclose(m['DD'][i], features.duration_histogram(s), atol=1e-9)


def test_feature_matrices_agree_with_oracle_to_1e_9():
  rng = np.random.default_rng(1)
  songs = [random_song(rng, int(rng.integers(1, 20))) for _ in range(25)]
  m = features.feature_matrices(songs)
  for i, s in enumerate(songs):
    ref = oracle.song_features(s)
    for k in features.FEATURES:
      np.testing.assert_allclose(m[k][i], ref[k], atol=1e-9, rtol=0)
    np.testing.assert_allclose(features.md_series(s), oracle.md_series(s), atol=1e-9)


def test_feature_matrices_of_no_songs_are_empty():
  m = features.feature_matrices([])
  assert m['DD'].shape == (0, 69) and m['IOI'].shape == (0, 1)
