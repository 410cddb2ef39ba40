import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest

from songglm_jax.data import lexicon as L
from songglm_jax.data import lexicon_fit, lexicon_ngrams
from songglm_jax.data.lexicon_build import fit_lexicon
from songglm_jax.music import skeleton
from tests.conftest import REPO, require_sample
from tests.songs import make_song


def _song(pitches, stress, notes_per_syllable=None, name='s', durations=None):
  nps = notes_per_syllable or [1] * len(stress)
  n = sum(nps)
  du = durations or [480] * n
  on = np.concatenate([[0], np.cumsum(du)[:-1]])
  song = make_song(pitches, on, du, np.repeat(np.arange(len(nps)), nps),
                   [f'{name}{i}' for i in range(len(nps))], name=name)
  return song.replace(syllable_stress=tuple(stress))


def _tiny():
  # peaks (one note per syllable): a = 0 1 0 1 0, b = 0 0 1 0
  a = _song([60, 62, 60, 62, 60], ['1', '0', '1', '0', '1'], name='a')
  b = _song([60, 62, 64, 62], ['0', '1', '1', '0'], name='b')
  return [a, b]


def _entry(lex, kind, groups):
  found = [g for g in lex.kinds[kind].ngrams if g.groups == groups]
  assert len(found) == 1, groups
  return found[0]


def _t(p, indep, total):
  return (p - indep) / math.sqrt(p * (1 - p) / total)


def _random_corpus(num_songs=40, seed=0):
  rng = random.Random(seed)
  songs = []
  for k in range(num_songs):
    s = rng.randint(3, 30)
    nps = [rng.choice([1, 1, 1, 2, 3]) for _ in range(s)]
    n = sum(nps)
    pitches = [rng.choice([60, 62, 64, 65, 67]) for _ in range(n)]
    durations = [rng.choice([240, 480, 960, 360]) for _ in range(n)]
    stress = [rng.choice(['1', '0', '1', '10', '2', '?']) for _ in range(s)]
    songs.append(_song(pitches, stress, nps, name=f'r{k % 7}', durations=durations))
  return songs


# ---- scores ----------------------------------------------------------------------------------
def test_hand_computed_t_c_s_of_bigrams():
  lex = fit_lexicon(_tiny(), max_n=3, keep_top=100)
  total = 7  # bigram windows: 4 in a, 3 in b
  p0, p1 = 6 / 9, 3 / 9  # unigram probabilities of the groups (0,) and (1,)
  ps1, ps0 = 5 / 9, 4 / 9  # stress '1' and '0'
  t_10 = _t(3 / 7, ps1 * ps0, total)  # lyric bigrams ('1','0') and ('0','1'): 3 each
  t_11 = _t(1 / 7, ps1 * ps1, total)  # ('1','1'): once, in b
  h = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
  # (0,1): 3 times, sung on ('1','0') twice and ('1','1') once
  g = _entry(lex, 'smr', ((0,), (1,)))
  t = _t(3 / 7, p0 * p1, total)
  c = 1 - h / math.log2(2)
  assert g.count == 3
  assert g.t == pytest.approx(t) and g.c == pytest.approx(c)
  assert g.lyric_t == pytest.approx((t_10 + t_11) / 2)
  assert g.s == pytest.approx(0.5 * t + 0.5 * c * (t_10 + t_11) / 2)
  # (1,0): 3 times, on ('0','1') twice and ('1','0') once -> the same c, mean of equal ts
  g = _entry(lex, 'smr', ((1,), (0,)))
  assert g.s == pytest.approx(0.5 * t + 0.5 * c * t_10)
  # (0,0): once, on ('0','1') -> c = 1 (one lyric n-gram)
  g = _entry(lex, 'smr', ((0,), (0,)))
  t00 = _t(1 / 7, p0 * p0, total)
  assert g.c == 1.0 and g.t == pytest.approx(t00)
  assert g.s == pytest.approx(0.5 * t00 + 0.5 * t_10)


