"""Piano-roll pictures of songs with their syllables (matplotlib, Agg backend: no display)."""

from __future__ import annotations

import io
import os
from typing import Optional

import numpy as np

from songglm_jax import atomic
from songglm_jax.music import meter
from songglm_jax.music.song import Song

_NAMES = ('C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B')


def pitch_name(midi: int) -> str:
  """``60`` -> ``'C4'``."""
  return f'{_NAMES[midi % 12]}{midi // 12 - 1}'


def plot_song(song: Song, path: str | os.PathLike, *, title: str = '',
              highlight: Optional[np.ndarray] = None) -> None:
  """Write a PNG piano roll: one bar per note (x: quarter notes, y: MIDI pitch), bar lines,
  each syllable written above its first note, phrases in alternating colours; with
  ``highlight`` (bool [N], e.g. infilled notes) those notes in red."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel
  q = meter.TPQ
  on, dur = song.onset / q, song.duration / q
  end = float(song.offset.max()) / q
  lo, hi = int(song.pitch.min()), int(song.pitch.max())
  fig, ax = plt.subplots(figsize=(min(4 + 0.35 * end, 60), 4 + 0.08 * (hi - lo)), dpi=100)
  colours = ('tab:blue', 'tab:orange')
  phrase = song.note_phrase
  ax.barh(song.pitch, dur, left=on, height=0.8, align='center',
          color=['tab:red' if h else colours[p % 2] for p, h in zip(
              phrase, np.zeros(len(phrase), bool) if highlight is None else highlight)],
          edgecolor='black', linewidth=0.4)
  first = song.syllable_first_note
  for s, i in enumerate(first.tolist()):
    ax.text(on[i], song.pitch[i] + 0.6, song.syllables[s], fontsize=7, rotation=45,
            ha='left', va='bottom')
  bars = meter.bar_start(np.arange(int(meter.bar_and_position(
      np.array([int(song.offset.max())]), song.time_signatures)[0][0]) + 2),
      song.time_signatures) / q
  for x in bars[bars <= end + 1e-9]:
    ax.axvline(x, color='grey', linewidth=0.5, zorder=0)
  ticks = list(range(lo - lo % 12 + 12 if lo % 12 else lo, hi + 1, 12)) or [lo]
  ax.set_yticks(ticks, [pitch_name(t) for t in ticks])
  ax.set_ylim(lo - 1.5, hi + 4)
  ax.set_xlim(0, end + 0.5)
  ax.set_xlabel('quarter notes')
  ax.set_title(title or song.name, fontsize=9)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png')
  plt.close(fig)
  atomic.write_bytes(path, buf.getvalue())
