"""The diagnosis figures on tiny hand-made songs: every expected value is worked out by hand."""

import math

import numpy as np
import pytest

from songglm_jax.metrics import diagnose, lyric
from tests.metrics.helpers import random_song, transposed
from tests.songs import make_song


def _song(onsets, durations, pitches=None, note_syllable=None, phrases=None, ts=((0, 4, 4),),
          stress=None, name='t'):
  """One syllable per note unless ``note_syllable`` says otherwise; syllables 'la0', 'la1', ..."""
  n = len(onsets)
  note_syllable = list(range(n)) if note_syllable is None else note_syllable
  s = note_syllable[-1] + 1
  song = make_song(pitches or [60] * n, onsets, durations, note_syllable,
                   [f'la{i}' for i in range(s)], phrases=phrases, time_signatures=ts, name=name)
  return song if stress is None else song.replace(syllable_stress=tuple(stress))


def _flags(primary=None, unstressed=None, final=None, s=None):
  s = s or len(primary or unstressed or final)
  z = [False] * s
  return diagnose.SyllableFlags(np.array(primary or z), np.array(unstressed or z),
                                np.array(final or z))


# A 4/4 song (bars of 1920 ticks) whose rests before notes 1..6 are 0, 240, 480, 600, 1320 and
# 2400 ticks: one in each rest class. Bars of the onsets: 0, 0, 0, 1, 1, 2, 4.
RESTS = _song([0, 480, 1200, 1920, 3000, 4800, 7680], [480, 480, 240, 480, 480, 480, 480])


# ---- timing -----------------------------------------------------------------------------------
def test_legato_and_rest_classes():
  t = diagnose.timing([RESTS])
  assert t['legato'] == pytest.approx(1 / 6)
  assert t['overlap'] == 0.0
  for key in diagnose.REST_KEYS:
    assert t[key] == pytest.approx(1 / 6), key


def test_rest_class_edges_are_right_inclusive_up_to_960_and_1920_starts_the_last():
  # Rests 240, 480, 960, 1920: classes (0, 240], (240, 480], (480, 960], >= 1920.
  song = _song([0, 720, 1680, 3120, 5520], [480] * 5)
  t = diagnose.timing([song])
  assert [t[k] for k in diagnose.REST_KEYS] == [0, 0.25, 0.25, 0.25, 0, 0.25]


def test_overlap_counts_as_no_rest_but_not_legato():
  song = _song([0, 480, 960], [600, 480, 480])  # note 1 starts 120 ticks before note 0 ends
  t = diagnose.timing([song])
  assert t['legato'] == 0.5 and t['overlap'] == 0.5 and t['rest_0'] == 1.0


def test_rests_across_a_barline():
  # Rests (960, 1200), (1440, 1920) ends on the barline, (2400, 3000), (3480, 4800) holds 3840,
  # (5280, 7680) holds 5760: 2 of 5.
  assert diagnose.timing([RESTS])['rest_across_barline'] == pytest.approx(0.4)


def test_a_rest_that_starts_on_a_barline_does_not_cross_it():
  song = _song([0, 2400], [1920, 480])  # rest (1920, 2400)
  assert diagnose.timing([song])['rest_across_barline'] == 0.0


def test_bar_steps_jointly_with_legato():
  t = diagnose.timing([RESTS])
  # Steps (bar difference, legato): (0, yes), (0, no), (1, no), (0, no), (1, no), (2, no).
  expected = {'0_legato': 1, '0_gap': 2, '1_legato': 0, '1_gap': 2, '2_legato': 0, '2_gap': 1,
              '3up_legato': 0, '3up_gap': 0}
  for cell, count in expected.items():
    assert t[f'bar_step_{cell}'] == pytest.approx(count / 6), cell


def test_bar_steps_of_three_or_more_share_a_cell():
  song = _song([0, 5760, 15360], [480, 480, 480])  # bars 0, 3, 8
  t = diagnose.timing([song])
  assert t['bar_step_3up_gap'] == 1.0


def test_ioi_over_songs():
  songs = [_song([0, 240, 480], [240] * 3), _song([0, 480], [480] * 2),
           _song([0, 1200, 2400], [480] * 3), _song([0], [480])]  # IOIs 240, 480, 1200, none
  t = diagnose.timing(songs)
  assert t['ioi_song_mean'] == pytest.approx(640)
  assert t['ioi_song_median'] == pytest.approx(480)
  assert t['ioi_song_p90'] == pytest.approx(480 + 0.8 * 720)
  assert diagnose.timing([RESTS])['ioi_song_mean'] == pytest.approx(7680 / 6)