def test_ranks_follow_scores_within_a_length():
  for max_rank, selected in ((0.3, [False] * 3), (0.5, [True, False, False])):
    lex = fit_lexicon(_tiny(), max_n=3, keep_top=100, max_rank=max_rank)
    bigrams = [g for g in lex.kinds['smr'].ngrams if g.n == 2]
    by_score = sorted(bigrams, key=lambda g: (-g.s, -g.count))
    assert [g.rank for g in by_score] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert [g.selected for g in by_score] == selected  # rank <= max_rank


def test_weighted_lyric_mean_weights_by_cooccurrence():
  lex = fit_lexicon(_tiny(), max_n=2, keep_top=100, lyric_mean='weighted')
  t_10 = _t(3 / 7, 20 / 81, 7)
  t_11 = _t(1 / 7, 25 / 81, 7)
  assert _entry(lex, 'smr', ((0,), (1,))).lyric_t == pytest.approx((2 * t_10 + t_11) / 3)


def test_collapsed_score_is_the_public_code_t():
  lex = fit_lexicon(_tiny(), max_n=2, keep_top=100, score='collapsed')
  assert _entry(lex, 'smr', ((0,), (1,))).t == pytest.approx(math.sqrt(7 * (3 / 7) / (4 / 7)))


def test_unigrams_score_zero_and_rank_by_count():
  lex = fit_lexicon(_tiny(), max_n=2, keep_top=100)
  zero, one = _entry(lex, 'smr', ((0,),)), _entry(lex, 'smr', ((1,),))
  assert zero.t == one.t == zero.s == one.s == 0.0
  assert (zero.count, zero.rank, one.count, one.rank) == (6, 0.5, 3, 1.0)


def test_score_ties_broken_by_count_then_ngram_order():
  # units 0 and 1 twice each, all stress the same: unigrams tie on score and count
  units = np.array([0, 1, 1, 0])
  tables, _ = lexicon_fit.score_tables(units, np.zeros(4, np.int64), np.zeros(4, bool),
                                       np.full(4, 4), max_n=1)
  assert tables[0].position['faithful'].tolist() == [0, 1]


def test_only_ngram_of_its_length_has_t_zero():
  # a monotone melody: every bigram is (0,)(0,), p = 1 -> t := 0, finite score
  lex = fit_lexicon([_song([60] * 4, ['1', '0', '1', '0'])], max_n=2, keep_top=10)
  g = _entry(lex, 'smr', ((0,), (0,)))
  assert g.t == 0.0 and math.isfinite(g.s) and g.rank == 1.0


def test_unknown_stress_windows_are_skipped_or_kept():
  songs = _tiny()
  songs[0] = songs[0].replace(syllable_stress=('1', '0', '?', '0', '1'))
  skip = fit_lexicon(songs, max_n=2)
  keep = fit_lexicon(songs, max_n=2, unknown_stress='keep')
  assert [r['windows'] for r in skip.kinds['smr'].lengths] == [8, 5]
  assert [r['windows'] for r in keep.kinds['smr'].lengths] == [9, 7]
  assert skip.corpus['unknown_stress_syllables'] == 1


def test_fit_requires_stress_and_valid_params():
  song = _tiny()[0].replace(syllable_stress=None)
  with pytest.raises(ValueError, match='syllable_stress'):
    fit_lexicon([song])
  with pytest.raises(ValueError, match='max_rank'):
    fit_lexicon(_tiny(), max_rank=0)
  with pytest.raises(ValueError, match='lyric_mean'):
    fit_lexicon(_tiny(), lyric_mean='median')


# ---- spans -----------------------------------------------------------------------------------
def test_covered_spans_removed_partial_overlaps_kept():
  s = 6
  sel = [np.zeros(s, bool) for _ in range(3)]
  sel[0][[0, 5]] = True      # [0,1) [5,6)
  sel[1][[0, 1, 3]] = True   # [0,2) [1,3) [3,5)
  sel[2][[2]] = True         # [2,5)
  start, end = lexicon_ngrams.spans_from_selection(sel)
  assert list(zip(start.tolist(), end.tolist())) == [(0, 2), (1, 3), (2, 5), (5, 6)]


