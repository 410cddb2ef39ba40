"""OA: certified integration against scipy's KDE + adaptive quadrature, identical and shifted
sets, degenerate sets."""

import numpy as np
import pytest

from songglm_jax.metrics import oracle, overlap

# The stated tolerance between this module and the oracle (scipy quad with default tolerances);
# this module's own certified bound is reported per value and is far below it.
OA_TOLERANCE = 1e-6


def _sets(seed, shift=0.0, discrete=False):
  rng = np.random.default_rng(seed)
  g = rng.normal(size=(40, 6))
  r = rng.normal(size=(40, 6)) + shift
  if discrete:
    g, r = np.round(2 * g), np.round(2 * r)
  return overlap.distance_sets(g, r)


def test_distance_sets_are_all_pairs_with_self_zeros():
  g = np.array([[0.0, 0.0], [3.0, 4.0]])
  r = np.array([[0.0, 0.0], [0.0, 1.0], [6.0, 8.0]])
  intra, inter = overlap.distance_sets(g, r)
  np.testing.assert_allclose(intra, [0, 5, 5, 0])
  np.testing.assert_allclose(inter, [0, 1, 10, 5, np.hypot(3, 3), 5])


@pytest.mark.parametrize('seed,shift,discrete', [(0, 0.3, False), (1, 1.0, False), (2, 0.5, True)])
def test_matches_gaussian_kde_and_quad(seed, shift, discrete):
  intra, inter = _sets(seed, shift, discrete)
  res = overlap.overlap_area(intra, inter)
  assert res.value == pytest.approx(oracle.overlap_area(intra, inter), abs=OA_TOLERANCE)
  assert res.error_bound < 1e-8


def test_identical_sets_give_the_kde_mass_close_to_one():
  intra, _ = _sets(3)
  res = overlap.overlap_area(intra, intra.copy())
  assert 0.9 < res.value < 1.0 and res.error_bound == 0.0
  assert res.value == pytest.approx(oracle.overlap_area(intra, intra), abs=OA_TOLERANCE)


def test_shifted_sets_overlap_less():
  same = overlap.overlap_area(*_sets(4, 0.0)).value
  apart = overlap.overlap_area(*_sets(4, 3.0)).value
  assert apart < same - 0.2


def test_zero_variance_gives_nan_with_reason():
  res = overlap.overlap_area(np.zeros(16), np.linspace(0, 1, 16))
  assert np.isnan(res.value) and 'zero variance' in res.reason


def test_too_few_values_gives_nan_with_reason():
  res = overlap.overlap_area(np.array([1.0]), np.linspace(0, 1, 16))
  assert np.isnan(res.value) and 'fewer than 2' in res.reason


def test_bandwidth_is_scotts_rule_as_scipy():
  from scipy import stats
  x = np.random.default_rng(5).normal(size=300)
  kde = overlap._Kde(x)
  assert kde.h == pytest.approx(np.sqrt(stats.gaussian_kde(x).covariance[0, 0]), rel=1e-12)


def test_densities_equal_scipy_gaussian_kde():
  from scipy import stats
  x = np.random.default_rng(6).gamma(2.0, size=200)
  points = np.linspace(-1, 12, 7)
  expected = stats.gaussian_kde(x)(points)
  np.testing.assert_allclose(overlap._Kde(x).pdf_and_slope(points)[0], expected, rtol=1e-10)
  np.testing.assert_allclose([oracle.gaussian_kde(x)(p) for p in points], expected, rtol=1e-10)