def test_one_note_has_no_previous_note():
  t = diagnose.timing([_song([0], [480])])
  assert math.isnan(t['legato']) and math.isnan(t['rest_0']) and math.isnan(t['ioi_song_mean'])


def test_songs_do_not_leak_into_each_other():
  # The second song's first note starts at 0, before the first song's end: no overlap, no step.
  a, b = _song([0, 480], [480, 480]), _song([0, 480], [480, 480])
  t = diagnose.timing([a, b])
  assert t['legato'] == 1.0 and t['overlap'] == 0.0 and t['bar_step_0_legato'] == 1.0


# ---- durations ------------------------------------------------------------------------------
def test_top_durations_most_common_first_ties_shorter_first():
  song = _song([0, 480, 960, 1440, 1920], [480, 480, 240, 240, 120])
  assert diagnose.top_durations([song]) == [240, 480, 120]
  assert diagnose.top_durations([song], k=1) == [240]


def test_duration_shares_and_entropy():
  song = _song([0, 240, 480, 720], [240, 240, 240, 480])
  d = diagnose.durations([song], values=[240, 960])
  assert d['share_240'] == 0.75 and d['share_960'] == 0.0 and d['share_other'] == 0.25
  h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
  assert d['entropy_bits_mean'] == pytest.approx(h) and d['entropy_bits_std'] == 0.0


def test_duration_entropy_over_songs():
  songs = [_song([0, 480], [480, 480]), _song([0, 480], [240, 480])]  # 0 bits, 1 bit
  d = diagnose.durations(songs)
  assert d['entropy_bits_mean'] == pytest.approx(0.5) and d['entropy_bits_std'] == pytest.approx(
      0.5)


def test_named_duration_classes():
  dur = [120, 240, 360, 720, 480, 960, 1920, 300]
  song = _song(np.concatenate([[0], np.cumsum(dur)[:-1]]).tolist(), dur)
  d = diagnose.durations([song])
  assert (d['sixteenth'], d['eighth'], d['dotted'], d['quarter'], d['half_up'],
          d['other_value']) == (1 / 8, 1 / 8, 2 / 8, 1 / 8, 2 / 8, 1 / 8)


# ---- pitch ----------------------------------------------------------------------------------
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def _melody(pitches, name='m'):
  n = len(pitches)
  return _song([480 * i for i in range(n)], [480] * n, pitches=pitches, name=name)


def test_scales_are_the_major_scales_by_tonic():
  np.testing.assert_array_equal(np.flatnonzero(diagnose.SCALES[0]), [0, 2, 4, 5, 7, 9, 11])
  np.testing.assert_array_equal(np.flatnonzero(diagnose.SCALES[7]), [0, 2, 4, 6, 7, 9, 11])


def test_c_major_scale():
  p = diagnose.pitch([_melody(C_MAJOR)])
  assert p['in_key_mean'] == 1.0 and p['in_key_std'] == 0.0
  # Pitch classes: C twice, six others once: 2/8 * 2 + 6 * 1/8 * 3 = 2.75 bits.
  assert p['pc_entropy_bits_mean'] == pytest.approx(2.75)
  assert p['range_mean'] == 12 and p['distinct_mean'] == 8
  assert p['abs_interval_mean'] == pytest.approx(12 / 7)
  assert p['interval_step'] == 1.0 and p['interval_repeat'] == 0.0 and p['key_same_halves'] == 1.0


def test_chromatic_scale_is_seven_twelfths_in_key():
  p = diagnose.pitch([_melody(list(range(60, 72)))])
  assert p['in_key_mean'] == pytest.approx(7 / 12)
  assert p['pc_entropy_bits_mean'] == pytest.approx(math.log2(12))


def test_transposition_keeps_entropy_and_key_fit():
  song = random_song(np.random.default_rng(3), 12)
  a, b = diagnose.pitch([song]), diagnose.pitch([transposed(song, 5)])
  for key in ('pc_entropy_bits_mean', 'in_key_mean', 'pc_top1_mean', 'pc_top3_mean',
              'range_mean', 'abs_interval_mean', 'distinct_mean', 'key_same_halves'):
    assert a[key] == pytest.approx(b[key]), key


def test_key_drift_between_halves():
  # First half C D E F (best: C and F major), second half F# G# A# B (best: B and F# major).
  drift = _melody([60, 62, 64, 65, 66, 68, 70, 71], name='drift')
  steady = _melody(C_MAJOR, name='steady')
  one = _melody([60], name='one')  # fewer than 2 notes: not counted
  assert diagnose.pitch([drift, steady, one])['key_same_halves'] == 0.5


