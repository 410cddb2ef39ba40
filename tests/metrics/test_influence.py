"""metrics/influence.py: OA with one song left out agrees with the evaluation of the smaller
sets, and a planted far-off reference song is named first; quality_diagnose --influence prints it."""

import json
import subprocess
import sys

import numpy as np
import pytest

from songglm_jax.metrics import evaluation, influence
from songglm_jax.music import midi
from tests.conftest import REPO
from tests.metrics.helpers import random_set, random_song
from tests.train import helpers


def _stretched(song, factor):
  """The song with every onset and offset ``factor`` times later (mean IOI x factor)."""
  so = song.syllable_onset
  return song.replace(onset=song.onset * factor, offset=song.offset * factor,
                      syllable_onset=None if so is None else so * factor)


def _sets(reference, count, seed):
  rng = np.random.default_rng(seed)
  return [(f'sample_{k}', {n: random_song(rng, s.num_syllables, name=n)
                           for n, s in reference.items()}) for k in range(count)]


@pytest.fixture(scope='module')
def planted():
  reference = random_set(np.random.default_rng(0), 9)
  reference['s4'] = _stretched(reference['s4'], 8)  # one song sung far slower than the others
  return reference, _sets(reference, 3, 1)


def test_oa_with_every_song_and_without_one_match_the_evaluation(planted):
  reference, sets = planted
  result = influence.oa_influence(reference, sets, top=9)
  full = evaluation.evaluate_sets(sets, reference)
  for key in evaluation.OA_KEYS:
    assert result[key]['all'] == pytest.approx(full[key], abs=1e-9), key
    assert result[key]['all_std'] == pytest.approx(full[key + '_std'], abs=1e-9), key
  for name in ('s2', 's4'):
    less = [(k, {n: s for n, s in g.items() if n != name}) for k, g in sets]
    smaller = evaluation.evaluate_sets(less, {n: s for n, s in reference.items() if n != name})
    for key in evaluation.OA_KEYS:
      row = next(r for r in result[key]['songs'] if r['song'] == name)
      assert row['without'] == pytest.approx(smaller[key], abs=1e-9), (key, name)
      assert row['gain'] == pytest.approx(row['without'] - result[key]['all'], abs=1e-12)
      assert row['without_std'] == pytest.approx(smaller[key + '_std'], abs=1e-9), (key, name)


def test_a_far_off_reference_song_is_named_first_for_ioi(planted):
  reference, sets = planted
  result = influence.oa_influence(reference, sets)
  ioi = result['OA_IOI']
  assert len(ioi['songs']) == influence.TOP
  first = ioi['songs'][0]
  assert first['song'] == 's4' and first['gain'] > 0.05
  s4 = reference['s4']
  assert first['value'] == pytest.approx((s4.onset[-1] - s4.onset[0]) / (len(s4.onset) - 1))
  assert [r['gain'] for r in ioi['songs']] == sorted((r['gain'] for r in ioi['songs']),
                                                     reverse=True)
  assert all(r['value'] is None for r in result['OA_PCH']['songs'])


def test_fewer_than_three_pairs_is_an_error():
  reference = random_set(np.random.default_rng(2), 2)
  with pytest.raises(ValueError, match='3 or more'):
    influence.oa_influence(reference, _sets(reference, 2, 3))


def test_quality_diagnose_influence_prints_and_writes_the_block(planted, tmp_path):
  reference, sets = planted
  run = tmp_path / 'run'
  for folder, songs in [('reference', reference)] + [(f'generated/{k}', g) for k, g in sets]:
    (run / folder).mkdir(parents=True)
    for name, song in songs.items():
      midi.write_midi(song, run / folder / f'{name}.mid')
  env = dict(helpers.subprocess_env(), SONGGLM_BENCH_RESULTS=str(tmp_path / 'results'))
  r = subprocess.run([sys.executable, 'benchmarks/quality_diagnose.py', f'--run={run}',
                      '--influence'], cwd=REPO, env=env, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  last = json.loads(r.stdout.strip().splitlines()[-1])
  assert last['influence']['OA_IOI']['songs'][0]['song'] == 's4'
  assert 'Influence on OA' in r.stdout
  ioi = r.stdout[r.stdout.index('  OA_IOI'):].splitlines()
  assert ' without s4 (mean IOI ' in ioi[1]  # the first song listed under OA_IOI


def test_an_undefined_oa_is_nan_not_an_error(planted):
  reference, _ = planted
  # Every generated song moves one quarter note per note: all mean IOIs equal, no spread, so
  # OA(IOI) is undefined (NaN) with every song and without any; the other features still rank.
  even = {n: s.replace(onset=np.arange(len(s.onset)) * 480, offset=np.arange(len(s.onset)) * 480
                       + 240, syllable_onset=None) for n, s in reference.items()}
  result = influence.oa_influence(reference, [('sample_0', even), ('sample_1', even)])
  assert np.isnan(result['OA_IOI']['all'])
  assert all(np.isnan(r['gain']) for r in result['OA_IOI']['songs'])
  assert not np.isnan(result['OA_PCH']['all']) and result['OA_PCH']['songs']
