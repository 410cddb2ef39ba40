"""The run-length block DTW against cell-by-cell DTW, and MD's definition."""

import numpy as np
import pytest

from songglm_jax.metrics import distance, features, oracle
from tests.metrics.helpers import random_song, transposed


def _random_runs(rng, count, k=1):
  values = rng.integers(50, 80, count)
  lengths = rng.integers(1, 6, count) * k
  return values, lengths


def _md_oracle(x_runs, y_runs):
  x = np.repeat(x_runs[0].astype(float), x_runs[1])
  y = np.repeat(y_runs[0].astype(float), y_runs[1])
  return oracle.dtw(x - x.mean(), y - y.mean()) / len(y)


def test_oracle_row_dtw_equals_textbook_double_loop():
  rng = np.random.default_rng(0)
  for _ in range(30):
    x, y = rng.normal(size=rng.integers(1, 9)), rng.normal(size=rng.integers(1, 9))
    assert oracle.dtw(x, y) == pytest.approx(oracle.dtw_cells(x, y), abs=1e-12)


def test_block_dtw_is_exact_on_integer_costs():
  rng = np.random.default_rng(1)
  problems, expected = [], []
  for _ in range(200):
    xv, xl = _random_runs(rng, int(rng.integers(1, 7)))
    yv, yl = _random_runs(rng, int(rng.integers(1, 7)))
    costs = np.abs(xv[:, None] - yv[None, :]).astype(np.int64)
    problems.append(distance.DtwProblem(xl, yl, costs, 1.0))
    expected.append(oracle.dtw_cells(np.repeat(xv, xl), np.repeat(yv, yl)))
  np.testing.assert_array_equal(distance.dtw_blocks(problems), np.array(expected, np.int64))


def test_compiled_block_dtw_is_exact_on_integer_costs():
  from songglm_jax.metrics import dtw_compiled
  assert dtw_compiled.AVAILABLE, 'numba is in requirements.txt'
  rng = np.random.default_rng(11)
  for _ in range(300):
    xv, xl = _random_runs(rng, int(rng.integers(1, 8)))
    yv, yl = _random_runs(rng, int(rng.integers(1, 8)))
    costs = np.abs(xv[:, None] - yv[None, :]).astype(np.int64)
    got = dtw_compiled.dtw_one(xl.astype(np.int64), yl.astype(np.int64), costs)
    assert got == oracle.dtw_cells(np.repeat(xv, xl), np.repeat(yv, yl))


@pytest.mark.parametrize('compiled', [True, False])
@pytest.mark.parametrize('k', [1, 3])
def test_melody_distances_equal_cell_dtw_over_generated_length(k, compiled, monkeypatch):
  monkeypatch.setattr(distance, 'USE_COMPILED', compiled)
  rng = np.random.default_rng(2 + k)
  refs = [_random_runs(rng, int(rng.integers(1, 9)), k) for _ in range(60)]
  gens = [_random_runs(rng, int(rng.integers(1, 9)), k) for _ in range(60)]
  md = distance.melody_distances(refs, gens)
  expected = [_md_oracle(r, g) for r, g in zip(refs, gens)]
  np.testing.assert_allclose(md.values, expected, rtol=1e-9, atol=1e-12)
  assert not np.any(md.error_bounds)


def test_md_of_songs_matches_oracle():
  rng = np.random.default_rng(4)
  pairs = [(random_song(rng, 10), random_song(rng, 14)) for _ in range(8)]
  md = distance.melody_distances([features.md_runs(r) for r, _ in pairs],
                                 [features.md_runs(g) for _, g in pairs])
  for v, (r, g) in zip(md.values, pairs):
    y = oracle.md_series(g)
    assert v == pytest.approx(oracle.dtw(oracle.md_series(r), y) / len(y), rel=1e-9)


def test_identical_songs_have_md_zero():
  song = random_song(np.random.default_rng(5), 12)
  md = distance.melody_distances([features.md_runs(song)], [features.md_runs(song)])
  assert md.values[0] == 0.0


def test_uniform_transposition_keeps_md_zero_because_the_mean_is_subtracted():
  song = random_song(np.random.default_rng(6), 12)
  md = distance.melody_distances([features.md_runs(song)],
                                 [features.md_runs(transposed(song, 1))])
  assert md.values[0] == 0.0


def test_transposing_some_notes_raises_md():
  song = random_song(np.random.default_rng(7), 12)
  md = distance.melody_distances([features.md_runs(song)],
                                 [features.md_runs(transposed(song, 1, every=2))])
  assert md.values[0] > 0.1


def test_empty_series_gives_nan_with_reason():
  empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
  md = distance.melody_distances([empty], [(np.array([60]), np.array([4]))])
  assert np.isnan(md.values[0]) and 'reference' in md.reasons[0]


def test_many_small_batches_give_the_same_values():
  rng = np.random.default_rng(8)
  problems = [distance.dtw_problem(*_random_runs(rng, 6), *_random_runs(rng, 5))
              for _ in range(40)]
  one = distance.dtw_many(problems)
  batches = distance.plan_batches(problems, target=5)
  assert len(batches) > 5
  for batch in batches:
    np.testing.assert_allclose(distance.dtw_many([problems[i] for i in batch]), one[batch])


def test_fixed_point_fallback_stays_within_its_error_bound(monkeypatch):
  rng = np.random.default_rng(9)
  refs = [_random_runs(rng, 5) for _ in range(10)]
  gens = [_random_runs(rng, 6) for _ in range(10)]
  monkeypatch.setattr(distance, '_LIMIT', 1 << 16)  # exact integers no longer fit
  md = distance.melody_distances(refs, gens)
  expected = np.array([_md_oracle(r, g) for r, g in zip(refs, gens)])
  assert np.sum(md.error_bounds > 0) >= 5
  assert np.all(np.abs(md.values - expected) <= md.error_bounds + 1e-12)


def test_worker_processes_give_the_same_values():
  rng = np.random.default_rng(10)
  refs = [_random_runs(rng, 30) for _ in range(6)]
  gens = [_random_runs(rng, 30) for _ in range(6)]
  problems = [distance.dtw_problem(*r, *g) for r, g in zip(refs, gens)]
  single = distance.dtw_many(problems)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(distance, 'TARGET_STEP_ELEMENTS', 50)  # several batches, so the pool is used
    assert len(distance.plan_batches(problems)) > 1
    parallel = distance.dtw_many(problems, workers=2)
  np.testing.assert_array_equal(parallel, single)


def test_batch_too_wide_for_int64_together_is_split(monkeypatch):
  long_cheap = distance.DtwProblem(np.array([300, 200]), np.array([250, 250]),
                                   np.array([[0, 1], [1, 0]], np.int64), 1.0)
  short_dear = distance.DtwProblem(np.array([1, 2]), np.array([2]),
                                   np.array([[1000], [3]], np.int64), 1.0)
  monkeypatch.setattr(distance, '_LIMIT', 100_000)  # each fits alone, not both together
  assert distance._span([long_cheap])[1] < 100_000 and distance._span([short_dear])[1] < 100_000
  values = distance._solve_batch([long_cheap, short_dear])
  assert values == [oracle.dtw_cells([0] * 300 + [1] * 200, [0] * 250 + [1] * 250),
                    oracle.dtw_cells([1000, 3, 3], [0, 0])]