def test_tied_best_scales_count_as_the_same_key():
  # C D E F fits C and F major; F G A C fits C, F and Bb major: they share C and F.
  assert diagnose.pitch([_melody([60, 62, 64, 65, 65, 67, 69, 72])])['key_same_halves'] == 1.0


def test_tied_best_scales_need_not_be_the_first_tied_scale():
  # D F G A Bb fits F and Bb major; C D E F F fits C and F major: they share F only.
  melody = _melody([62, 65, 67, 69, 70, 60, 62, 64, 65, 65])
  assert diagnose.pitch([melody])['key_same_halves'] == 1.0


def test_first_half_of_an_odd_song_holds_the_middle_note():
  # Bb B A | E F: A, Bb, B are three semitones, so no major scale holds all three; the best
  # scales hold two (F, Bb, C, G, D, A, E, B, F# major) and share C and F with those of E F.
  # Split after two notes instead, Bb B (B, F# major) and A E F (C, F major) share none.
  assert diagnose.pitch([_melody([70, 71, 69, 64, 65])])['key_same_halves'] == 1.0


def test_share_of_the_most_frequent_pitch_classes():
  # C E C G C A: C 3 of 6, then E, G, A once each; C C# D D#: four classes once each.
  p = diagnose.pitch([_melody([60, 64, 72, 67, 48, 69]), _melody([60, 61, 62, 63])])
  assert p['pc_top1_mean'] == pytest.approx((3 / 6 + 1 / 4) / 2)
  assert p['pc_top3_mean'] == pytest.approx((5 / 6 + 3 / 4) / 2)
  assert p['pc_top1_std'] == pytest.approx((3 / 6 - 1 / 4) / 2)


def test_interval_classes():
  p = diagnose.pitch([_melody([60, 60, 62, 65, 72])])  # intervals 0, 2, 3, 7
  assert (p['interval_repeat'], p['interval_step'], p['interval_third'],
          p['interval_leap']) == (0.25, 0.25, 0.25, 0.25)
  assert p['abs_interval_mean'] == 3.0


def test_range_and_distinct_over_songs():
  p = diagnose.pitch([_melody([60, 64, 60]), _melody([50, 70, 55, 60])])
  assert p['range_mean'] == 12 and p['range_std'] == 8
  assert p['distinct_mean'] == 3 and p['distinct_std'] == 1


# ---- phrase ends ----------------------------------------------------------------------------
# (onset, duration, syllable); phrase-final syllables 1, 3, 5, 6 (phrases 0 0 1 1 2 2 3).
PHRASE_NOTES = [(0, 480, 0), (480, 240, 1), (960, 480, 2), (1440, 480, 2), (1920, 960, 3),
                (2880, 120, 4), (3360, 240, 5), (3600, 240, 6)]
PHRASE_SONG = _song([n[0] for n in PHRASE_NOTES], [n[1] for n in PHRASE_NOTES],
                    note_syllable=[n[2] for n in PHRASE_NOTES], phrases=[0, 0, 1, 1, 2, 2, 3])
PHRASE_FLAGS = _flags(final=[False, True, False, True, False, True, True])


def test_phrase_end_conditions_counted_separately():
  # Finals' last notes: n1 rest 240 (rest), n4 960 ticks (long), n6 neither, n7 the song's end.
  f = diagnose.phrase([PHRASE_SONG], [PHRASE_FLAGS])
  assert f['final_rest'] == 0.5 and f['final_long'] == 0.25 and f['final_either'] == 0.75
  assert f['pea_song_mean'] == 0.75
  # Other syllables' last notes: n0 (rest 0), n3 (rest 0), n5 (rest 360).
  assert f['rest_after_other'] == pytest.approx(1 / 3)
  assert f['final_note_duration_mean'] == pytest.approx((240 + 960 + 240 + 240) / 4)
  assert f['other_note_duration_mean'] == pytest.approx((480 + 480 + 480 + 120) / 4)


def test_the_song_end_is_no_rest_after_a_non_final_syllable():
  # Flags with no final syllable: syllable 0 is followed by no rest, syllable 1 ends the song.
  song = _song([0, 480], [480, 480])
  f = diagnose.phrase([song], [_flags(final=[False, False])])
  assert f['rest_after_other'] == 0.0
  assert math.isnan(f['final_rest']) and math.isnan(f['pea_song_mean'])


