"""Melody distance (MD): exact DTW between MD series, on run-length blocks, many pairs at once.

MD of a pair is ``DTW(reference series, generated series) / len(generated series)``, DTW with the
absolute difference as point cost and the usual steps (right, down, diagonal), the series being
those of ``features.md_series`` (about 6000 points for a song of the shared corpus). A cell-by-cell
DP would visit 3.8e7 cells per pair; this module never visits a cell.

**Blocks.** Both series are runs of equal values (one run per note, merged when the pitch
repeats), so the DP grid is a grid of P x Q constant-cost blocks. For a block of ``r`` rows,
``s`` columns and cost ``c``, every path from the block's input border (the row above, the
column to its left and their corner ``C``) to a cell ``(u, v)`` inside costs ``c`` per cell and
needs at least ``max(du, dv)`` cells, so

    D(u, v) = min( min_{v'} T[v'] + c max(u, v - v'),  min_{u'} L[u'] + c max(u - u', v) ).

Inside a column run the values along a row never decrease (a path to a cell further right can
be shortened into one to its left neighbour at no extra cost), and likewise down a column inside
a row run. With that, a block's whole output border (bottom row ``B``, right column ``R``) comes
from its input border ``Z = [L[r], ..., L[1], C', T[1], ..., T[s]]`` (``C' = min(C, L[1], T[1])``)
and its prefix minima ``PM`` of ``Z - c * (distance from C)``, taken outward from the corner:

    B[v] = min( c min(v, r) + Z[v],  c max(v, r) + PM[v] ),      v = 1..s
    R[u] = min( c min(u, s) + Z[r+s-u],  c max(u, s) + PM[r+s-u] ),  u = 1..r

one gather, one segmented prefix-min and a few element-wise operations per border cell. Blocks on
one anti-diagonal of the block grid are independent; the wavefront processes all of them, for all
pairs of a batch, with flat NumPy arrays: work O(P m + Q n) per pair instead of O(n m).

**Exact integers.** Costs are ``|(x_i - mean x) - (y_j - mean y)|``. Multiplied by
``D = len(x) len(y)`` they are the integers ``|D (x_i - y_j) - (len(y) sum x - len(x) sum y)|``
(divided by their gcd), so the whole DP runs in int64 and is exact; the segmented prefix-min
offsets each segment by a multiple of the value span. **Compression**: when every run length of
both series is a multiple of ``k`` (songs on an eighth-note grid give k = 24), run lengths are
divided by ``k``; DTW scales exactly by ``k`` (each cell of the small grid stands for a k x k
square traversed along one of its sides or its diagonal).

**Compiled.** With numba installed (it is in requirements.txt), each pair's blocks are swept
in row order by ``dtw_compiled.dtw_one``: the same border formulas, the same exact integers,
about 4.6x faster than the NumPy wavefront on the shared corpus (1000 pairs: 2.5 s against
11.5 s, one process). The wavefront stays as the fallback (``USE_COMPILED = False``) and as the
reference the compiled sweep is tested against.

Pairs too large for exact int64 (series of millions of points) fall back to costs rounded to a
fixed-point scale; their MD carries an error bound, reported with the result.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import multiprocessing.pool
from typing import Optional, Sequence

import numpy as np

from songglm_jax.metrics import dtw_compiled

USE_COMPILED = True  # the numba block DTW (dtw_compiled.py) when numba is installed; False: the
                     # NumPy wavefront below (same exact values)
_LIMIT = 1 << 61  # largest value span the int64 DP may meet (offsets add at most one more)
TARGET_STEP_ELEMENTS = 60_000  # border cells per wavefront step that a batch aims at (cache)


@dataclasses.dataclass(frozen=True)
class DtwProblem:
  """One pair as the wavefront needs it: int64 run lengths and costs [P, Q]; the DTW of the
  original series is ``dp_value * unit`` (``unit = k / D``), within ``error_bound``."""
  x_lengths: np.ndarray
  y_lengths: np.ndarray
  costs: np.ndarray
  unit: float
  error_bound: float = 0.0


def dtw_problem(x_values: np.ndarray, x_lengths: np.ndarray, y_values: np.ndarray,
                y_lengths: np.ndarray) -> DtwProblem:
  """The exact integer problem for two run-length encoded integer series, each mean-subtracted.

  Args:
    x_values, x_lengths: ``[P]`` int values and positive repeat counts of series x.
    y_values, y_lengths: ``[Q]`` the same for series y.
  """
  xv, xl = np.asarray(x_values, np.int64), np.asarray(x_lengths, np.int64)
  yv, yl = np.asarray(y_values, np.int64), np.asarray(y_lengths, np.int64)
  if len(xv) == 0 or len(yv) == 0 or np.any(xl <= 0) or np.any(yl <= 0):
    raise ValueError('dtw_problem: both series need at least one run of positive length')
  k = int(np.gcd.reduce(np.concatenate([xl, yl])))
  xl, yl = xl // k, yl // k
  lx, ly = int(xl.sum()), int(yl.sum())
  sx, sy = int((xv * xl).sum()), int((yv * yl).sum())
  denom, shift = lx * ly, ly * sx - lx * sy  # cost * denom = |denom (x - y) - shift|
  g = math.gcd(denom, shift)
  denom, shift = denom // g, shift // g
  span = int(np.abs(xv).max() + np.abs(yv).max()) * denom + abs(shift)
  if span * (lx + ly + max(int(xl.max()), int(yl.max())) + 2) < _LIMIT:
    diff = xv[:, None] - yv[None, :]
    costs = np.abs(diff * denom - shift)
    return DtwProblem(xl, yl, costs, k / denom)
  # Too large for exact int64: fixed-point costs, rounding error <= 0.5 per visited cell.
  delta = sx / lx - sy / ly
  real = np.abs((xv[:, None] - yv[None, :]).astype(np.float64) - delta)
  cmax = max(float(real.max()), 1e-300)
  scale = (_LIMIT / 4) / (cmax * (lx + ly + max(int(xl.max()), int(yl.max())) + 2))
  costs = np.rint(real * scale).astype(np.int64)
  return DtwProblem(xl, yl, costs, k / scale, error_bound=(lx + ly) * 0.5 * k / scale)


def dtw_blocks(problems: Sequence[DtwProblem]) -> np.ndarray:
  """Exact DP value (int64, in cost units) of each problem; one wavefront for all of them."""
  if not problems:
    return np.zeros(0, np.int64)
  xls = [p.x_lengths for p in problems]
  yls = [p.y_lengths for p in problems]
  P = np.array([len(x) for x in xls]); Q = np.array([len(y) for y in yls])
  n = np.array([int(x.sum()) for x in xls]); m = np.array([int(y.sum()) for y in yls])
  inf, span, _ = _span(problems)
  if span >= _LIMIT:
    raise ValueError('dtw_blocks: value span exceeds int64; use dtw_problem to build inputs '
                     'and _solve_batch to split batches')
  chunk = max(1, (1 << 62) // span)  # segments whose offsets fit in one prefix-min call
  size = m + n
  off = np.concatenate([[0], np.cumsum(size)[:-1]])
  store = np.full(int(size.sum()) + 1, inf, np.int64)  # per pair: bottom rows [m], columns [n]
  scratch = len(store) - 1  # where corner slots read from and write to
  rp_off = np.concatenate([[0], np.cumsum(P)[:-1]])
  cq_off = np.concatenate([[0], np.cumsum(Q)[:-1]])
  r_len, c_len = np.concatenate(xls), np.concatenate(yls)
  r_base = np.concatenate([off[b] + m[b] + np.cumsum(x) - x - 1 for b, x in enumerate(xls)])
  c_base = np.concatenate([off[b] + np.cumsum(y) - y - 1 for b, y in enumerate(yls)])
  cost_off = np.concatenate([[0], np.cumsum(P * Q)[:-1]])
  costs = np.concatenate([p.costs.ravel() for p in problems]).astype(np.int64)
  corner = np.full(len(costs), inf, np.int64)  # bottom-right value of every block
  result = np.zeros(len(problems), np.int64)
  for t in range(int((P + Q).max()) - 1):
    lo, hi = np.maximum(0, t - Q + 1), np.minimum(t, P - 1)
    act = np.flatnonzero(hi >= lo)
    cnt = (hi - lo + 1)[act]
    nblk = int(cnt.sum())
    owner = np.repeat(np.arange(len(act)), cnt)
    b = act[owner]
    p = lo[act][owner] + np.arange(nblk) - (np.cumsum(cnt) - cnt)[owner]
    q = t - p
    ri, ci = rp_off[b] + p, cq_off[b] + q
    r, s = r_len[ri], c_len[ci]
    bid = cost_off[b] + p * Q[b] + q
    c = costs[bid]
    cin = corner[np.maximum(bid - Q[b] - 1, 0)]
    cin[(p == 0) | (q == 0)] = inf
    cin[(p == 0) & (q == 0)] = 0  # the virtual cell before the first one
    # Per block two segments: the left column L[0..r], then the top row T[0..s]. Per-element
    # values are np.repeat of per-segment ones and gathers are np.take (both much faster than
    # fancy indexing by a segment-id array).
    nseg = 2 * nblk
    seglen = np.empty(nseg, np.int64)
    seglen[0::2], seglen[1::2] = r + 1, s + 1
    segstart = np.cumsum(seglen) - seglen
    lst, tst = segstart[0::2], segstart[1::2]
    othlen = np.empty(nseg, np.int64)
    othlen[0::2], othlen[1::2] = s, r
    othst = np.empty(nseg, np.int64)
    othst[0::2], othst[1::2] = tst, lst
    segbase = np.empty(nseg, np.int64)
    segbase[0::2], segbase[1::2] = r_base[ri], c_base[ci]
    e = np.arange(int(segstart[-1] + seglen[-1]), dtype=np.int64)
    sst = np.repeat(segstart, seglen)
    i = e - sst  # index inside the segment
    gidx = np.repeat(segbase - segstart, seglen)
    gidx += e
    gidx[lst], gidx[tst] = scratch, scratch
    z = np.take(store, gidx)
    cz = np.minimum(cin, np.minimum(z[tst + 1], z[lst + 1]))
    z[lst], z[tst] = cz, cz
    cs = np.repeat(np.repeat(c, 2), seglen)
    pm = cs * i
    np.subtract(z, pm, out=pm)
    _segmented_prefix_min(pm, seglen, segstart, span, chunk)
    lo_e = np.repeat(othlen, seglen)
    # Source of each output: the other side at lo - i while i <= lo, else this side at i - lo.
    src = np.repeat(othst + othlen + segstart, seglen)
    src -= e
    np.subtract(e, lo_e, out=e)
    np.copyto(src, e, where=i > lo_e)
    short = np.minimum(i, lo_e)
    i += lo_e
    i -= short  # i is now max(i, lo_e)
    short *= cs
    short += np.take(z, src)
    i *= cs
    i += np.take(pm, src)
    np.minimum(short, i, out=short)
    np.minimum(short, inf, out=short)
    store[gidx] = short
    last = tst + s
    corner[bid] = short[last]
    done = (p == P[b] - 1) & (q == Q[b] - 1)
    result[b[done]] = short[last[done]]
  return result


def _segmented_prefix_min(values, seglen, segstart, span, chunk) -> None:
  """In place: running minimum inside each segment (consecutive runs of ``seglen`` elements)."""
  nseg = len(segstart)
  for a in range(0, nseg, chunk):
    z = min(a + chunk, nseg)
    e0, e1 = int(segstart[a]), int(segstart[z - 1] + seglen[z - 1])
    v = values[e0:e1]
    offs = np.repeat(np.arange(z - a, dtype=np.int64) * span, seglen[a:z])
    v -= offs  # later segments sit lower, so the running minimum restarts at each
    np.minimum.accumulate(v, out=v)
    v += offs


def _work(problem: DtwProblem) -> tuple[int, int]:
  """(border cells, wavefront steps) of one problem."""
  P, Q = len(problem.x_lengths), len(problem.y_lengths)
  cells = P * int(problem.y_lengths.sum()) + Q * int(problem.x_lengths.sum()) + 2 * P * Q
  return cells, P + Q - 1


def plan_batches(problems: Sequence[DtwProblem], target: Optional[int] = None) -> list[list[int]]:
  """Group problem indices into batches of similar wavefront length, about ``target`` border
  cells per step each (default :data:`TARGET_STEP_ELEMENTS`: large enough to amortise Python,
  small enough to stay in cache)."""
  target = TARGET_STEP_ELEMENTS if target is None else target
  work = [_work(p) for p in problems]
  order = sorted(range(len(problems)), key=lambda i: -work[i][1])
  batches, current, load = [], [], 0.0
  for i in order:
    cells, steps = work[i]
    per_step = cells / max(steps, 1)
    if current and load + per_step > target:
      batches.append(current)
      current, load = [], 0.0
    current.append(i)
    load += per_step
  if current:
    batches.append(current)
  return batches


def _span(problems: Sequence[DtwProblem]) -> tuple[int, int, int]:
  """(infinity, value span, largest cost) of a batch: every finite DP value is below infinity,
  every value the wavefront meets (minus a prefix-min offset) within the span."""
  maxc = max(int(p.costs.max()) for p in problems)
  n_m = max(int(p.x_lengths.sum()) + int(p.y_lengths.sum()) for p in problems)
  maxlen = max(int(max(p.x_lengths.max(), p.y_lengths.max())) for p in problems) + 1
  inf = n_m * maxc + 1
  return inf, inf + maxc * maxlen + 1, maxc


def _solve_batch(problems: Sequence[DtwProblem]) -> list[float]:
  """DTW values of a batch; a batch whose pairs together would leave int64 is split (each pair
  alone fits, by construction in :func:`dtw_problem`)."""
  if len(problems) > 1 and _span(problems)[1] >= _LIMIT:
    half = len(problems) // 2
    return _solve_batch(problems[:half]) + _solve_batch(problems[half:])
  if dtw_compiled.AVAILABLE and USE_COMPILED:
    values = [int(dtw_compiled.dtw_one(p.x_lengths, p.y_lengths, p.costs)) for p in problems]
  else:
    values = dtw_blocks(problems).tolist()
  return [float(v) * p.unit for v, p in zip(values, problems)]


class _Pending:
  """DTW results being computed: in a pool (asynchronously) or here (on ``get``)."""

  def __init__(self, problems: Sequence[DtwProblem], workers: int,
               pool: Optional[multiprocessing.pool.Pool]):
    self.size = len(problems)
    self.batches = plan_batches(problems)
    # Largest first, so that the last batches to finish are small.
    self.batches.sort(key=lambda b: -sum(_work(problems[i])[0] for i in b))
    self.jobs = [[problems[i] for i in batch] for batch in self.batches]
    self.own_pool = None
    if pool is None and workers > 1 and len(self.jobs) > 1:
      pool = self.own_pool = multiprocessing.get_context('spawn').Pool(
          min(workers, len(self.jobs)))
    self.async_result = (pool.map_async(_solve_batch, self.jobs, chunksize=1)
                         if pool is not None and len(self.jobs) > 1 else None)

  def get(self) -> np.ndarray:
    try:
      results = (self.async_result.get() if self.async_result is not None
                 else [_solve_batch(job) for job in self.jobs])
    finally:
      if self.own_pool is not None:
        self.own_pool.close()
        self.own_pool.join()
    out = np.full(self.size, np.nan)
    for batch, values in zip(self.batches, results):
      out[batch] = values
    return out


def dtw_many(problems: Sequence[DtwProblem], workers: int = 1,
             pool: Optional[multiprocessing.pool.Pool] = None) -> np.ndarray:
  """DTW of the original series of each problem (float64 ``[len(problems)]``), its batches
  spread over ``pool`` or over a new pool of ``workers`` processes (1 = this process)."""
  return _Pending(problems, workers, pool).get()


@dataclasses.dataclass(frozen=True)
class MelodyDistances:
  values: np.ndarray  # float64 [pairs]; NaN where undefined
  error_bounds: np.ndarray  # float64 [pairs]; 0 where exact
  reasons: list[str]  # '' or why the value is NaN


class PendingMelodyDistances:
  """MD being computed (see :func:`start_melody_distances`); ``get()`` waits for it."""

  def __init__(self, reference_runs, generated_runs, workers, pool):
    if len(reference_runs) != len(generated_runs):
      raise ValueError('melody_distances: reference_runs and generated_runs differ in length')
    n = len(reference_runs)
    self.reasons = [''] * n
    problems, self.where = [], []
    for k, ((xv, xl), (yv, yl)) in enumerate(zip(reference_runs, generated_runs)):
      if len(xv) == 0 or len(yv) == 0:
        side = 'reference' if len(xv) == 0 else 'generated'
        self.reasons[k] = f'empty MD series ({side}: every note shorter than 10 ticks)'
        continue
      problems.append(dtw_problem(xv, xl, yv, yl))
      self.where.append(k)
    self.bounds = np.array([p.error_bound for p in problems])
    self.gen_len = np.array([float(np.sum(generated_runs[k][1])) for k in self.where])
    self.n = n
    self.pending = _Pending(problems, workers, pool)

  def get(self) -> MelodyDistances:
    dtw = self.pending.get()
    values, bounds = np.full(self.n, np.nan), np.zeros(self.n)
    if self.where:
      values[self.where] = dtw / self.gen_len
      bounds[self.where] = self.bounds / self.gen_len
    return MelodyDistances(values, bounds, self.reasons)


def start_melody_distances(reference_runs: Sequence[tuple[np.ndarray, np.ndarray]],
                           generated_runs: Sequence[tuple[np.ndarray, np.ndarray]],
                           workers: int = 1,
                           pool: Optional[multiprocessing.pool.Pool] = None
                           ) -> PendingMelodyDistances:
  """Like :func:`melody_distances`, but returns at once when a pool computes the DTW, so the
  caller can work meanwhile; ``.get()`` gives the :class:`MelodyDistances`."""
  return PendingMelodyDistances(reference_runs, generated_runs, workers, pool)


def melody_distances(reference_runs: Sequence[tuple[np.ndarray, np.ndarray]],
                     generated_runs: Sequence[tuple[np.ndarray, np.ndarray]],
                     workers: int = 1,
                     pool: Optional[multiprocessing.pool.Pool] = None) -> MelodyDistances:
  """MD of each (reference, generated) pair from their MD series in run-length form.

  Args:
    reference_runs, generated_runs: per pair ``(values, lengths)`` as ``features.md_runs``.
    workers: processes for the DTW batches (1 = this process).
    pool: an existing process pool to use instead.

  Returns:
    ``MelodyDistances``: ``DTW / len(generated series)`` per pair, NaN with a reason when a
    series is empty (every note shorter than the 10-tick unit).
  """
  return start_melody_distances(reference_runs, generated_runs, workers, pool).get()
