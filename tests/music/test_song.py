import numpy as np
import pytest

from songglm_jax.music import meter
from songglm_jax.music.song import Song, clean_lyric
from tests.songs import make_song, scale_song


def test_valid_song_properties():
  s = make_song([60, 62, 64], [0, 480, 960], [480, 480, 960], [0, 0, 1], ['he', 'llo'], [0, 0])
  assert s.num_notes == 3 and s.num_syllables == 2 and s.num_phrases == 1
  assert s.notes_per_syllable.tolist() == [2, 1]
  assert s.syllable_onset.tolist() == [0, 960]
  assert not s.pitch.flags.writeable


@pytest.mark.parametrize('change, message', [
    (dict(note_syllable=[0, 2, 2]), 'step by 0 or 1'),
    (dict(note_syllable=[0, 0, 0]), 'every syllable needs at least one note'),
    (dict(onset=[0, 0, 960]), 'strictly increasing'),
    (dict(pitch=[60, 200, 64]), 'pitch'),
    (dict(syllable_phrase=[1, 1]), 'syllable_phrase: must start at 0'),
    (dict(time_signatures=[[0, 3, 5]]), 'powers of two'),
    (dict(tempo=0.0), 'tempo'),
])
def test_invalid_song_raises_value_error_naming_the_field(change, message):
  base = dict(pitch=[60, 62, 64], onset=[0, 480, 960], offset=[480, 960, 1920],
              velocity=[90] * 3, note_syllable=[0, 0, 1], syllables=('he', 'llo'),
              syllable_phrase=[0, 0])
  base.update(change)
  if 'onset' in change:
    base['offset'] = np.array(change['onset']) + 480
  with pytest.raises(ValueError, match=message):
    Song(**base)


def test_window_shifts_to_bar_and_restarts_ids():
  s = scale_song(12, [1] * 12, punctuation_every=4)
  s = s.replace(syllable_phrase=np.repeat(np.arange(3), 4))
  w = s.window(5, 9)  # notes at quarters 5..8: bar 1 starts at 1920
  assert w.onset.tolist() == [480, 960, 1440, 1920]
  assert w.note_syllable.tolist() == [0, 1, 2, 3]
  assert w.syllable_phrase.tolist() == [0, 0, 0, 1]
  assert w.syllables == s.syllables[5:9]


def test_meter_bar_and_position_with_time_signature_change():
  ts = np.array([[0, 4, 4], [3840, 3, 4], [3840 + 1440 * 2, 6, 8]])
  ticks = np.array([0, 1920, 3840, 3840 + 1440, 3840 + 2880, 3840 + 2880 + 1440 + 10])
  bars, pos = meter.bar_and_position(ticks, ts)
  assert bars.tolist() == [0, 1, 2, 3, 4, 5]
  assert pos.tolist() == [0, 0, 0, 0, 0, 10]
  assert meter.bar_start(bars, ts).tolist() == (ticks - pos).tolist()


def test_clean_lyric_removes_control_characters_and_keeps_letters():
  assert clean_lyric(' Grü\x00ße\t\n ') == 'Grüße'
  assert clean_lyric('\x01\x02') == ''