def test_phrase_ends_agree_with_the_pea_metric():
  final = lyric.phrase_final(PHRASE_SONG)
  np.testing.assert_array_equal(final, PHRASE_FLAGS.final)
  assert lyric.phrase_endings(PHRASE_SONG, final) == 0.75
  rng = np.random.default_rng(0)
  songs = [random_song(rng, 10, name=f's{i}') for i in range(4)]
  flags = [_flags(final=[bool(x) for x in rng.random(10) < 0.4]) for _ in songs]
  expected = np.nanmean([lyric.phrase_endings(s, f.final) if f.final.any() else np.nan
                         for s, f in zip(songs, flags)])
  assert diagnose.phrase(songs, flags)['pea_song_mean'] == pytest.approx(expected)


# ---- stress ---------------------------------------------------------------------------------
# Onsets on beat 1, 2, 3, 4 of bar 0, then an eighth off beat 1 of bar 1, then beat 2 of bar 1.
BEATS = _song([0, 480, 960, 1440, 2160, 2400], [240] * 6, pitches=[60, 62, 67, 64, 65, 60])
BEAT_FLAGS = _flags(primary=[True, False, True, False, True, False],
                    unstressed=[False, True, False, True, False, False])


def test_stressed_syllables_by_beat():
  s = diagnose.stress([BEATS], [BEAT_FLAGS])
  assert (s['primary_beat1'], s['primary_beat3'], s['primary_other_beat'],
          s['primary_offbeat']) == pytest.approx((1 / 3, 1 / 3, 0, 1 / 3))
  assert (s['unstressed_beat1'], s['unstressed_beat3'], s['unstressed_other_beat'],
          s['unstressed_offbeat']) == (0, 0, 1, 0)


def test_stressed_syllables_on_peaks():
  # Peaks: note 2 (67) and note 4 (65); primary syllables 0, 2, 4; unstressed 1, 3.
  s = diagnose.stress([BEATS], [BEAT_FLAGS])
  assert s['primary_peak'] == pytest.approx(2 / 3) and s['unstressed_peak'] == 0.0


def test_beat_three_only_in_four_four():
  song = _song([0, 480, 960], [480] * 3, ts=((0, 3, 4),))
  s = diagnose.stress([song], [_flags(primary=[True, True, True])])
  assert s['primary_beat1'] == pytest.approx(1 / 3) and s['primary_beat3'] == 0.0
  assert s['primary_other_beat'] == pytest.approx(2 / 3)


def test_stress_agrees_with_sba_and_spa():
  rng = np.random.default_rng(1)
  for i in range(5):
    song = random_song(rng, 12, name=f's{i}')
    primary = rng.random(12) < 0.5
    primary[0] = True
    s = diagnose.stress([song], [_flags(primary=list(primary))])
    assert s['primary_beat1'] + s['primary_beat3'] == pytest.approx(
        lyric.stress_on_strong_beats(song, primary))
    assert s['primary_peak'] == pytest.approx(
        lyric.stress_on_peaks(song, primary, lyric.melodic_peaks(song)))


def test_syllable_flags_from_stress_patterns_and_phrases():
  song = _song([0, 480, 960, 1440, 1920], [480] * 5, phrases=[0, 0, 1, 1, 1],
               stress=['1', '0', '2', '?', '10'])
  f = diagnose.syllable_flags(song)
  np.testing.assert_array_equal(f.primary, [1, 0, 0, 0, 1])
  np.testing.assert_array_equal(f.unstressed, [0, 1, 0, 0, 0])
  np.testing.assert_array_equal(f.final, [0, 1, 0, 0, 1])


def test_flags_must_match_the_syllables():
  with pytest.raises(ValueError, match='syllables'):
    diagnose.stress([BEATS], [_flags(primary=[True])])


# ---- position in song ----------------------------------------------------------------------
def test_thirds_by_note_index():
  # Thirds of 6 notes: (0, 1), (2, 3), (4, 5); only note 5 follows a rest.
  song = _song([0, 480, 960, 1200, 1440, 1800], [480, 480, 240, 240, 120, 120])
  p = diagnose.position([song])
  assert (p['legato_third_1'], p['legato_third_2'], p['legato_third_3']) == (1.0, 1.0, 0.5)
  assert (p['duration_third_1'], p['duration_third_2'], p['duration_third_3']) == (480, 240, 120)


