"""The train state and the jit-compiled train and eval steps.

The model is split once into (graphdef, params); the steps are pure functions of arrays, jitted
with ``jax.jit`` (no NNX object crosses the jit boundary, so no update is lost -- see
JAX_NOTES.md) and with explicit shardings when a :class:`~songglm_jax.train.mesh.Plan` is given.

Metrics of a train step (all scalars, replicated)::

    loss, loss_<field>, accuracy_<field>   means over the scored (loss_mask) positions
    target_tokens, tokens                  scored positions, non-padding tokens in the batch
    grad_norm, learning_rate               global gradient norm (before clipping), lr of the update
    finite                                 False: loss or gradient not finite; the update was
                                           skipped (state returned unchanged) -- stop the run

Gradient accumulation splits the batch into ``grad_accum_steps`` micro-batches (rows i, i+k, ...
so every micro-batch stays spread over the data axes), sums gradients and normalises by the
scored-token count of the whole batch: the update equals the one-shot update up to float
rounding (with dropout off; dropout masks differ per micro-batch).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Mapping, Optional

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from songglm_jax.model import loss as loss_lib
from songglm_jax.train import mesh as mesh_lib
from songglm_jax.train.mesh import Plan

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs besides the data iterator."""
  step: jax.Array       # int32 [], optimizer updates applied so far
  params: nnx.State     # the model's nnx.Param state (float32)
  opt_state: Any        # optax state of the transformation
  rng: jax.Array        # uint32 key data; dropout key of step s = fold_in(rng, s)


def create_train_state(model_fn: Callable[[nnx.Rngs], nnx.Module],
                       tx: optax.GradientTransformation, seed: int,
                       plan: Optional[Plan] = None) -> tuple[nnx.GraphDef, TrainState, Any]:
  """Initialise parameters and optimizer state, sharded by ``plan`` when given.

  The state is first built abstractly (no memory), its shardings are derived from the logical
  annotations, then a jitted init creates every array directly with its sharding.

  Args:
    model_fn: builds the model from ``nnx.Rngs`` (e.g. ``lambda r: GLM(cfg, sizes, rngs=r)``).
    tx: the optimizer.
    seed: initialisation and dropout seed.
    plan: mesh and rules; None = default device, no explicit shardings.

  Returns:
    (graphdef of the model, the state, the state's shardings or None).
  """
  param_key, dropout_key = jax.random.split(jax.random.key(seed))

  def init() -> TrainState:
    _, params = nnx.split(model_fn(nnx.Rngs(params=param_key)))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      rng=jax.random.key_data(dropout_key))

  graphdef = nnx.graphdef(nnx.eval_shape(lambda: model_fn(nnx.Rngs(params=0))))
  if plan is None:
    return graphdef, jax.jit(init)(), None
  abstract = jax.eval_shape(init)
  plan.check_divisible(abstract)
  shardings = plan.tree_shardings(abstract)
  return graphdef, mesh_lib.materialize(init, shardings), shardings


def _context(plan: Optional[Plan]):
  return plan.activation_rules() if plan is not None else contextlib.nullcontext()


def _sums(graphdef: nnx.GraphDef, params: nnx.State, batch: Batch,
          dropout_key: Optional[jax.Array]) -> dict[str, dict[str, jax.Array]]:
  model = nnx.merge(graphdef, params)
  logits = model(batch, dropout_key=dropout_key)
  return loss_lib.field_sums(logits, batch['targets'], batch['loss_mask'])


