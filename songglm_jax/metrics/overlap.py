"""Overlapped area (OA) of two Gaussian KDEs, computed on arrays with a certified error bound.

OA(X) compares the distribution of feature distances inside the generated set ("intra") with the
distances from generated to reference songs ("inter"): :func:`distance_sets` builds both value
sets in two ``cdist`` calls; :func:`overlap_area` fits a Gaussian KDE with Scott's bandwidth to
each (as ``scipy.stats.gaussian_kde`` does: kernel standard deviation ``std(x, ddof=1) *
n ** (-1/5)``) and returns ``OA = integral of min(f, g)`` over ``[lo, hi]``, the smallest and
largest value of both sets (the published metric code integrates over this interval too).

How the integral is computed. ``f - g`` changes sign at a few crossing points; between two
consecutive crossings the lower density is one of the two, and its integral is exact in closed
form (a KDE's integral is a weighted sum of normal CDFs). So OA is exact once all crossings are
known. They are found on a uniform grid of :data:`GRID` cells that is refined where needed:

- A cell ``[a, b]`` of width ``d`` whose ends have the same sign of ``e = f - g`` holds no crossing
  when ``min(|e(a)|, |e(b)|) > M2 d^2 / 8``, where ``M2`` bounds ``|e''|`` on the cell (the sum
  over all kernels of the largest ``|phi''|`` each can reach on the cell, see
  :meth:`_Kde.cell_stats`), because ``e`` cannot dip further than that below the chord.
- A cell whose ends differ in sign holds exactly one crossing when ``|e'(a)| > M2 d``
  (``e'`` keeps its sign over the cell, so ``e`` is monotone there); the crossing is then found
  by safeguarded Newton steps, its error bounded by ``|e(x)| / (|e'(a)| - M2 d)``.
- Any other cell is halved (the cells with the largest possible error first) while fewer than
  :data:`MAX_CELLS` cells have been evaluated. A cell accepted without a certificate -- because
  its possible error is below its share of :data:`TOLERANCE` (1e-9 over the whole interval), or
  because the budget ran out -- contributes at most ``d * (max(|e(a)|, |e(b)|) + M2 d^2 / 8)``
  (the integral of ``|f - g|`` over it bounds what a missed pair of crossings can change). These
  bounds and the crossings' location error times the largest density are summed into the
  returned ``error_bound``; it is below 1e-8 unless the two densities nearly coincide over a wide
  range. When both value sets are equal, the KDEs are equal and OA is their mass on the interval,
  exactly.

A value set whose variance is zero (or with fewer than 2 values) has no KDE: the result is NaN
with the reason, never an exception.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
from scipy import special
from scipy.spatial import distance as sp_distance

GRID = 64
MAX_CELLS = 1024  # cells evaluated at most; cells left undecided then are counted in the bound
TOLERANCE = 1e-9  # a cell may be accepted uncertified when its error bound is below its share
_PHI0 = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT3 = math.sqrt(3.0)
_CHUNK = 1 << 15  # elements of a (points x centers) block evaluated at once (fits in cache)


def _matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
  """``m @ v`` without BLAS: these products are small and many, and BLAS threads that spin
  while other processes hold the cores make them up to 10x slower on a shared machine."""
  return np.einsum('ij,j->i', m, v)


@dataclasses.dataclass(frozen=True)
class OverlapResult:
  value: float  # NaN when undefined
  error_bound: float
  reason: str = ''  # why value is NaN ('' otherwise)


class _Kde:
  """A 1-D Gaussian KDE stored as unique centers with weights (same density as the raw data)."""

  def __init__(self, data: np.ndarray):
    data = np.asarray(data, dtype=np.float64).ravel()
    self.n = len(data)
    self.std = float(np.std(data, ddof=1))
    self.h = self.std * self.n ** (-0.2)  # Scott's factor n^(-1/(d+4)) with d = 1
    centers, counts = np.unique(data, return_counts=True)
    self.centers = centers
    self.scaled = centers / self.h
    self.weights = counts / self.n

  def pdf_and_slope(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density and its derivative at points ``x`` (float64 ``[len(x)]`` each)."""
    x = np.asarray(x, dtype=np.float64).ravel() / self.h
    pdf, slope = np.empty(len(x)), np.empty(len(x))
    step = max(1, _CHUNK // max(1, len(self.centers)))
    for a in range(0, len(x), step):
      z = x[a:a + step, None] - self.scaled[None, :]
      k = np.exp(-0.5 * z * z)
      pdf[a:a + step] = _matvec(k, self.weights)
      z *= k
      slope[a:a + step] = -_matvec(z, self.weights)
    return pdf * (_PHI0 / self.h), slope * (_PHI0 / self.h ** 2)

  def cell_stats(self, left: np.ndarray, right: np.ndarray):
    """For cells ``[left, right]``: density at both ends, slope at the left end, and a bound on
    ``|f''|`` over the cell (each float64 ``[cells]``).

    The bound sums, over the kernels, the largest ``|phi''(z)| = |z^2 - 1| phi(z)`` on the cell:
    at an end, or ``phi(0)`` (the global maximum) when the cell comes within ``sqrt(3)`` kernel
    widths of the center (``|phi''|`` decreases in ``|z|`` beyond ``sqrt(3)``).
    """
    left = np.asarray(left, dtype=np.float64) / self.h
    right = np.asarray(right, dtype=np.float64) / self.h
    n = len(left)
    out = [np.empty(n) for _ in range(4)]
    step = max(1, _CHUNK // max(1, len(self.centers)))
    w = self.weights
    for a in range(0, n, step):
      z1 = left[a:a + step, None] - self.scaled[None, :]
      z2 = right[a:a + step, None] - self.scaled[None, :]
      near = (z1 < _SQRT3) & (z2 > -_SQRT3)
      z1 *= z1
      z2 *= z2
      k1 = np.exp(-0.5 * z1)
      k2 = np.exp(-0.5 * z2)
      out[0][a:a + step] = _matvec(k1, w)
      out[1][a:a + step] = _matvec(k2, w)
      z1 -= 1.0
      np.abs(z1, out=z1)
      z1 *= k1
      z2 -= 1.0
      np.abs(z2, out=z2)
      z2 *= k2
      np.maximum(z1, z2, out=z1)
      np.maximum(z1, near, out=z1)  # near: the global maximum 1 of |z^2 - 1| exp(-z^2 / 2)
      out[3][a:a + step] = _matvec(z1, w)
      zl = left[a:a + step, None] - self.scaled[None, :]
      zl *= k1
      out[2][a:a + step] = -_matvec(zl, w)
    c = _PHI0 / self.h
    return out[0] * c, out[1] * c, out[2] * c / self.h, out[3] * c / self.h ** 2

  def cdf(self, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return _matvec(special.ndtr((x[:, None] - self.centers[None, :]) / self.h), self.weights)


def _degenerate(values: np.ndarray, what: str) -> Optional[str]:
  if len(values) < 2:
    return f'{what}: fewer than 2 values'
  if not np.all(np.isfinite(values)):
    return f'{what}: non-finite values'
  if np.ptp(values) == 0.0:
    return f'{what}: all {len(values)} values equal {float(values[0]):g} (zero variance, no KDE)'
  return None


def overlap_area(intra: np.ndarray, inter: np.ndarray) -> OverlapResult:
  """OA of the KDEs of two value sets (see the module docstring).

  Args:
    intra: the intra-set distances (any shape; flattened).
    inter: the inter-set distances.

  Returns:
    ``OverlapResult(value in [0, 1] or NaN, error_bound, reason)``.
  """
  intra = np.asarray(intra, dtype=np.float64).ravel()
  inter = np.asarray(inter, dtype=np.float64).ravel()
  for values, what in ((intra, 'intra'), (inter, 'inter')):
    reason = _degenerate(values, what)
    if reason:
      return OverlapResult(float('nan'), float('nan'), reason)
  f, g = _Kde(intra), _Kde(inter)
  lo = float(min(intra.min(), inter.min()))
  hi = float(max(intra.max(), inter.max()))

  def e_and_slope(x):
    pf, sf = f.pdf_and_slope(x)
    pg, sg = g.pdf_and_slope(x)
    return pf - pg, sf - sg

  def cells(left, right):
    f1, f2, fs, fc = f.cell_stats(left, right)
    g1, g2, gs, gc = g.cell_stats(left, right)
    return f1 - g1, f2 - g2, fs - gs, fc + gc

  if len(intra) == len(inter) and np.array_equal(np.sort(intra), np.sort(inter)):
    # Same values, same KDE: min(f, g) = f, whose integral is exact.
    return OverlapResult(float(np.diff(f.cdf(np.array([lo, hi])))[0]), 0.0)
  share = TOLERANCE / (hi - lo)  # allowed error per unit length for "cannot matter" cells
  error = 0.0
  pieces = []  # (start, end, f_is_lower) of every accepted piece of [lo, hi]
  grid = np.linspace(lo, hi, GRID + 1)
  left, right = grid[:-1], grid[1:]
  budget = MAX_CELLS
  while True:
    el, er, sl, m2 = cells(left, right)
    budget -= len(left)
    d = right - left
    dip = m2 * d * d / 8.0
    same = np.sign(el) * np.sign(er) > 0
    clean = same & (np.minimum(np.abs(el), np.abs(er)) > dip)
    one_root = ~same & (np.abs(sl) > m2 * d) & (el != er)
    cell_err = d * (np.maximum(np.abs(el), np.abs(er)) + dip)
    loose = ~clean & ~one_root & (cell_err <= share * d)
    todo = ~(clean | one_root | loose)
    if 2 * int(todo.sum()) > budget:  # refine the worst cells that fit, give up on the others
      worst = np.flatnonzero(todo)[np.argsort(-cell_err[todo], kind='stable')]
      loose[worst[max(0, budget // 2):]] = True
      todo[worst[max(0, budget // 2):]] = False
    error += float(np.sum(cell_err[loose]))
    keep = clean | loose  # one piece each, the lower density taken from the left end
    pieces.append((left[keep], right[keep], np.where(el[keep] != 0, el[keep] < 0, er[keep] > 0)))
    if np.any(one_root):
      lt, rt, elt, ert = left[one_root], right[one_root], el[one_root], er[one_root]
      root, root_err = _newton(e_and_slope, lt, rt, elt, ert,
                               np.abs(sl[one_root]) - (m2 * d)[one_root])
      error += float(np.sum(root_err)) * _PHI0 * (1.0 / f.h + 1.0 / g.h)
      left_lower = np.where(elt != 0, elt < 0, ert > 0)
      pieces.append((lt, root, left_lower))
      pieces.append((root, rt, ~left_lower))
    if not np.any(todo):
      break
    lt, rt = left[todo], right[todo]
    mid = 0.5 * (lt + rt)
    left, right = np.concatenate([lt, mid]), np.concatenate([mid, rt])
  starts = np.concatenate([p[0] for p in pieces])
  ends = np.concatenate([p[1] for p in pieces])
  f_lower = np.concatenate([p[2] for p in pieces])
  order = np.argsort(starts, kind='stable')
  starts, ends, f_lower = starts[order], ends[order], f_lower[order]
  # Merge neighbouring pieces with the same lower density: CDFs are needed at changes only.
  change = np.flatnonzero(f_lower[1:] != f_lower[:-1]) + 1
  seg_start = np.concatenate([[0], change])
  bounds = np.concatenate([starts[seg_start], [ends[-1]]])
  cf, cg = f.cdf(bounds), g.cdf(bounds)
  value = float(np.sum(np.where(f_lower[seg_start], np.diff(cf), np.diff(cg))))
  return OverlapResult(value, error)


def _newton(e_and_slope, left, right, e_left, e_right, min_slope, steps: int = 50):
  """Roots of ``e`` in cells where it is monotone with ``|e'| >= min_slope > 0``: safeguarded
  Newton steps inside the sign bracket. Returns the roots and a bound on their error."""
  left, right = left.copy(), right.copy()
  neg_left = np.where(e_left != 0, e_left < 0, e_right > 0)
  x = 0.5 * (left + right)
  err = right - left
  for _ in range(steps):
    e, s = e_and_slope(x)
    go_right = (e < 0) == neg_left  # the root lies right of x
    left = np.where(go_right, x, left)
    right = np.where(go_right, right, x)
    err = np.minimum(right - left, np.abs(e) / min_slope)  # for the x just evaluated
    if np.all(err <= 1e-13 * np.maximum(1.0, np.abs(x))):
      break
    step = np.where(s != 0, e / np.where(s != 0, s, 1.0), 0.0)
    nxt = x - step
    inside = (nxt > left) & (nxt < right) & (s != 0)
    x = np.where(inside, nxt, 0.5 * (left + right))
  else:
    e, _ = e_and_slope(x)
    err = np.minimum(right - left, np.abs(e) / min_slope)
  return x, err


def distance_sets(generated: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Intra and inter distance sets of one feature.

  Args:
    generated: ``[G, F]`` feature rows of the generated songs.
    reference: ``[R, F]`` feature rows of the reference songs.

  Returns:
    ``(intra [G*G], inter [G*R])``: Euclidean distances from every generated song to every
    generated song (itself included, so G zeros) and to every reference song.
  """
  generated = np.asarray(generated, dtype=np.float64)
  reference = np.asarray(reference, dtype=np.float64)
  intra = sp_distance.cdist(generated, generated, 'euclidean').ravel()
  inter = sp_distance.cdist(generated, reference, 'euclidean').ravel()
  return intra, inter