def test_spread_is_the_distance_between_songs_features():
  # mean IOIs 480, 240 and 480 ticks; pitch classes all C except one song all D
  a = _song([0, 480, 960], [480] * 3)
  b = _song([0, 240, 480], [240] * 3)
  c = _song([0, 480, 960], [480] * 3, pitches=[62] * 3)
  got = diagnose.spread([a, b, c])
  assert got['ioi_distance_mean'] == pytest.approx((240 + 0 + 240) / 3)
  assert got['ioi_distance_median'] == pytest.approx(240)
  # PCH: a and b identical (all C), c all D: distances 0, sqrt(2), sqrt(2)
  assert got['pch_distance_mean'] == pytest.approx(2 * np.sqrt(2) / 3)
  # DD: a and c all quarters, b all eighths: distances sqrt(2), 0, sqrt(2)
  assert got['dd_distance_median'] == pytest.approx(np.sqrt(2))
  assert np.isnan(diagnose.spread([a])['ioi_distance_mean'])  # no pair
  assert diagnose.unit_of('spread.ioi_distance_mean') == 'ticks'
  assert diagnose.unit_of('spread.pch_distance_mean') == 'distance'


# ---- the whole set, and pairing ------------------------------------------------------------
def test_figures_keys_and_units():
  f = diagnose.figures([RESTS], [_flags(final=[False] * 6 + [True])])
  groups = {k.split('.')[0] for k in f}
  assert groups == {g for g, _ in diagnose.GROUPS} | {'count'}
  assert f['count.notes'] == 7 and f['count.songs'] == 1
  assert diagnose.unit_of('timing.ioi_song_mean') == 'ticks'
  assert diagnose.unit_of('position.duration_third_1') == 'ticks'
  assert diagnose.unit_of('durations.share_480') == 'fraction'
  assert diagnose.unit_of('durations.entropy_bits_mean') == 'bits'
  assert diagnose.unit_of('pitch.range_mean') == 'semitones'


def test_diagnose_pairs_by_name_and_uses_the_reference_flags():
  stress = ['1', '0', '0', '0']
  ref = _song([0, 480, 960, 1440], [480] * 4, stress=stress, name='a')
  # Same syllables, other stress patterns: the reference's must be used (syllable 0 primary).
  gen_legato = _song([0, 480, 960, 1440], [480] * 4, stress=['0', '1', '1', '1'], name='a')
  gen_rests = _song([240, 960, 1440, 1920], [240] * 4, stress=['0', '1', '1', '1'], name='a')
  other = _song([0, 480], [480] * 2, name='zzz')
  r = diagnose.diagnose({'a': ref, 'b': other},
                        [('sample_0', {'a': gen_legato, 'x': other}),
                         ('sample_1', {'a': gen_rests})])
  assert r['num_pairs'] == 2 and r['num_sample_sets'] == 2 and r['misaligned'] == 0
  assert r['reference']['count.songs'] == 1  # 'b' has no generated song
  assert r['reference']['timing.legato'] == 1.0
  # Pooled: 3 of 3 legato, then rests 480, 240, 240 -> 3 of 6; per set 1.0 and 0.0.
  assert r['generated']['timing.legato'] == 0.5
  assert r['generated_std']['timing.legato'] == pytest.approx(0.5 ** 0.5)  # sample std of 1, 0
  assert r['difference']['timing.legato'] == -0.5
  # Only syllable 0 is primary (the reference's flags): on beat 1 in sample_0, off beat in 1.
  assert r['generated']['stress.primary_beat1'] == 0.5
  assert r['generated']['stress.primary_offbeat'] == 0.5
  assert r['duration_values'] == [480, 240]


def test_diagnose_needs_a_pair():
  song = _song([0], [480], name='a')
  with pytest.raises(ValueError, match='no generated song'):
    diagnose.diagnose({'a': song}, [('sample_0', {'b': song})])


def test_the_generated_spread_is_measured_inside_each_sample_set():
  # Two sets, each of two songs 240 ticks apart in mean IOI; pooled, the four songs would also
  # pair a song with its twin (distance 0).
  a = _song([0, 480, 960], [480] * 3, name='a')
  b = _song([0, 240, 480], [240] * 3, name='b')
  r = diagnose.diagnose({'a': a, 'b': b}, [('sample_0', {'a': a, 'b': b}),
                                           ('sample_1', {'a': a, 'b': b})])
  assert r['reference']['spread.ioi_distance_mean'] == pytest.approx(240)
  assert r['generated']['spread.ioi_distance_mean'] == pytest.approx(240)
  assert r['generated_std']['spread.ioi_distance_mean'] == 0