def test_song_spans_in_note_index_space():
  # groups per syllable: (0,) (1,0) (0,) (1,0): notes 0 | 1 2 | 3 | 4 5
  song = _song([60, 64, 62, 60, 64, 62], ['1'] * 4, [1, 2, 1, 2])
  assert skeleton.note_features(song, 'smr').tolist() == [0, 1, 0, 0, 1, 0]
  ngram = L.NGram(n=2, groups=((0,), (1, 0)), count=1, t=0.0, c=1.0, lyric_t=0.0, s=0.0,
                  rank=0.1, selected=True)
  lex = L.Lexicon(params=L.LexiconParams(), corpus={},
                  kinds={'smr': L.KindLexicon(kind='smr', ngrams=(ngram,))})
  spans = L.song_spans(lex, 'smr', song)
  assert spans.dtype == np.int32 and spans.tolist() == [[0, 3], [3, 6]]
  arrays = (skeleton.note_features(song, 'smr'), song.note_syllable)
  assert L.song_spans(lex, 'smr', arrays).tolist() == [[0, 3], [3, 6]]


def test_spans_inside_song_bounds_and_none_covered():
  songs = _random_corpus()
  lex = fit_lexicon(songs, max_n=6)
  for kind in skeleton.KINDS:
    total = 0
    for song in songs:
      spans = L.song_spans(lex, kind, song)
      total += len(spans)
      bounds = set(song.syllable_first_note.tolist()) | {song.num_notes}
      assert np.all(spans[:, 0] < spans[:, 1]) and spans.min(initial=0) >= 0
      assert spans.max(initial=0) <= song.num_notes
      assert set(spans.ravel().tolist()) <= bounds
      for i, (a, b) in enumerate(spans.tolist()):
        for j, (c, d) in enumerate(spans.tolist()):
          assert i == j or not (c <= a and b <= d), (kind, song.name, (a, b), (c, d))
    assert total == lex.kinds[kind].stats['score_comparison']['spans']


def _melisma_songs():
  """12 songs whose syllables carry 45 notes at times: more than both kinds' code depth (39 and
  22 notes)."""
  rng = random.Random(5)
  songs = []
  for k in range(12):
    nps = [rng.choice([1, 1, 45, 30]) for _ in range(6)]
    n = sum(nps)
    songs.append(_song([rng.choice([60, 62, 64]) for _ in range(n)], ['1'] * 6, nps,
                       name=f'm{k}', durations=[rng.choice([240, 480]) for _ in range(n)]))
  return songs


def test_melismas_longer_than_the_integer_code_match_exactly():
  songs = _melisma_songs()
  lex = L.loads_lexicon(L.dumps_lexicon(fit_lexicon(songs, max_n=3, max_rank=1.0)))
  for kind in skeleton.KINDS:
    assert max(len(g) for x in lex.kinds[kind].ngrams for g in x.groups) == 45
    total = sum(len(L.song_spans(lex, kind, s)) for s in songs)
    assert total == lex.kinds[kind].stats['score_comparison']['spans']


def test_coverage_is_fraction_of_notes_in_spans():
  songs = _random_corpus()
  lex = fit_lexicon(songs, max_n=4)
  cov = L.lexicon_coverage(lex, songs)
  inside = sum(L.covered_notes(L.song_spans(lex, 'srr', s), s.num_notes).sum() for s in songs)
  assert cov['srr'] == pytest.approx(inside / sum(s.num_notes for s in songs))
  assert cov['smr'] == pytest.approx(lex.kinds['smr'].stats['coverage'])


def test_min_span_n_drops_short_spans():
  songs = _random_corpus()
  lex = fit_lexicon(songs, max_n=4, min_span_n=2)
  assert not any(g.selected for g in lex.kinds['smr'].ngrams if g.n == 1)
  for song in songs:
    spans = L.song_spans(lex, 'srr', song)
    first = song.syllable_first_note
    syl_len = np.searchsorted(first, spans[:, 1], 'left') - np.searchsorted(first, spans[:, 0])
    assert np.all(syl_len >= 2)


