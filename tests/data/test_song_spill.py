"""data/song_spill.py: songs go to a temporary file and come back exactly, in order."""

import dataclasses

import numpy as np
import pytest

from songglm_jax.data import song_spill
from tests.songs import scale_song


def _same(a, b):
  for f in dataclasses.fields(a):
    x, y = getattr(a, f.name), getattr(b, f.name)
    if isinstance(x, np.ndarray):
      assert x.dtype == y.dtype and np.array_equal(x, y), f.name
    else:
      assert type(x) is type(y) and x == y, f.name


def test_a_song_comes_back_field_for_field():
  song = scale_song(7, punctuation_every=2, name='sü').replace(
      syllable_stress=('1', '0', '?', '10', '', '1', '0'), tempo=97.123456789)
  back, extra = song_spill.decode_song(song_spill.encode_song(song, {'split': 'valid'}))
  _same(song, back)
  assert extra == {'split': 'valid'}
  back, extra = song_spill.decode_song(song_spill.encode_song(scale_song(3)))
  _same(scale_song(3), back)  # no stress: None stays None
  assert back.syllable_stress is None and extra == {}


def test_spill_gives_the_songs_back_in_order_and_leaves_no_file(tmp_path):
  songs = [scale_song(3 + i, name=f's{i}') for i in range(5)]
  with song_spill.SongSpill(tmp_path) as spill:
    for i, s in enumerate(songs):
      spill.add(s, {'i': i})
    assert spill.count == 5
    assert list(tmp_path.iterdir()) == []  # unlinked at once: a killed process leaves nothing
    back = list(spill)
    assert [s.name for s, _ in spill] == [s.name for s in songs]  # a second pass reads again
    with pytest.raises(ValueError, match='cannot add'):
      spill.add(songs[0])
  assert [e['i'] for _, e in back] == list(range(5))
  for a, (b, _) in zip(songs, back):
    _same(a, b)
  assert list(tmp_path.iterdir()) == []
