"""Bars and positions from a time-signature map, vectorized.

A time-signature map is an int64 array ``[K, 3]`` of rows ``(tick, numerator, denominator)``,
ticks at ``TPQ`` = 480 per quarter note, the first row at tick 0, ticks strictly increasing. Every
row starts a new bar (a change in the middle of a bar cuts that bar short, as MIDI players do).
"""

from __future__ import annotations

import numpy as np

TPQ = 480  # ticks per quarter note after normalisation

DEFAULT_TIME_SIGNATURES = np.array([[0, 4, 4]], dtype=np.int64)


def bar_lengths(time_signatures: np.ndarray) -> np.ndarray:
  """Bar length in ticks of each row of a time-signature map: ``[K]`` int64."""
  ts = np.asarray(time_signatures, dtype=np.int64)
  return ts[:, 1] * (4 * TPQ) // ts[:, 2]


def beat_lengths(time_signatures: np.ndarray) -> np.ndarray:
  """Beat length in ticks (one denominator unit) of each row: ``[K]`` int64."""
  ts = np.asarray(time_signatures, dtype=np.int64)
  return (4 * TPQ) // ts[:, 2]


def first_bars(time_signatures: np.ndarray) -> np.ndarray:
  """Index of the first bar of each row's segment: ``[K]`` int64 (0 for the first row)."""
  ts = np.asarray(time_signatures, dtype=np.int64)
  lengths = bar_lengths(ts)
  spans = np.diff(ts[:, 0])
  bars_per_segment = -(-spans // lengths[:-1])  # ceil: a cut-short bar still counts as a bar
  return np.concatenate([[0], np.cumsum(bars_per_segment)]).astype(np.int64)


def segment_of(ticks: np.ndarray, time_signatures: np.ndarray) -> np.ndarray:
  """Row of the map in force at each tick: ``[N]`` int64."""
  ts = np.asarray(time_signatures, dtype=np.int64)
  return np.searchsorted(ts[:, 0], np.asarray(ticks), side='right') - 1


def bar_and_position(ticks: np.ndarray, time_signatures: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Bar index and tick offset inside the bar of each tick (``[N]`` int64 each)."""
  ts = np.asarray(time_signatures, dtype=np.int64)
  ticks = np.asarray(ticks, dtype=np.int64)
  k = segment_of(ticks, ts)
  rel = ticks - ts[k, 0]
  length = bar_lengths(ts)[k]
  return first_bars(ts)[k] + rel // length, rel % length


def bar_start(bars: np.ndarray, time_signatures: np.ndarray) -> np.ndarray:
  """Tick at which each bar index starts (inverse of :func:`bar_and_position`)."""
  ts = np.asarray(time_signatures, dtype=np.int64)
  bars = np.asarray(bars, dtype=np.int64)
  starts = first_bars(ts)
  k = np.searchsorted(starts, bars, side='right') - 1
  return ts[k, 0] + (bars - starts[k]) * bar_lengths(ts)[k]


def bar_length_at(ticks: np.ndarray, time_signatures: np.ndarray) -> np.ndarray:
  """Length in ticks of the bar containing each tick."""
  ts = np.asarray(time_signatures, dtype=np.int64)
  return bar_lengths(ts)[segment_of(ticks, ts)]


def validate_time_signatures(time_signatures: np.ndarray) -> np.ndarray:
  """Return the map as int64 ``[K, 3]`` or raise ``ValueError`` saying what is wrong."""
  ts = np.asarray(time_signatures)
  if ts.ndim != 2 or ts.shape[1] != 3 or len(ts) == 0:
    raise ValueError(f'time_signatures: expected shape [K>=1, 3], got {ts.shape}')
  ts = ts.astype(np.int64)
  if ts[0, 0] != 0:
    raise ValueError(f'time_signatures: the first row must be at tick 0, got {ts[0, 0]}')
  if np.any(np.diff(ts[:, 0]) <= 0):
    raise ValueError('time_signatures: ticks must be strictly increasing')
  if np.any(ts[:, 1] < 1) or np.any(ts[:, 1] > 64):
    raise ValueError(f'time_signatures: numerators must be in 1..64, got {ts[:, 1].tolist()}')
  den = ts[:, 2]
  if np.any(den < 1) or np.any(den > 64) or np.any(den & (den - 1)):
    raise ValueError(f'time_signatures: denominators must be powers of two up to 64, '
                     f'got {den.tolist()}')
  return ts