# ---- determinism and storage -----------------------------------------------------------------
def test_shuffled_song_order_gives_identical_json():
  songs = _random_corpus()
  shuffled = list(songs)
  random.Random(3).shuffle(shuffled)
  assert L.dumps_lexicon(fit_lexicon(songs)) == L.dumps_lexicon(
      fit_lexicon(shuffled, workers=2))


def test_save_load_round_trip(tmp_path):
  songs = _random_corpus()
  lex = fit_lexicon(songs, max_n=5, stress_mode='word')
  path = tmp_path / 'lexicon.json'
  L.save_lexicon(lex, path)
  doc = json.loads(path.read_text())
  assert doc['version'] == L.VERSION and doc['params']['stress_mode'] == 'word'
  back = L.load_lexicon(path)
  assert L.dumps_lexicon(back) == path.read_text()
  assert [p.name for p in tmp_path.iterdir()] == ['lexicon.json']  # no temporary left behind
  for song in songs[:10]:
    for kind in skeleton.KINDS:
      assert np.array_equal(L.song_spans(back, kind, song), L.song_spans(lex, kind, song))


@pytest.mark.parametrize('edit, message', [
    (lambda d: d.update(version=99), 'version 99'),
    (lambda d: d.pop('params'), "missing field 'params'"),
    (lambda d: d['kinds']['smr']['ngrams'][0].update(groups=[[7]]), 'groups'),
    (lambda d: d['params'].update(max_rank=2.0), 'max_rank'),
])
def test_load_rejects_bad_files(tmp_path, edit, message):
  doc = json.loads(L.dumps_lexicon(fit_lexicon(_tiny(), max_n=2)))
  edit(doc)
  path = tmp_path / 'bad.json'
  path.write_text(json.dumps(doc))
  with pytest.raises(ValueError, match=message):
    L.load_lexicon(path)


def test_load_rejects_missing_and_non_json(tmp_path):
  with pytest.raises(ValueError, match='cannot read'):
    L.load_lexicon(tmp_path / 'none.json')
  (tmp_path / 'x.json').write_text('{not json')
  with pytest.raises(ValueError, match='not valid JSON'):
    L.load_lexicon(tmp_path / 'x.json')


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'songglm_jax.lexicon', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_inspection_cli(tmp_path):
  path = tmp_path / 'lexicon.json'
  L.save_lexicon(fit_lexicon(_random_corpus(), max_n=4), path)
  run = _cli(f'--lexicon={path}', '--top=3')
  assert run.returncode == 0, run.stderr
  assert 'SMR' in run.stdout and 'SRR' in run.stdout
  assert 'spans that differ under the collapsed score' in run.stdout
  assert run.stdout.count('e.g. "') >= 2
  bad = _cli(f'--lexicon={tmp_path / "missing.json"}')
  assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


# ---- the shared corpus -----------------------------------------------------------------------
def _shared_pretrain_songs():
  """The sample's pre-training songs with word-mode stress (skips when the sample is absent)."""
  folder = require_sample('pretrain')
  from songglm_jax.music import midi, stress
  songs = []
  for path in sorted(folder.glob('*.mid')):
    song, _ = midi.read_midi(path)
    songs.append(song.replace(syllable_stress=stress.syllable_stress(song.syllables, 'word')))
  return songs


def test_shared_pretrain_corpus():
  from songglm_jax.music import stress
  songs = _shared_pretrain_songs()
  assert len(songs) == 1000
  unknown = sum(p == stress.UNKNOWN for s in songs for p in s.syllable_stress)
  lex = fit_lexicon(songs, stress_mode='word')
  assert lex.corpus['unknown_stress_syllables'] == unknown
  for kind in skeleton.KINDS:
    cov = lex.kinds[kind].stats['coverage']
    # the rule (span lengths 1..4) covers almost every note: unigrams all score 0 and
    # the top 30% by count cover nearly every syllable
    assert 0.05 < cov < 1.0
    assert any(g.selected and g.n == 4 for g in lex.kinds[kind].ngrams)
  strict = fit_lexicon(songs, min_span_n=2, max_n=4)
  for kind, cov in L.lexicon_coverage(strict, songs[::10]).items():
    assert 0.05 < cov < 0.95, (kind, cov)
    assert cov < lex.kinds[kind].stats['coverage']
