"""benchmarks/train_bench.py's FLOP counting: the counted and useful conventions of its MFU."""

import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import train_bench  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from songglm_jax.model import ModelConfig  # noqa: E402  pylint: disable=g-import-not-at-top


def test_allowed_pairs_counts_the_glm_rule_by_hand():
  # Row 0: one example, Part A of 2 then Part B of 2, then 2 padding tokens. Part A queries see
  # the 2 Part A keys (4 pairs); Part B queries see Part A plus Part B up to themselves (3 + 4).
  # Row 1: two examples of one Part A token each (1 + 1 pairs), then padding.
  batch = {'segment_ids': np.array([[1, 1, 1, 1, 0, 0], [1, 2, 0, 0, 0, 0]], np.int32),
           'is_part_a': np.array([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], bool)}
  assert train_bench.allowed_pairs(batch) == 4 + 3 + 4 + 1 + 1


def test_useful_flops_equal_counted_when_every_pair_is_allowed_and_shrink_with_pairs():
  cfg = ModelConfig(d_model=64, num_layers=2, num_heads=4, d_ff=128, max_len=32)
  counted = train_bench.model_flops_per_step(cfg, 2, 32)
  assert train_bench.model_flops_per_step(cfg, 2, 32, 2 * 32 * 32) == counted
  fewer = train_bench.model_flops_per_step(cfg, 2, 32, 100)
  assert counted - fewer == 3 * 2 * 4 * 64 * (2 * 32 * 32 - 100)
