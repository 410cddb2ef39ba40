"""Counter-based random draws of the masking: every number is a hash of a key and a counter.

An example's 64-bit key comes from ``(seed, epoch, record index, window index)``
(:func:`example_keys`); each decision draws from its own stream (``STREAM_*``) with a counter
(:func:`uniforms`). So an example's draws depend only on those numbers -- not on which other
records share its batch, the batch size, the number of workers or the process -- and the plain-loop
reference (``masking_reference.py``) reproduces them exactly.
"""

from __future__ import annotations

import numpy as np

# Stream ids of the counter-based random draws (one per decision, see module docstring).
STREAM_TASK, STREAM_SONG, STREAM_PHRASE, STREAM_NGRAM = 1, 2, 3, 4
STREAM_T5_CUTS, STREAM_T5_GAPS, STREAM_SHUFFLE = 5, 6, 7

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM_MUL = np.uint64(0xD1B54A32D192ED03)


def _mix(x: np.ndarray) -> np.ndarray:
  """The splitmix64 finalizer on a uint64 array (a bijection with good avalanche)."""
  x = x ^ (x >> np.uint64(30))
  x = x * np.uint64(0xBF58476D1CE4E5B9)
  x = x ^ (x >> np.uint64(27))
  x = x * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


def _u64(v) -> np.ndarray:
  a = np.atleast_1d(np.asarray(v))
  if a.dtype != np.uint64:
    a = a.astype(np.int64).astype(np.uint64)  # two's complement for negative values
  return a


def example_keys(seed: int, epoch, record_index, window=0) -> np.ndarray:
  """64-bit key of each example: uint64 ``[M]`` from broadcastable ints."""
  with np.errstate(over='ignore'):
    k = _mix(_u64(seed) + _GOLDEN)
    for v in (epoch, record_index, window):
      k = _mix(k + (_u64(v) + np.uint64(1)) * _GOLDEN)
  return k


def uniforms(keys, stream: int, counters) -> np.ndarray:
  """Uniform floats in [0, 1) (float64, 53 random bits), one per (key, counter) pair.

  ``keys`` (uint64) and ``counters`` (ints >= 0) broadcast against each other.
  """
  with np.errstate(over='ignore'):
    base = _mix(_u64(keys) + np.uint64(stream) * _STREAM_MUL)
    h = _mix(base + (_u64(counters) + np.uint64(1)) * _GOLDEN)
  return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
