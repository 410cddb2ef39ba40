"""How much one song moves an OA metric: each OA with every pair, and with one song left out.

OA(X) (``metrics/overlap.py``) fits a KDE with Scott's bandwidth to the generated-to-generated and
to the generated-to-reference distances. One reference song far from all others (a song sung in
whole notes among songs in eighths) adds large values to the second set only: they widen its
bandwidth and move its mass, and OA falls although every other song is unchanged. Whether a
change of method moved OA or only moved it against such a song is then a question of one song.

:func:`oa_influence` answers it: for each feature and each song name it leaves that name's
reference song and its generated songs out of every sample set and recomputes OA, so a large
gain names the song that holds the metric down. The features are computed once per set and the
distances (``overlap.distance_sets``) once per set and feature; leaving a song out deletes its
row and column.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from songglm_jax.metrics import features, overlap
from songglm_jax.metrics.evaluation import set_std
from songglm_jax.music.song import Song

TOP = 3  # songs listed per feature


def _oa(intra: np.ndarray, inter: np.ndarray) -> float:
  return overlap.overlap_area(intra.ravel(), inter.ravel()).value


def oa_influence(reference: Mapping[str, Song],
                 sample_sets: Sequence[tuple[str, Mapping[str, Song]]],
                 top: int = TOP) -> dict:
  """Each OA over every pair, and the songs whose leaving out raises it most.

  Args:
    reference: ``{song name: Song}``.
    sample_sets: ``[(set name, {song name: Song})]``; a set's pairs are its songs with a
      reference song of the same name (as the evaluation pairs them).
    top: how many songs to list per feature.

  Returns:
    ``{'OA_<F>': {'all': mean OA over the sets, 'all_std', 'songs': [{'song', 'without',
    'without_std', 'gain', 'value'}]}}`` for each feature F of ``features.FEATURES``:
    ``without`` is the mean over the sets of OA without that song (and its generated songs),
    the ``*_std`` the sample std over the sets (``evaluation.set_std``), ``gain`` its
    difference to ``all``, ``value`` the reference song's feature (the mean IOI in ticks for
    IOI; None for the histogram features); the ``top`` largest gains first (NaN gains last: OA
    is NaN where a distance set has no spread, ``overlap.overlap_area``). Fractions as the
    evaluation reports them (0..1). Sets with fewer than 3 pairs are left out (OA of 2 songs
    without one is undefined).

  Raises:
    ValueError: no set has 3 or more pairs.
  """
  pairs = [sorted(set(g) & set(reference)) for _, g in sample_sets]
  used = [(g, p) for (_, g), p in zip(sample_sets, pairs) if len(p) >= 3]
  if not used:
    raise ValueError('oa_influence: no sample set has 3 or more songs with a reference song')
  names = sorted({n for _, p in used for n in p})
  ref_rows = features.feature_matrices([reference[n] for n in names])
  index = {n: i for i, n in enumerate(names)}
  gen_rows = [features.feature_matrices([g[n] for n in p]) for g, p in used]  # once per set
  out = {}
  for feature in features.FEATURES:
    all_oa, without = [], {n: [] for n in names}
    for rows_of_set, (_, p) in zip(gen_rows, used):
      # The evaluation's distance sets, as square matrices: leaving a song out deletes its row
      # and column.
      intra, inter = (d.reshape(len(p), len(p)) for d in overlap.distance_sets(
          rows_of_set[feature], np.asarray(ref_rows[feature])[[index[n] for n in p]]))
      all_oa.append(_oa(intra, inter))
      for i, n in enumerate(p):
        keep = np.arange(len(p)) != i
        without[n].append(_oa(intra[np.ix_(keep, keep)], inter[np.ix_(keep, keep)]))
    all_oa = np.asarray(all_oa, np.float64)
    base = float(np.nanmean(all_oa)) if not np.all(np.isnan(all_oa)) else float('nan')
    rows = []
    for n in names:
      v = np.asarray(without[n], np.float64)
      if v.size and not np.all(np.isnan(v)):
        w = float(np.nanmean(v))
        value = float(ref_rows[feature][index[n]][0]) if feature == 'IOI' else None
        rows.append({'song': n, 'without': w, 'without_std': set_std(v[~np.isnan(v)]),
                     'gain': w - base, 'value': value})
    rows.sort(key=lambda r: (-r['gain'] if r['gain'] == r['gain'] else math.inf, r['song']))
    out[f'OA_{feature}'] = {'all': base, 'all_std': set_std(all_oa[~np.isnan(all_oa)]),
                            'songs': rows[:top]}
  return out
