"""The device mesh (data, fsdp, tensor), the logical-axis rule table, and the shardings of
batches, parameters and optimizer state.

The rule table is the one place that maps the model's logical axis names (see
``model/sharding.py``) to mesh axes; it comes from ``config.mesh.rules`` as text::

    'batch=data+fsdp, embed=fsdp, mlp=tensor, heads=tensor, act_mlp=tensor, act_heads=tensor'

``name=a+b`` shards over mesh axes a and b, ``name=`` (or a name that is not listed) replicates.
Batches are split over data x fsdp; parameters (and the Adam moments, which carry the
parameters' annotations) are sharded over fsdp on their d_model axis and over tensor on MLP
hidden/head axes. Sizes of 1 make the corresponding parallelism a no-op, so one rule table
serves one CPU and a pod slice.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from songglm_jax.model import sharding as model_sharding

AXES = ('data', 'fsdp', 'tensor')
DEFAULT_RULES = ('batch=data+fsdp, length=, embed=fsdp, mlp=tensor, heads=tensor, head_dim=, '
                 'qkv=, vocab=, norm=, act_embed=, act_mlp=tensor, act_heads=tensor')
Rules = tuple[tuple[str, tuple[str, ...]], ...]


def parse_rules(text: str) -> Rules:
  """'name=a+b, other=' -> (('name', ('a', 'b')), ('other', ())).

  Raises:
    ValueError: malformed entry, unknown mesh axis, or a name given twice.
  """
  rules, seen = [], set()
  for entry in (e.strip() for e in text.split(',')):
    if not entry:
      continue
    if entry.count('=') != 1:
      raise ValueError(f'config.mesh.rules: {entry!r} is not name=axis[+axis]')
    name, axes = (s.strip() for s in entry.split('='))
    mesh_axes = tuple(a.strip() for a in axes.split('+') if a.strip())
    bad = [a for a in mesh_axes if a not in AXES]
    if bad or not name or name in seen:
      raise ValueError(f'config.mesh.rules: {entry!r}: mesh axes must be in {AXES}, names unique')
    seen.add(name)
    rules.append((name, mesh_axes))
  return tuple(rules)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Mesh shape (-1 = the devices left over; at most one -1) and the logical rules text."""
  data: int = 1
  fsdp: int = -1
  tensor: int = 1
  rules: str = DEFAULT_RULES

  @classmethod
  def from_config(cls, section: Mapping[str, Any]) -> 'MeshConfig':
    """From ``config.mesh`` (fields data, fsdp, tensor, rules; all required)."""
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in section]
    if missing:
      raise ValueError(f'config.mesh: missing field(s) {missing}')
    return cls(**{f.name: section[f.name] for f in dataclasses.fields(cls)})

  def shape(self, num_devices: int) -> tuple[int, int, int]:
    """The (data, fsdp, tensor) sizes for ``num_devices`` devices.

    Raises:
      ValueError: the sizes do not multiply to ``num_devices``.
    """
    sizes = [self.data, self.fsdp, self.tensor]
    fill = [i for i, s in enumerate(sizes) if s == -1]
    if len(fill) > 1 or any(s == 0 or s < -1 for s in sizes):
      raise ValueError(f'config.mesh: sizes {dict(zip(AXES, sizes))}: positive, or one -1')
    known = math.prod(s for s in sizes if s != -1)
    if fill:
      if num_devices % known:
        raise ValueError(f'config.mesh: {num_devices} devices not divisible by {known}')
      sizes[fill[0]] = num_devices // known
    if math.prod(sizes) != num_devices:
      raise ValueError(f'config.mesh: {dict(zip(AXES, sizes))} needs {math.prod(sizes)} '
                       f'devices, have {num_devices}')
    return tuple(sizes)


def make_mesh(cfg: MeshConfig, devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A mesh over ``devices`` (default: all devices of all processes) with Auto axes."""
  devices = jax.devices() if devices is None else list(devices)
  shape = cfg.shape(len(devices))
  if devices == jax.devices():
    return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * 3)
  return Mesh(np.asarray(devices).reshape(shape), AXES, axis_types=(AxisType.Auto,) * 3)


class Plan:
  """A mesh plus the rule table: turns logical axes into shardings."""

  def __init__(self, mesh: Mesh, rules: Rules | str = DEFAULT_RULES):
    self.mesh = mesh
    self.rules = parse_rules(rules) if isinstance(rules, str) else tuple(rules)
    self._map = dict(self.rules)

  @classmethod
  def from_config(cls, section: Mapping[str, Any],
                  devices: Optional[Sequence[jax.Device]] = None) -> 'Plan':
    cfg = MeshConfig.from_config(section)
    return cls(make_mesh(cfg, devices), cfg.rules)

  def spec(self, logical: Sequence[Optional[str]]) -> PartitionSpec:
    """PartitionSpec of an array whose dims carry ``logical`` names (None = replicated)."""
    out, used = [], set()
    for name in logical:
      axes = tuple(a for a in self._map.get(name, ()) if a not in used) if name else ()
      used.update(axes)
      out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*out)

  def sharding(self, logical: Sequence[Optional[str]]) -> NamedSharding:
    return NamedSharding(self.mesh, self.spec(logical))

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def batch_sharding(self) -> NamedSharding:
    """Sharding of every batch array [B, ...] (any rank): B split by the 'batch' rule.

    One object serves a whole batch dict as a jit in_shardings prefix.
    """
    return self.sharding(('batch',))

  def tree_shardings(self, tree: Any) -> Any:
    """Shardings for a pytree holding nnx Variables (params, optimizer state, a train state).

    A Variable's ``out_sharding`` metadata (logical names) decides its sharding; every other
    array leaf is replicated. The result has the tree's structure (for jit in/out_shardings).
    """
    def one(x):
      if isinstance(x, nnx.Variable):
        names = x.get_metadata().get('out_sharding') or (None,) * x.get_value().ndim
        return x.replace(self.sharding(names))
      return self.replicated()
    return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))

  def activation_rules(self):
    """Context manager: model activations constrained by this plan while tracing."""
    return model_sharding.use_rules(self.sharding)

  def check_divisible(self, abstract: Any) -> None:
    """Raise ValueError naming a parameter whose sharded dim does not divide evenly."""
    shard = self.tree_shardings(abstract)
    flat_a = jax.tree_util.tree_flatten_with_path(abstract)[0]
    flat_s = jax.tree.leaves(shard)
    for (path, a), s in zip(flat_a, flat_s):
      for dim, axes in zip(a.shape, tuple(s.spec) + (None,) * (len(a.shape) - len(s.spec))):
        n = math.prod(self.mesh.shape[x] for x in ((axes,) if isinstance(axes, str) else
                                                    axes or ()))
        if dim % n:
          raise ValueError(f'sharding: {jax.tree_util.keystr(path)} dim {dim} not divisible by '
                           f'mesh axes {axes} of size {n} (change config.mesh or the model size)')


def materialize(init_fn: Callable[[], Any], shardings: Any) -> Any:
  """Run ``init_fn`` under jit so every output is created directly with its sharding."""
  return jax.jit(init_fn, out_shardings=shardings)()
