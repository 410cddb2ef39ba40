"""Lyric-melody priors of decoding (sampling.position_prior, GenerateOptions.priors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from songglm_jax.inference import generation, generation_rules
from songglm_jax.data import tokenizer as tk
from songglm_jax.model import decode as decode_lib
from songglm_jax.model import sampling
from tests.model import test_decode as td

NS = tk.NUM_SPECIAL


def _grids():
  tok = td.tiny()[0]
  return tok, sampling.make_grids(tok.position_grid, tok.duration_grid)


def _rows(bar_ticks, beat=None, rest=None):
  b = len(bar_ticks)
  col = lambda v: jnp.asarray(np.asarray(v, np.int32))
  f = lambda v: None if v is None else jnp.asarray(np.asarray(v, np.float32))
  return sampling.Rows(col([3] * b), col(np.zeros((b, 3))), col(bar_ticks), col([36] * b),
                       col([96] * b), col([8] * b), col([2] * b), beat_bias=f(beat),
                       strong_mid=jnp.asarray([t == 1920 for t in bar_ticks]),  # 4/4 bars
                       rest_bias=f(rest))


def test_position_prior_marks_strong_beats_and_rests_of_a_syllables_first_note():
  tok, grids = _grids()
  v = tok.field_sizes['position']
  g = np.asarray(grids.position)
  rows = _rows([1920, 1920, 1440], beat=[[2.0, -3.0, 0.0]] * 3, rest=[[0.0, 5.0, 0.0]] * 3)
  # row 0: first note of syllable 1 (previous note on syllable 0, ending at tick 300 of bar 0)
  # row 1: a second note of syllable 1 (no prior); row 2: a 3/4 bar, syllable 1 starts
  st = sampling.State(word=jnp.asarray([0, 1, 0]), count=jnp.ones(3, jnp.int32),
                      end=jnp.asarray([300, 300, 300]), num_notes=jnp.ones(3, jnp.int32),
                      done=jnp.zeros(3, bool), stopped=jnp.zeros(3, bool))
  word = jnp.asarray([1, 1, 1]) + NS
  bar = jnp.asarray([0, 0, 0]) + NS
  got = np.asarray(sampling.position_prior(st, rows, grids, word, bar, v))
  assert got.shape == (3, v) and not got[:, :NS].any()
  strong4 = (g == 0) | (g == 960)
  rest = g >= 300 + 240
  np.testing.assert_allclose(got[0, NS:], -3.0 * strong4 + 5.0 * rest)
  assert not got[1].any()
  np.testing.assert_allclose(got[2, NS:], -3.0 * (g == 0) + 5.0 * rest)  # 3/4: beat 1 only
  # the first note of a song: no rest prior (nothing before it)
  first = st._replace(word=jnp.asarray([-1, -1, -1]), end=jnp.zeros(3, jnp.int32))
  got = np.asarray(sampling.position_prior(first, rows, grids, word - 1, bar, v))
  np.testing.assert_allclose(got[0, NS:], 2.0 * strong4)
  assert sampling.position_prior(st, _rows([1920]), grids, word[:1], bar[:1], v) is None


def test_duration_prior_favours_ending_on_a_strong_beat_before_a_stressed_syllable():
  tok, grids = _grids()
  v = tok.field_sizes['duration']
  g = np.asarray(grids.duration)
  rows = _rows([1920, 1920, 1920])._replace(
      duration_bias=jnp.asarray(np.array([[0.0, 2.0, -1.0]] * 3, np.float32)))
  word = jnp.asarray([0, 1, 2]) + NS  # next syllable stressed / unstressed / none (S = 3)
  onset = jnp.asarray([480, 480, 480])
  got = np.asarray(sampling.duration_prior(rows, grids, word, onset, v))
  assert got.shape == (3, v) and not got[:, :NS].any()
  end = 480 + g
  strong4 = (end % 1920 == 0) | (end % 1920 == 960)
  np.testing.assert_allclose(got[0, NS:], 2.0 * strong4)  # before syllable 1 (stressed)
  np.testing.assert_allclose(got[1, NS:], -1.0 * strong4)  # before syllable 2 (unstressed)
  assert not got[2].any()  # the last syllable: nothing after it
  assert sampling.duration_prior(_rows([1920]), grids, word[:1], onset[:1], v) is None


def test_final_long_prior_favours_quarter_notes_and_longer_on_its_syllables():
  tok, grids = _grids()
  v = tok.field_sizes['duration']
  g = np.asarray(grids.duration)
  long = np.array([[0.0, 2.5, 0.0]] * 2, np.float32)
  rows = _rows([1920, 1440])._replace(long_bias=jnp.asarray(long))
  word = jnp.asarray([1, 2]) + NS  # a note of the phrase-final syllable 1; of syllable 2
  got = np.asarray(sampling.duration_prior(rows, grids, word, jnp.asarray([0, 0]), v))
  assert got.shape == (2, v) and not got[:, :NS].any()
  assert (g >= 480).any() and (g < 480).any()
  np.testing.assert_allclose(got[0, NS:], 2.5 * (g >= sampling.LONG_TICKS))
  assert not got[1].any()
  # with the stress duration prior: the two add up
  both = rows._replace(duration_bias=jnp.asarray(np.array([[0.0, 0.0, 1.0]] * 2, np.float32)))
  got = np.asarray(sampling.duration_prior(both, grids, word, jnp.asarray([480, 480]), v))
  end = 480 + g
  strong4 = (end % 1920 == 0) | (end % 1920 == 960)
  np.testing.assert_allclose(got[0, NS:], 2.5 * (g >= 480) + 1.0 * strong4)


def test_legato_prior_marks_the_bar_and_position_of_the_previous_end_inside_phrases():
  tok, grids = _grids()
  vb, vp = tok.field_sizes['bar'], tok.field_sizes['position']
  g = np.asarray(grids.position)
  # syllables 0, 1 in phrase 0, syllable 2 starts phrase 1; bars of 1920 ticks
  rows = _rows([1920] * 5)._replace(
      syllable_phrase=jnp.asarray(np.array([[0, 0, 1]] * 5, np.int32)),
      legato_bias=jnp.asarray(np.array([[1.0, 2.0, 3.0]] * 5, np.float32)))
  # row 0: first note of syllable 1 (same phrase), previous end 2100 (bar 1, tick 180)
  # row 1: second note of syllable 2 (a melisma: legato applies inside the phrase's first syllable)
  # row 2: first note of syllable 2 (starts a phrase: no legato prior)
  # row 3: the song's first note; row 4: previous end exactly at a barline (3840 = bar 2, tick 0)
  st = sampling.State(word=jnp.asarray([0, 2, 1, -1, 0]), count=jnp.ones(5, jnp.int32),
                      end=jnp.asarray([2100, 2100, 2100, 0, 3840]),
                      num_notes=jnp.ones(5, jnp.int32), done=jnp.zeros(5, bool),
                      stopped=jnp.zeros(5, bool))
  word = jnp.asarray([1, 2, 2, 0, 1]) + NS
  np.testing.assert_allclose(np.asarray(sampling.legato_weight(st, rows, word)),
                             [2.0, 3.0, 0.0, 0.0, 2.0])
  got = np.asarray(sampling.bar_prior(st, rows, word, vb))
  assert got.shape == (5, vb) and not got[:, :NS].any()
  want = np.zeros((5, vb - NS))
  want[0, 1], want[1, 1], want[4, 2] = 2.0, 3.0, 2.0
  np.testing.assert_allclose(got[:, NS:], want)
  bar = jnp.asarray([1, 1, 1, 0, 2]) + NS
  got = np.asarray(sampling.position_prior(st, rows, grids, word, bar, vp))
  assert got.shape == (5, vp) and not got[:, :NS].any()
  np.testing.assert_allclose(got[0, NS:], 2.0 * (g == 180))
  np.testing.assert_allclose(got[1, NS:], 3.0 * (g == 180))
  assert not got[2].any() and not got[3].any()
  np.testing.assert_allclose(got[4, NS:], 2.0 * (g == 0))
  # with the rest prior: the two add up, the rest prior on syllable starts only
  both = rows._replace(rest_bias=jnp.asarray(np.array([[0.0, 0.5, 4.0]] * 5, np.float32)))
  got = np.asarray(sampling.position_prior(st, both, grids, word, bar, vp))
  rest = (1920 + g) - 2100 >= sampling.REST_TICKS
  np.testing.assert_allclose(got[0, NS:], 2.0 * (g == 180) + 0.5 * rest)
  np.testing.assert_allclose(got[2, NS:], 4.0 * rest)
  assert sampling.bar_prior(st, _rows([1920] * 5), word, vb) is None


def test_duration_offsets_are_added_to_every_note():
  tok, grids = _grids()
  v = tok.field_sizes['duration']
  g = np.asarray(grids.duration)
  vec = generation.GenerateOptions(duration_offsets='240:0.5, 480:-1.25').duration_offset_vector(
      tok.duration_grid)
  assert vec.shape == (len(g),) and vec[g == 240] == 0.5 and vec[g == 480] == -1.25
  assert np.count_nonzero(vec) == 2
  text = '480:-1.25,240:0.5,960:0.125'
  assert generation_rules.parse_offsets(text) == {480: -1.25, 240: 0.5, 960: 0.125}
  assert generation_rules.format_offsets(generation_rules.parse_offsets(text)) == '240:0.5,480:-1.25,960:0.125'
  assert generation_rules.format_offsets({}) == ''
  rows = _rows([1920, 1440])._replace(duration_offset=jnp.asarray(np.stack([vec, vec])))
  got = np.asarray(sampling.duration_prior(rows, grids, jnp.asarray([0, 2]) + NS,
                                           jnp.asarray([0, 480]), v))
  assert got.shape == (2, v) and not got[:, :NS].any()
  np.testing.assert_allclose(got[:, NS:], np.stack([vec, vec]))
  # with the final-long prior: the two add up
  both = rows._replace(long_bias=jnp.asarray(np.array([[2.0, 0.0, 0.0]] * 2, np.float32)))
  got = np.asarray(sampling.duration_prior(both, grids, jnp.asarray([0, 1]) + NS,
                                           jnp.asarray([0, 0]), v))
  np.testing.assert_allclose(got[0, NS:], vec + 2.0 * (g >= sampling.LONG_TICKS))
  np.testing.assert_allclose(got[1, NS:], vec)
  extra = generation.prior_rows(generation.GenerateOptions(duration_offsets='240:0.5'),
                                [(('1',), np.array([0]), (4, 4))] * 3, 2, tok.duration_grid)
  assert sorted(extra) == ['duration_offset'] and extra['duration_offset'].shape == (3, len(g))
  assert generation.prior_rows(generation.GenerateOptions(), [(('1',), np.array([0]), (4, 4))],
                               2, tok.duration_grid) == {}


@pytest.mark.parametrize('text', ['240', '240:x', '0:1', '240:1,240:2', '240:inf', 'a:b:c'])
def test_bad_duration_offsets_are_one_clear_error(text):
  with pytest.raises(ValueError, match='generate.duration_offsets'):
    generation.GenerateOptions(duration_offsets=text).validate()


def test_duration_offsets_off_the_grid_are_refused():
  tok, _ = _grids()
  with pytest.raises(ValueError, match='not a duration of the tokenizer grid'):
    generation.GenerateOptions(duration_offsets='250:1').duration_offset_vector(tok.duration_grid)
  assert generation.GenerateOptions().duration_offset_vector(tok.duration_grid) is None


def test_options_turn_stress_and_phrases_into_per_syllable_priors():
  o = generation.GenerateOptions(stress_beat_bias=1.5, phrase_rest_bias=2.0)
  beat, rest = o.priors(('1', '0', '2', '?', '10', '01'), np.array([0, 0, 0, 1, 1, 2]))
  assert beat.tolist() == [1.5, -1.5, 0.0, 0.0, 1.5, 1.5]
  assert rest.tolist() == [0.0, 0.0, 0.0, 2.0, 0.0, 2.0]
  assert generation.GenerateOptions().priors(('1',), np.array([0])) == (None, None)
  dur = generation.GenerateOptions(stress_duration_bias=2.0).duration_priors(('1', '0', '?'))
  assert dur.tolist() == [2.0, -2.0, 0.0]
  final = generation.GenerateOptions(phrase_final_long_bias=1.5).long_priors(
      np.array([0, 0, 1, 1, 1, 2]))
  assert final.tolist() == [0.0, 1.5, 0.0, 0.0, 1.5, 0.0]  # not the song's last syllable
  assert generation.GenerateOptions().long_priors(np.array([0, 1])) is None
  extra = generation.prior_rows(generation.GenerateOptions(phrase_final_long_bias=1.5),
                                [(('1', '0'), np.array([0, 1]), (4, 4))], 4)
  assert sorted(extra) == ['long_bias'] and extra['long_bias'].tolist() == [[1.5, 0, 0, 0]]
  assert generation.GenerateOptions(legato_bias=0.5).legato_priors(3).tolist() == [0.5] * 3
  assert generation.GenerateOptions().legato_priors(3) is None
  extra = generation.prior_rows(generation.GenerateOptions(legato_bias=0.5),
                                [(('1', '0'), np.array([0, 1]), (4, 4))], 4)
  assert sorted(extra) == ['legato_bias'] and extra['legato_bias'].tolist() == [[0.5, 0.5, 0, 0]]
  with pytest.raises(ValueError, match='legato_bias'):
    generation.GenerateOptions(legato_bias=float('nan')).validate()
  with pytest.raises(ValueError, match='phrase_final_long_bias'):
    generation.GenerateOptions(phrase_final_long_bias=float('inf')).validate()
  with pytest.raises(ValueError, match='stress_beat_bias'):
    generation.GenerateOptions(stress_beat_bias=float('nan')).validate()


def _decoded_with(beat, rest, seed=4, duration=0.0, final_long=0.0, legato=0.0, offsets=''):
  """Decode TEXTS with the untrained tiny model, with priors of the given strength."""
  tok, graphdef, params = td.tiny()
  lyrics = (td._lyrics() * td.ROWS)[:td.ROWS]
  rows_l = [generation.lyric_rows(x, tok) for x in lyrics]
  prompts = decode_lib.build_prompts(rows_l, td.LENGTH)
  o = generation.GenerateOptions(stress_beat_bias=beat, phrase_rest_bias=rest,
                                 stress_duration_bias=duration,
                                 phrase_final_long_bias=final_long, legato_bias=legato,
                                 duration_offsets=offsets)
  s_max = td.LENGTH - 4
  extra = generation.prior_rows(o, [(x.syllable_stress, x.syllable_phrase, x.time_signature)
                                    for x in lyrics], s_max, tok.duration_grid)
  rows = td._rows(lyrics)._replace(**extra)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(td.ROWS))
  out = jax.device_get(decode_lib.decode(
      graphdef, params, prompts, rows, sampling.make_grids(tok.position_grid, tok.duration_grid),
      generation.GenerateOptions().settings(), keys, max_notes=td.MAX_NOTES))
  songs = []
  for b, lyr in enumerate(lyrics):
    assert generation.invalid_reason(out.notes[b], int(out.num_notes[b]), bool(out.stopped[b]),
                                     lyr.num_syllables, lyr.bar_ticks, tok, (36, 96)) is None
    songs.append((lyr, generation.notes_to_song(lyr, rows_l[b], td._notes(out, b), tok)))
  return songs


def _rates(songs):
  """(stressed first notes on strong beats, unstressed ones there, phrase starts after a rest)."""
  from songglm_jax.metrics import lyric
  on = {True: [], False: []}
  rests = []
  for lyr, song in songs:
    strong = lyric.strong_beat_notes(song)[song.syllable_first_note]
    primary = np.array(['1' in p for p in lyr.syllable_stress])
    unstressed = np.array([set(p) <= {'0'} for p in lyr.syllable_stress])
    on[True] += strong[primary].tolist()
    on[False] += strong[unstressed].tolist()
    first = song.syllable_first_note
    starts = np.flatnonzero(np.diff(lyr.syllable_phrase) != 0) + 1
    gap = song.onset[first[starts]] - song.offset[first[starts] - 1]
    rests += (gap >= sampling.REST_TICKS).tolist()
  return np.mean(on[True]), np.mean(on[False]), np.mean(rests)


def test_priors_move_stressed_syllables_to_strong_beats_and_rests_before_phrases():
  off = _rates(_decoded_with(0.0, 0.0))
  on = _rates(_decoded_with(4.0, 4.0))
  assert on[0] > off[0] + 0.2, (off, on)
  assert on[1] < off[1], (off, on)
  assert on[2] > off[2] + 0.1, (off, on)


def _ends_on_strong_before(songs):
  """Share of syllables' last notes that end on a strong beat, before a stressed syllable and
  before an unstressed one."""
  out = {True: [], False: []}
  for lyr, song in songs:
    big_l = lyr.bar_ticks
    last = np.append(song.syllable_first_note[1:] - 1, song.num_notes - 1)[:-1]
    at = song.offset[last] % big_l
    strong = (at == 0) | ((tuple(lyr.time_signature) == (4, 4)) & (2 * at == big_l))
    nxt = lyr.syllable_stress[1:]
    for s, p in zip(strong, nxt):
      if '1' in p or set(p) <= {'0'}:
        out['1' in p].append(bool(s))
  return np.mean(out[True]), np.mean(out[False])


def test_duration_prior_ends_notes_on_strong_beats_before_stressed_syllables():
  off = _ends_on_strong_before(_decoded_with(0.0, 0.0))
  on = _ends_on_strong_before(_decoded_with(0.0, 0.0, duration=4.0))
  assert on[0] > off[0] + 0.2 and on[1] <= off[1], (off, on)



def _final_notes_long(songs):
  """Share of phrase-final syllables (not the song's last) whose last note lasts a quarter or
  more."""
  out = []
  for lyr, song in songs:
    last = np.append(song.syllable_first_note[1:] - 1, song.num_notes - 1)
    final = np.flatnonzero(np.diff(lyr.syllable_phrase) != 0)
    out += (song.duration[last[final]] >= sampling.LONG_TICKS).tolist()
  return np.mean(out)


def test_final_long_prior_lengthens_the_last_notes_of_phrases():
  off = _final_notes_long(_decoded_with(0.0, 0.0))
  on = _final_notes_long(_decoded_with(0.0, 0.0, final_long=4.0))
  assert on > off + 0.2, (off, on)


def _legato_inside_phrases(songs):
  """Share of notes, other than a song's or a phrase's first, that start where the previous
  note ends."""
  out = []
  for lyr, song in songs:
    first = song.syllable_first_note
    starts = first[np.flatnonzero(np.diff(lyr.syllable_phrase) != 0) + 1]
    inside = np.setdiff1d(np.arange(1, song.num_notes), starts)
    out += (song.onset[inside] == song.offset[inside - 1]).tolist()
  return np.mean(out)


def test_legato_prior_closes_the_gaps_inside_phrases():
  off = _legato_inside_phrases(_decoded_with(0.0, 0.0))
  on = _legato_inside_phrases(_decoded_with(0.0, 0.0, legato=4.0))
  assert on > off + 0.3, (off, on)


def test_duration_offsets_move_the_duration_marginal():
  share = lambda songs, t: np.mean(np.concatenate([s.duration for _, s in songs]) == t)
  off = _decoded_with(0.0, 0.0)
  on = _decoded_with(0.0, 0.0, offsets='240:3')
  assert share(on, 240) > share(off, 240) + 0.2, (share(off, 240), share(on, 240))
