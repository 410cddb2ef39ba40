"""The optimizer: global-norm clipping, then AdamW on a one-cycle schedule.

* schedule (one-cycle): linear warm-up to ``learning_rate`` over the first ``warmup_fraction``
  of the steps (update s < W uses ``learning_rate * (s + 1) / W``, so no update is wasted at
  rate 0), then cosine decay reaching ``end_lr_fraction * learning_rate`` at the last update;
* AdamW (b1, b2, eps) with decoupled weight decay on matrices only (parameters of rank >= 2:
  dense kernels and embedding tables; not biases or LayerNorm scales). The stacking axis of
  scanned layers (logical name 'layers') does not count towards the rank.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping, Optional

import jax
import optax
from flax import nnx

COMMON_FIELDS = ('b1', 'b2', 'eps', 'weight_decay', 'clip_norm', 'end_lr_fraction')
STAGE_FIELDS = ('learning_rate', 'warmup_fraction', 'num_train_steps', 'grad_accum_steps')


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Optimizer settings of one training stage (see :meth:`from_config`)."""
  learning_rate: float = 2e-4
  warmup_fraction: float = 0.2
  num_train_steps: int = 1000
  grad_accum_steps: int = 1
  b1: float = 0.9
  b2: float = 0.98
  eps: float = 1e-6
  weight_decay: float = 0.01
  clip_norm: float = 1.0
  end_lr_fraction: float = 0.0

  def __post_init__(self):
    check_values(dataclasses.asdict(self))

  @classmethod
  def from_config(cls, optim: Mapping[str, Any], stage: Mapping[str, Any],
                  stage_name: str = '') -> 'OptimConfig':
    """From ``config.optim`` (:data:`COMMON_FIELDS`) and a stage section such as
    ``config.pretrain`` (:data:`STAGE_FIELDS`; ``stage_name`` = 'pretrain' names it in errors).
    Every field must be present and valid (:func:`check_values`)."""
    kw, shown = {}, {}
    where_stage = f'config.{stage_name}' if stage_name else 'stage section'
    for section, names, where in ((optim, COMMON_FIELDS, 'config.optim'),
                                  (stage, STAGE_FIELDS, where_stage)):
      missing = [n for n in names if n not in section]
      if missing:
        raise ValueError(f'{where}: missing field(s) {missing}')
      kw.update({n: section[n] for n in names})
      shown.update({n: f'{where}.{n}' for n in names})
    check_values(kw, shown)
    return cls(**kw)


# field -> (test, what is expected); every value is first checked to be a finite number
_RULES = {
    'learning_rate': (lambda v: v > 0, 'a finite number > 0'),
    'clip_norm': (lambda v: v > 0, 'a finite number > 0'),
    'warmup_fraction': (lambda v: 0 <= v <= 1, 'a finite number in [0, 1]'),
    'b1': (lambda v: 0 <= v < 1, 'a finite number in [0, 1)'),
    'b2': (lambda v: 0 <= v < 1, 'a finite number in [0, 1)'),
    'eps': (lambda v: v >= 0, 'a finite number >= 0'),
    'weight_decay': (lambda v: v >= 0, 'a finite number >= 0'),
    'end_lr_fraction': (lambda v: v >= 0, 'a finite number >= 0'),
    'num_train_steps': (lambda v: v >= 1 and float(v).is_integer(), 'a whole number >= 1'),
    'grad_accum_steps': (lambda v: v >= 1 and float(v).is_integer(), 'a whole number >= 1'),
}


def check_values(values: Mapping[str, Any], shown: Optional[Mapping[str, str]] = None) -> None:
  """Check optimizer settings (any subset of :class:`OptimConfig`'s fields) before training.

  Args:
    shown: field -> the name to show in the error (e.g. 'config.pretrain.learning_rate').

  Raises:
    ValueError: the first bad value (NaN and infinities are bad everywhere), naming the field.
  """
  shown = shown or {}
  for name, value in values.items():
    test, expected = _RULES.get(name, (lambda v: True, 'a finite number'))
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(
        value) and test(value)
    if not ok:
      raise ValueError(f'{shown.get(name, "optimizer: " + name)}={value!r}: expected {expected}')


def make_schedule(cfg: OptimConfig) -> optax.Schedule:
  """Learning rate of the update at optimizer step s = 0, 1, ... (see module docstring)."""
  warmup = int(round(cfg.warmup_fraction * cfg.num_train_steps))
  peak, end = cfg.learning_rate, cfg.learning_rate * cfg.end_lr_fraction
  if warmup >= cfg.num_train_steps:
    base = optax.linear_schedule(0.0, peak, max(warmup, 1))
  else:
    base = optax.warmup_cosine_decay_schedule(0.0, peak, warmup, cfg.num_train_steps, end)
  return lambda step: base(step + 1)


def decay_mask(params: Any) -> Any:
  """True on parameters that get weight decay: rank >= 2 not counting a 'layers' axis."""
  def one(x):
    if isinstance(x, nnx.Variable):
      axes = x.get_metadata().get('out_sharding') or ()
      return x.replace(x.get_value().ndim - sum(a == 'layers' for a in axes) >= 2)
    return x.ndim >= 2
  return jax.tree.map(one, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def make_optimizer(cfg: OptimConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(clip + AdamW transformation, its learning-rate schedule)."""
  schedule = make_schedule(cfg)
  tx = optax.chain(
      optax.clip_by_global_norm(cfg.clip_norm),
      optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
                  mask=decay_mask))
  return tx, schedule
