import numpy as np
import pytest

from songglm_jax.music import skeleton as sk
from tests.songs import make_song

N, D, L, S, DL, LS = (sk.NORMAL, sk.DOWNBEAT, sk.LONG, sk.SYNCOPATED, sk.DOWNBEAT_LONG,
                      sk.LONG_SYNCOPATED)


def _song(onsets, durations, time_signatures=((0, 4, 4),), pitches=None):
  n = len(onsets)
  return make_song(pitches or [60] * n, onsets, durations, np.arange(n),
                   [f's{i}' for i in range(n)], time_signatures=time_signatures)


def test_peaks_rise_then_not_lower():
  # 62 rises and the next is lower -> peak; 64 rises and the next is equal -> peak (>=)
  assert sk.melodic_peaks(np.array([60, 62, 60, 64, 64, 60])).tolist() == [
      False, True, False, True, False, False]


def test_plateau_peaks_at_its_first_note_only():
  assert sk.melodic_peaks(np.array([60, 62, 62, 60])).tolist() == [False, True, False, False]


def test_first_and_last_notes_are_never_peaks():
  assert sk.melodic_peaks(np.array([72, 60, 72])).tolist() == [False, False, False]
  assert sk.melodic_peaks(np.array([60])).tolist() == [False]
  assert sk.melodic_peaks(np.array([60, 72])).tolist() == [False, False]


def test_falling_line_has_no_peak():
  assert not sk.melodic_peaks(np.array([67, 65, 64, 62, 60])).any()


def test_rhythm_classes_in_four_four():
  # eighth on 1 | quarter from the "and" of 1 across beat 2 | eighths that end on beats |
  # quarter on 4 | half on the next downbeat between quarters | quarter
  on = [0, 240, 720, 960, 1200, 1440, 1920, 2880]
  du = [240, 480, 240, 240, 240, 480, 960, 480]
  assert sk.rhythm_classes(_song(on, du)).tolist() == [D, LS, N, N, N, N, DL, N]


def test_rhythm_classes_in_three_four():
  # bars start at 0, 1440, 2880: the note at 2880 is a downbeat in 3/4 (it is beat 3 in 4/4)
  on = [0, 480, 960, 1440, 2400, 2880, 3360]
  du = [480, 480, 480, 960, 480, 480, 480]
  assert sk.rhythm_classes(_song(on, du, ((0, 3, 4),))).tolist() == [D, N, N, DL, N, D, N]
  assert sk.rhythm_classes(_song(on, du)).tolist() == [D, N, N, L, N, N, N]


def test_time_signature_change_starts_new_bars():
  # 4/4 bar [0, 1920), then 3/4 bars at 1920, 3360: the note at 3360 is a downbeat
  on = [0, 1920, 2400, 2880, 3360]
  du = [480] * 5
  got = sk.rhythm_classes(_song(on, du, ((0, 4, 4), (1920, 3, 4))))
  assert got.tolist() == [D, D, N, N, D]


def test_syncopation_needs_offbeat_onset_held_across_the_next_beat():
  # 16th-position note held past beat 2: syncopated; an offbeat eighth ending on the beat: not
  on = [0, 360, 720, 1200, 1440]
  du = [360, 360, 480, 240, 480]
  cls = sk.rhythm_classes(_song(on, du))
  assert cls[1] == S  # 360 -> 720 crosses 480
  assert cls[3] == N  # 1200 -> 1440 ends exactly on beat 4


def test_compound_meter_counts_dotted_quarter_beats():
  # 6/8: beats at 0 and 720. The eighth at 240 held to 960 crosses beat 720: syncopated.
  on, du = [0, 240, 960], [240, 720, 480]
  assert sk.beat_lengths(np.array([[0, 6, 8]])).tolist() == [720]
  assert sk.rhythm_classes(_song(on, du, ((0, 6, 8),))).tolist() == [D, S, N]
  # in 3/8 (simple) the beat is an eighth: 240 is on the beat, so never syncopated
  assert sk.rhythm_classes(_song(on, du, ((0, 3, 8),))).tolist() == [D, N, N]


def test_articulation_gaps_count_as_length_but_rests_do_not():
  # quarter sung short (450 of 480) among eighths sung short: still long (length to next onset)
  on = [0, 240, 720, 960]
  du = [210, 450, 210, 210]
  assert sk.rhythm_classes(_song(on, du))[1] == LS
  # the same note followed by an eighth rest keeps its sounding length: not long, not syncopated
  on = [0, 240, 960, 1200]
  du = [240, 200, 240, 240]
  assert sk.rhythm_classes(_song(on, du))[1] == N


def test_long_needs_twice_each_neighbour():
  assert sk.long_notes(np.array([240, 480, 240])).tolist() == [False, True, False]
  assert sk.long_notes(np.array([240, 470, 240])).tolist() == [False, False, False]
  assert sk.long_notes(np.array([960, 480, 240])).tolist() == [True, False, False]
  assert sk.long_notes(np.array([480])).tolist() == [False]


def test_note_features_by_kind():
  song = _song([0, 480, 960], [480] * 3, pitches=[60, 64, 62])
  assert sk.note_features(song, 'smr').tolist() == [0, 1, 0]
  assert sk.note_features(song, 'srr').dtype == np.int8
  with pytest.raises(ValueError, match='kind'):
    sk.note_features(song, 'pitch')
