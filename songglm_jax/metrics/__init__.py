"""Objective metrics of generated songs: the paper's OA(A/PCH/IOI/DD) and MD, lyric-aware metrics
(AA, SBA, SPA, PEA), the report and plots.

Entry points: :func:`evaluate_dirs` (song files on disk, as ``python -m songglm_jax.evaluate``)
and :func:`evaluate_sets` (songs in memory, for the training program). The modules are imported
on first use, so that worker processes importing ``metrics.distance`` stay light.
"""

from __future__ import annotations


def evaluate_dirs(generated, reference, *, workers: int = 1, plots=None) -> dict:
  """See :func:`songglm_jax.metrics.evaluation.evaluate_dirs`."""
  from songglm_jax.metrics import evaluation
  return evaluation.evaluate_dirs(generated, reference, workers=workers, plots=plots)


def evaluate_sets(sample_sets, reference, *, workers: int = 1) -> dict:
  """See :func:`songglm_jax.metrics.evaluation.evaluate_sets`."""
  from songglm_jax.metrics import evaluation
  return evaluation.evaluate_sets(sample_sets, reference, workers=workers)