def _micro_batches(batch: Batch, k: int, plan: Optional[Plan]) -> Batch:
  """[B, ...] -> [k, B/k, ...] with micro-batch i = rows i, i+k, ... (spread over devices)."""
  def split(x):
    if x.shape[0] % k:
      raise ValueError(f'grad_accum_steps={k} does not divide the batch size {x.shape[0]}')
    y = jnp.swapaxes(x.reshape((x.shape[0] // k, k) + x.shape[1:]), 0, 1)
    if plan is not None:
      y = jax.lax.with_sharding_constraint(y, plan.sharding((None, 'batch')))
    return y
  return jax.tree.map(split, dict(batch))


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, *, grad_accum_steps: int = 1,
                    plan: Optional[Plan] = None) -> Callable[[TrainState, Batch],
                                                             tuple[TrainState, Metrics]]:
  """The (unjitted) train step ``(state, batch) -> (state, metrics)``.

  Jit it with :func:`jit_train_step`. With a ``plan``, activations are constrained by its rules
  while the step is traced.
  """

  def grads_and_sums(params, batch, key, count):
    def objective(p, b, kk):
      sums = _sums(graphdef, p, b, kk)
      return loss_lib.total_loss(sums['ce'], count), sums
    (_, sums), grads = jax.value_and_grad(objective, has_aux=True)(params, batch, key)
    return grads, sums

  def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    with _context(plan):
      count = jnp.sum(batch['loss_mask'].astype(jnp.float32))
      key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
      if grad_accum_steps == 1:
        grads, sums = grads_and_sums(state.params, batch, key, count)
      else:
        micro = _micro_batches(batch, grad_accum_steps, plan)

        def body(carry, xs):
          mb, i = xs
          g, s = grads_and_sums(state.params, mb, jax.random.fold_in(key, i), count)
          return jax.tree.map(jnp.add, carry, (g, s)), None

        zero_s = jax.eval_shape(lambda: _sums(graphdef, state.params,
                                              jax.tree.map(lambda x: x[0], micro), None))
        zeros = jax.tree.map(jnp.zeros_like, (state.params, zero_s))
        (grads, sums), _ = jax.lax.scan(
            body, zeros, (micro, jnp.arange(grad_accum_steps)))
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      metrics = loss_lib.summarize(sums['ce'], sums['correct'], count)
      grad_norm = optax.tree.norm(grads)
      finite = jnp.isfinite(metrics['loss']) & jnp.isfinite(grad_norm)
      new = TrainState(step=state.step + 1, params=params, opt_state=opt_state, rng=state.rng)
      new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
      metrics.update(grad_norm=grad_norm, learning_rate=jnp.asarray(schedule(state.step)),
                     finite=finite, target_tokens=count,
                     tokens=jnp.sum(batch['segment_ids'] != 0).astype(jnp.float32))
    return new, metrics

  return step


def make_eval_step(graphdef: nnx.GraphDef, *, plan: Optional[Plan] = None
                   ) -> Callable[[nnx.State, Batch], Metrics]:
  """The (unjitted) eval step ``(params, batch) -> metrics`` (no dropout).

  Metrics: loss, loss_<field>, accuracy_<field>, target_tokens, tokens. Averages over several
  batches are exact when weighted by ``target_tokens``.
  """
  def step(params: nnx.State, batch: Batch) -> Metrics:
    with _context(plan):
      sums = _sums(graphdef, params, batch, None)
      count = jnp.sum(batch['loss_mask'].astype(jnp.float32))
      metrics = loss_lib.summarize(sums['ce'], sums['correct'], count)
      metrics.update(target_tokens=count,
                     tokens=jnp.sum(batch['segment_ids'] != 0).astype(jnp.float32))
    return metrics

  return step


def jit_train_step(step: Callable, plan: Optional[Plan] = None,
                   state_shardings: Any = None) -> Callable:
  """``jax.jit`` of a train step with the state donated; explicit shardings with a plan."""
  if plan is None:
    return jax.jit(step, donate_argnums=0)
  return jax.jit(step, in_shardings=(state_shardings, plan.batch_sharding()),
                 out_shardings=(state_shardings, plan.replicated()), donate_argnums=0)


def jit_eval_step(step: Callable, plan: Optional[Plan] = None,
                  param_shardings: Any = None) -> Callable:
  """``jax.jit`` of an eval step; explicit shardings with a plan."""
  if plan is None:
    return jax.jit(step)
  return jax.jit(step, in_shardings=(param_shardings, plan.batch_sharding()),
                 out_shardings=plan.replicated())
