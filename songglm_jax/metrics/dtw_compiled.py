"""The block DTW of ``distance.py`` compiled with numba, one pair at a time.

Same problem, same exact int64 result as ``distance.dtw_blocks`` (tested against it and the
oracle). The DP grid is cut into P x Q blocks of constant cost (run x run); blocks are visited
row by row, each turning its input border -- the row above ``T[1..s]``, the column to its left
``L[1..r]`` and their corner ``T[0] = L[0] = C`` -- into its output border: bottom row
``B[1..s]`` and right column ``R[1..r]``. With cost ``c`` per cell of the block and a path from a
border cell to ``(u, v)`` needing ``max(du, dv)`` cells of the block:

    B[v] = min( min_{v' <= v} T[v'] + c max(r, v - v'),  min_{u' <= r} L[u'] + c max(r - u', v) )
    R[u] = min( min_{u' <= u} L[u'] + c max(s, u - u'),  min_{v' <= s} T[v'] + c max(s - v', u) )

Each term splits where the ``max`` switches sides into a running minimum and one border value
(the borders are non-decreasing away from the corner, see :func:`_edge`), so a block costs
O(r + s) -- the same work as the NumPy wavefront, without its temporaries.

numba is optional: :data:`AVAILABLE` is False without it and ``distance.py`` keeps the NumPy
wavefront. Compiled code is cached next to this file (``cache=True``).
"""

from __future__ import annotations

import numpy as np

try:
  import numba
except ImportError:  # pragma: no cover - numba is in requirements.txt
  numba = None

AVAILABLE = numba is not None
INF = 1 << 62  # above every DP value (dtw_problem keeps them below 2**61)


def _edge(first: np.ndarray, other: np.ndarray, n_first: int, n_other: int, c: int,
          out: np.ndarray) -> None:
  """``out[k] = min( min_{k' <= k} first[k'] + c max(n_other, k - k'),
                     min_{j <= n_other} other[j] + c max(n_other - j, k) )`` for k = 1..n_first.

  ``first``/``other`` are borders with the shared corner at index 0. Both are non-decreasing
  from index 1 on (``distance.py``: inside one run of columns the values along a row never
  decrease, likewise down a column), so the minimum of a border over ``[a, b]`` with ``a >= 1``
  is its value at ``a``, and with ``a = 0`` the smaller of the corner and index 1.
  """
  corner_first = first[0] if first[0] < first[1] else first[1]
  corner_other = other[0] if other[0] < other[1] else other[1]
  best1 = INF  # min_{k' < k - n_other} first[k'] - c k'
  best2 = INF  # min_{j < n_other - k} other[j] - c j, filled from the top k downwards
  for k in range(1, n_first + 1):
    lo = k - n_other
    v = c * n_other + (first[lo] if lo >= 1 else corner_first)
    if lo >= 1:
      t = first[lo - 1] - c * (lo - 1)
      if t < best1:
        best1 = t
      w = c * k + best1
      if w < v:
        v = w
    out[k] = v
  j_done = -1  # best2 covers other[0 .. j_done]
  for k in range(n_first, 0, -1):
    start = n_other - k
    v = c * k + (other[start] if start >= 1 else corner_other)
    if start >= 1:
      while j_done + 1 < start:
        j_done += 1
        t = other[j_done] - c * j_done
        if t < best2:
          best2 = t
      w = c * n_other + best2
      if w < v:
        v = w
    if v < out[k]:
      out[k] = v


def _dtw(x_lengths: np.ndarray, y_lengths: np.ndarray, costs: np.ndarray) -> int:
  """Exact DP value of one problem (``distance.DtwProblem`` fields)."""
  P, Q = x_lengths.shape[0], y_lengths.shape[0]
  m = 0
  for q in range(Q):
    m += y_lengths[q]
  rmax = 0
  for p in range(P):
    if x_lengths[p] > rmax:
      rmax = x_lengths[p]
  smax = 0
  for q in range(Q):
    if y_lengths[q] > smax:
      smax = y_lengths[q]
  size = max(rmax, smax) + 2
  bot_prev = np.full(m, INF, np.int64)   # bottom row of the previous block row
  bot_cur = np.full(m, INF, np.int64)
  left = np.full(rmax + 1, INF, np.int64)   # L[0..r] of the current block
  top = np.full(smax + 1, INF, np.int64)    # T[0..s]
  out_b = np.full(size, INF, np.int64)
  out_r = np.full(size, INF, np.int64)
  result = INF
  for p in range(P):
    r = x_lengths[p]
    for u in range(1, r + 1):
      left[u] = INF  # column -1 does not exist
    c0 = 0
    for q in range(Q):
      s = y_lengths[q]
      c = costs[p, q]
      if p == 0:
        corner = 0 if q == 0 else INF  # the virtual cell before the first one
        for v in range(1, s + 1):
          top[v] = INF
      else:
        corner = INF if q == 0 else bot_prev[c0 - 1]
        for v in range(1, s + 1):
          top[v] = bot_prev[c0 + v - 1]
      top[0] = corner
      left[0] = corner
      _edge_c(top, left, s, r, c, out_b)   # bottom row B[1..s]
      _edge_c(left, top, r, s, c, out_r)   # right column R[1..r]
      for v in range(1, s + 1):
        bot_cur[c0 + v - 1] = out_b[v] if out_b[v] < INF else INF
      for u in range(1, r + 1):
        left[u] = out_r[u] if out_r[u] < INF else INF
      if p == P - 1 and q == Q - 1:
        result = out_b[s]
      c0 += s
    bot_prev, bot_cur = bot_cur, bot_prev
  return result


if AVAILABLE:
  _edge_c = numba.njit(cache=True, nogil=True)(_edge)
  dtw_one = numba.njit(cache=True, nogil=True)(_dtw)
else:  # pragma: no cover
  _edge_c = _edge
  dtw_one = _dtw
