"""The console table, ``result.json`` and the comparison plots of an evaluation."""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Mapping, Sequence

import numpy as np

from songglm_jax.metrics import features
from songglm_jax.music.song import Song

_ROWS = (
    ('OA(A)', 'OA_A', 100), ('OA(PCH)', 'OA_PCH', 100), ('OA(IOI)', 'OA_IOI', 100),
    ('OA(DD)', 'OA_DD', 100), ('MD', 'MD', 1),
    ('AA', 'AA', 100), ('AA notes |diff|', 'AA_notes_abs_diff', 1),
    ('SBA generated', 'SBA_generated', 100), ('SBA reference', 'SBA_reference', 100),
    ('SPA generated', 'SPA_generated', 100), ('SPA reference', 'SPA_reference', 100),
    ('PEA generated', 'PEA_generated', 100), ('PEA reference', 'PEA_reference', 100),
)


def _nan_to_none(obj):
  if isinstance(obj, float) and math.isnan(obj):
    return None
  if isinstance(obj, dict):
    return {k: _nan_to_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_nan_to_none(v) for v in obj]
  return obj


def json_ready(result: dict) -> dict:
  """The result with NaN as None (``null``), so the file is strict JSON."""
  return _nan_to_none(result)


def table(result: Mapping) -> str:
  """Metric | mean +- std over sample sets; OA, AA and the fractions in percent. A result with
  a ``warning`` (generated songs missing) shows it above and below the table."""
  lines = [f'{"metric":<18} {"mean":>9}   {"std":>7}',
           '-' * 38]
  for label, key, scale in _ROWS:
    mean, std = result.get(key), result.get(f'{key}_std')
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
      lines.append(f'{label:<18} {"nan":>9}   ({result.get("nan_reasons", {}).get(key, "")})')
      continue
    unit = '%' if scale == 100 else ' '
    lines.append(f'{label:<18} {mean * scale:>8.2f}{unit} +- {std * scale:>6.2f}')
  lines.append('-' * 38)
  if result.get('warning'):
    lines.insert(0, f'WARNING: {result["warning"]}')
    lines.append(f'WARNING: {result["warning"]}')
  lines.append(f'pairs {result.get("num_pairs")} in {result.get("num_sample_sets")} sample '
               f'set(s); misaligned pairs {result.get("misaligned_pairs", 0)}; skipped files '
               f'{len(result.get("skipped_files", []))}; unpaired generated '
               f'{len(result.get("unpaired", {}).get("generated", []))}, reference '
               f'{len(result.get("unpaired", {}).get("reference", []))}')
  return '\n'.join(lines)


def write_json(result: Mapping, path: str | os.PathLike) -> dict:
  """Write ``result`` as strict JSON (NaN as null), atomically; returns the value written
  (:func:`json_ready`)."""
  from songglm_jax import atomic
  ready = json_ready(dict(result))
  text = json.dumps(ready, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
  atomic.write_text(path, text + '\n')
  return ready


def write_plots(folder: str | os.PathLike, generated_sets: Sequence[Mapping[str, Song]],
                reference: Mapping[str, Song]) -> list[pathlib.Path]:
  """PNGs comparing the generated songs (all sets pooled) with the reference songs:
  ``alignment.png`` (notes per syllable), ``pitch_classes.png``, ``durations.png`` (the duration
  classes that occur), ``ioi.png`` (mean inter-onset interval per song, each set as a share of its
  songs: :func:`ioi_histogram`). Returns the paths."""
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt

  out = pathlib.Path(folder)
  out.mkdir(parents=True, exist_ok=True)
  gen = features.feature_matrices([s for g in generated_sets for s in g.values()])
  ref = features.feature_matrices(list(reference.values()))
  written = []

  def bars(name, title, labels, g_vals, r_vals, xlabel, ylabel):
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(labels) + 2), 3.6))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, g_vals, 0.4, label='generated')
    ax.bar(x + 0.2, r_vals, 0.4, label='reference')
    ax.set_xticks(x, labels, rotation=90 if len(labels) > 12 else 0)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)

  def share(m):
    total = m.sum()
    return m.sum(axis=0) / total if total else np.zeros(m.shape[1])

  bars('alignment.png', 'Notes per syllable (A)', ['1', '2', '3', '4', '5', '>=6'],
       share(gen['A']), share(ref['A']), 'notes', 'share of syllables')
  names = ['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B']
  bars('pitch_classes.png', 'Pitch classes (PCH, mean over songs)', names,
       _mean(gen['PCH']), _mean(ref['PCH']), 'pitch class', 'share of notes')
  g_dd, r_dd = _mean(gen['DD']), _mean(ref['DD'])
  used = np.flatnonzero((g_dd > 0) | (r_dd > 0))
  bars('durations.png', 'Durations (DD, mean over songs)',
       [str(int(d)) for d in features.DURATION_CLASSES[used]], g_dd[used], r_dd[used],
       'duration (ticks, 480 per quarter)', 'share of notes')
  fig, ax = plt.subplots(figsize=(6.0, 3.6))
  h = ioi_histogram(gen['IOI'][:, 0], ref['IOI'][:, 0])
  for key in ('generated', 'reference'):
    ax.stairs(h[key], h['edges'], fill=True, alpha=0.6,
              label=f'{key} ({h[key + "_songs"]} songs, median {h[key + "_median"]:.0f})')
  ax.set(title='Mean inter-onset interval per song (IOI)', xlabel='ticks (480 per quarter)',
         ylabel='share of songs')
  ax.legend()
  fig.tight_layout()
  fig.savefig(out / 'ioi.png', dpi=120)
  plt.close(fig)
  written.append(out / 'ioi.png')
  return written


def ioi_histogram(generated: np.ndarray, reference: np.ndarray, bins: int = 30) -> dict:
  """What ``ioi.png`` draws: both sets' mean IOI per song on shared bin edges, each as a share of
  its own songs (the generated songs of every sample set pooled outnumber the reference songs
  by the number of sets; counts would hide where the two lie), with their medians.

  Returns:
    ``{'edges': [bins + 1], 'generated': [bins], 'reference': [bins]`` (each summing to 1, zeros
    for an empty set), ``'generated_median'``, ``'reference_median'`` (NaN when empty),
    ``'generated_songs'``, ``'reference_songs'``}.
  """
  generated = np.asarray(generated, np.float64)
  reference = np.asarray(reference, np.float64)
  both = np.concatenate([generated, reference])
  lo, hi = (both.min(), both.max()) if len(both) else (0.0, 1.0)
  edges = np.linspace(lo, max(hi, lo + 1.0) + 1e-9, bins + 1)
  out = {'edges': edges}
  for key, values in (('generated', generated), ('reference', reference)):
    counts = np.histogram(values, bins=edges)[0].astype(np.float64)
    out[key] = counts / len(values) if len(values) else counts
    out[key + '_median'] = float(np.median(values)) if len(values) else float('nan')
    out[key + '_songs'] = len(values)
  return out


def _mean(m: np.ndarray) -> np.ndarray:
  return m.mean(axis=0) if len(m) else np.zeros(m.shape[1])
