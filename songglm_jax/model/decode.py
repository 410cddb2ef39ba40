"""Autoregressive melody decoding with a KV cache, in one jit-compiled ``lax.while_loop``.

Inputs are exactly the fine-tuning layout (``data/layout.py``): Part A ``[BOS] syllables [EOS]
MASK`` (bidirectional), then Part B ``[SEP] notes`` (causal) with position id = the MASK's index
(``S + 2``), block position ids 1 (SEP), 2, 3, ... and each note's raw word/phrase ids.
:func:`build_prompts` makes Part A + SEP with the pipeline's own functions; the loop appends one
note row per step.

Shapes: a batch holds B rows (lyrics x samples), padded to shared shapes so one compilation
serves a whole run: Part A of every row is padded to ``P - 1`` positions (padding has segment id
0, so it is masked), SEP sits at position ``P - 1``, note ``t`` at ``P + t``. ``GLM.forward``
encodes the prompts and returns every layer's keys/values; they start a fixed cache buffer,
``[B * H, P + max_notes, K]`` per layer, whose unfilled slots are masked. Each step runs the
model's own modules on one new token per row (:func:`_cached_step`), writing the token's
keys/values into its slot in place and attending to the filled slots.

The loop samples note ``t`` (``model/sampling.py``: constraints, temperature/top-k/top-p per
field, the stopping rule), then feeds it back, until every row has ended or ``max_notes`` notes
are reached. Randomness: one key per row; step ``t`` uses ``fold_in(row_key, t)``, so a row's
draws do not depend on which other rows share its batch.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from songglm_jax.data import masking
from songglm_jax.data import records as records_lib
from songglm_jax.data import tokenizer as tk
from songglm_jax.model import layers, phrase_position
from songglm_jax.model.sampling import (NOTE_COLUMNS, ChainLogits, Grids, Rows, Settings,
                                        initial_state, sample_note)

PROMPT_KEYS = ('tokens', 'position_ids', 'block_position_ids', 'word_ids', 'phrase_ids',
               'is_part_a', 'segment_ids')


class Decoded(NamedTuple):
  """Decoder output (device arrays)."""
  notes: jax.Array      # int32 [B, max_notes, 5] token ids in NOTE_COLUMNS order (PAD after end)
  num_notes: jax.Array  # int32 [B]
  stopped: jax.Array    # bool [B]: ended by the stopping rule (else cut at max_notes)
  logits: Optional[dict]  # record_logits: {field: float32 [B, max_notes + 1, V]}, step t's
                          # logits (the position predicting note t); else None


def build_prompts(lyric_rows: Sequence[np.ndarray], length: int, mask: str = 'MASK'
                  ) -> dict[str, np.ndarray]:
  """Part A + SEP of fine-tuning examples, padded: arrays [B, length] (tokens [B, length, F]).

  Args:
    lyric_rows: per row, int32 [S + 2, F] token rows ``[BOS] syllables [EOS]`` as
      ``Tokenizer.tokenize`` writes them.
    length: P >= max(S) + 4; SEP goes to position P - 1 of every row.
    mask: the cue the model was fine-tuned with (``config.pipeline.finetune_mask``).

  The arrays are cut from ``masking.batch_examples(..., 'finetune')`` of records whose note part
  is a placeholder (one note per syllable; fine-tuning Part A holds no note and the SEP takes the
  first note's ids, which are always word 0 / phrase 0), so they are the training layout.
  """
  if mask not in masking.FINETUNE_MASKS:
    raise ValueError(f'build_prompts: mask {mask!r}, expected one of {tuple(masking.FINETUNE_MASKS)}')
  recs = []
  for rows in lyric_rows:
    rows = np.asarray(rows, np.int32)
    s = len(rows) - 2
    if s < 1 or rows[0, tk.F.type] != tk.BOS or rows[-1, tk.F.type] != tk.EOS:
      raise ValueError('build_prompts: expected rows [BOS] syllables [EOS] with >= 1 syllable')
    if s + 4 > length:
      raise ValueError(f'build_prompts: {s} syllables need a prompt length >= {s + 4}, '
                       f'got {length}')
    notes = np.full((s, rows.shape[1]), tk.NA, np.int32)
    notes[:, tk.F.type] = tk.NOTE
    notes[:, tk.F.word_id] = rows[1:-1, tk.F.word_id]
    notes[:, tk.F.phrase_id] = rows[1:-1, tk.F.phrase_id]
    special = lambda v: np.full((1, rows.shape[1]), v, np.int32)
    tokens = np.concatenate([rows, special(tk.BOS), notes, special(tk.EOS)])
    recs.append(records_lib.SongRecord(tokens=tokens, time_signatures=np.array([[0, 4, 4]]),
                                       spans_smr=np.zeros((0, 2), np.int32),
                                       spans_srr=np.zeros((0, 2), np.int32)))
  ex = masking.make_examples(recs, np.zeros(len(recs), np.uint64),
                             masking.MaskingOptions(finetune_mask=mask), task=masking.FINETUNE)
  out = {k: np.zeros((len(recs), length) + ex.arrays[k].shape[1:], ex.arrays[k].dtype)
         for k in PROMPT_KEYS if k != 'segment_ids'}
  out['segment_ids'] = np.zeros((len(recs), length), np.int32)
  for b, rows in enumerate(lyric_rows):
    e = ex.example(b)
    a = len(rows) + 1  # Part A: [BOS] syllables [EOS] MASK
    for k in out:
      if k == 'segment_ids':
        continue
      out[k][b, :a] = e[k][:a]
      out[k][b, -1] = e[k][a]  # SEP
    out['segment_ids'][b, :a] = 1
    out['segment_ids'][b, -1] = 1
  return out


def note_inputs(note: jax.Array, prompts, rows: Rows, t, model_cfg,
                phrase_classes: Optional[tuple[jax.Array, jax.Array]] = None) -> dict:
  """Model inputs [B, 1(, F)] of note ``t`` (token ids in NOTE_COLUMNS order) as layout.py
  builds them for Part B; with ``phrase_classes`` (the prompts' lyric-row classes [B, P] of
  ``model/phrase_position.py``) also the classes of the note's syllable, and with
  ``note_syllable_stress`` its syllable's stress id in the stress field (what the embedder
  fills in for whole rows)."""
  b = note.shape[0]
  tok = jnp.full((b, len(tk.FIELDS)), tk.NA, jnp.int32)
  tok = tok.at[:, tk.F.type].set(tk.NOTE)
  for i, f in enumerate(NOTE_COLUMNS):
    tok = tok.at[:, getattr(tk.F, f)].set(note[:, i])
  word = jnp.clip(note[:, NOTE_COLUMNS.index('word_id')] - tk.NUM_SPECIAL, 0,
                  rows.num_syllables - 1)
  phrase = jnp.take_along_axis(rows.syllable_phrase, word[:, None], axis=1)[:, 0]
  tok = tok.at[:, tk.F.phrase_id].set(phrase + tk.NUM_SPECIAL)
  if model_cfg.note_syllable_stress:
    at = (1 + word)[:, None]  # the syllable's lyric row in the prompt
    tok = tok.at[:, tk.F.stress].set(
        jnp.take_along_axis(prompts['tokens'][..., tk.F.stress], at, axis=1)[:, 0])
  col = lambda x: x[:, None].astype(jnp.int32)
  out = {'tokens': tok[:, None],
         'position_ids': prompts['position_ids'][:, -1:],
         'block_position_ids': jnp.full((b, 1), t + 2, jnp.int32),
         'word_ids': col(jnp.minimum(word, model_cfg.num_word_ids - 1)),
         'phrase_ids': col(jnp.minimum(phrase, model_cfg.num_phrase_ids - 1))}
  if phrase_classes is not None:
    for key, c in zip(phrase_position.KEYS, phrase_classes):
      out[key] = jnp.take_along_axis(c, (1 + word)[:, None], axis=1)
  return out


def _unstack_blocks(model) -> list:
  """The model's stacked blocks as one Block per layer (sliced once, outside the loop: slicing
  the stacked weights inside it copied every layer's weights at every step)."""
  graphdef, stacked = nnx.split(model.blocks)
  return [nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], stacked))
          for i in range(model.cfg.num_layers)]


def _cached_step(model, blocks: list, inputs: dict, cache: tuple, valid: jax.Array, slot
                 ) -> tuple[jax.Array, tuple]:
  """Final hidden state [B, D] of one new token per row, attending to the cache.

  ``cache`` is (keys, values), each a tuple of one ``[B * H, T, K]`` array per layer. Separate
  arrays, because slicing one stacked buffer per layer made XLA copy the slice before every
  attention product; batch and heads merged, because with B = 1 a size-1 axis made XLA copy the
  whole buffer around each in-place update. The token's keys/values are written into ``slot``
  first; ``valid`` bool [B, T] marks the filled slots (this one included). Every filled slot is visible to a new Part B token under
  the GLM rule (Part A, and earlier Part B tokens), so ``valid`` is the whole mask.

  This is ``GLM.forward`` for a single query with the cache updated in place: the same
  modules and parameters (embedder, LayerNorms, MLP, heads; the attention projections applied
  as ``layers.Attention`` does), without ``forward``'s concatenation of the whole past at every
  layer and step (a copy of the cache per layer, which at batch 10 cost more than the rest of
  the step on CPU). Attention follows ``config.model.attention`` (``layers.attend_one``).
  Equality with the full pass is tested.
  """
  cfg = model.cfg
  dt = cfg.dtype
  x = model.embed(inputs)[:, 0]  # [B, D] float32 residual stream
  keys, values = list(cache[0]), list(cache[1])
  mask = jnp.repeat(valid, cfg.num_heads, axis=0)  # [B * H, T]
  for layer, blk in enumerate(blocks):
    att = blk.attn
    h = blk.ln_attn(x)
    qkv = jnp.einsum('bd,dehk->behk', h, att.qkv[...].astype(dt)) + att.qkv_bias[...].astype(dt)
    n = qkv.shape[0] * qkv.shape[2]
    q, k, v = (qkv[:, i].reshape(n, -1) for i in range(3))  # [B * H, K]
    keys[layer] = jax.lax.dynamic_update_slice(keys[layer], k[:, None].astype(dt), (0, slot, 0))
    values[layer] = jax.lax.dynamic_update_slice(values[layer], v[:, None].astype(dt),
                                                 (0, slot, 0))
    o = layers.attend_one(q, keys[layer], values[layer], mask, cfg.attention)
    o = o.reshape(qkv.shape[0], -1)
    a = o @ att.out[...].reshape(-1, cfg.d_model).astype(dt) + att.out_bias[...].astype(dt)
    x = x + a
    x = x + blk.mlp(blk.ln_mlp(x))
  return model.ln_final(x), (tuple(keys), tuple(values))


def step_logits(model, h: jax.Array, input_bar: jax.Array, sizes: dict,
                syllables: Optional[dict] = None):
  """What ``sampling.sample_note`` draws from, given final hidden states ``h`` [B, D] and the
  bar ids [B] of the rows that were fed in: every head's logits at once, or (with
  ``field_conditioning='chain'``) a :class:`ChainLogits` asking each head once the fields before
  it are drawn. ``syllables``: per-syllable features of the prompts' lyric rows [B, P] (keys of
  ``phrase_position.target_syllable``; n/a value first), read at the drawn word id."""
  if model.chain is None:
    return {f: head(h) for f, head in model.heads.items()}

  def fn(field, given):
    syllable = None
    if syllables and 'word_id' in given:
      w = given['word_id'] - tk.NUM_SPECIAL
      syllable = {}
      for key, (table, none) in syllables.items():
        at = jnp.clip(1 + w, 0, table.shape[1] - 1)[:, None]
        syllable[key] = jnp.where(w >= 0, jnp.take_along_axis(table, at, axis=1)[:, 0], none)
    return model.field_logits(h, field, given, input_bar, syllable)
  return ChainLogits(fn, sizes)


@functools.partial(jax.jit, static_argnames=('graphdef', 'settings', 'max_notes', 'constrained',
                                             'record_logits'))
def decode(graphdef: nnx.GraphDef, params, prompts: dict, rows: Rows, grids: Grids,
           settings: Settings, row_keys: jax.Array, *, max_notes: int, constrained: bool = True,
           record_logits: bool = False) -> Decoded:
  """Sample up to ``max_notes`` notes after each row's prompt.

  Args:
    graphdef, params: the GLM (``nnx.split``); run without dropout.
    prompts: :func:`build_prompts` arrays [B, P(, F)].
    rows: per-row constraint inputs (``sampling.Rows``).
    grids: ``sampling.make_grids(tokenizer.position_grid, tokenizer.duration_grid)``.
    settings: per-field temperature / top-k / top-p (static: Python numbers).
    row_keys: PRNG keys [B] (``jax.random.key``), one per row.
    max_notes: note budget per row (static; with constraints it must be >= every row's S).
    constrained: apply the constraints of ``model/sampling.py`` (else sample freely).
    record_logits: also return every step's logits (for tests; the fields with a head).

  A model without a ``word_id`` head (``config.model.target_fields``) sings one note per
  syllable in order and stops after the last (``sampling.next_syllable``).

  Returns:
    :class:`Decoded`.
  """
  model = nnx.merge(graphdef, params)
  cfg = model.cfg
  prompts = {k: jnp.asarray(v) for k, v in prompts.items()}
  b, p = prompts['segment_ids'].shape
  h, kv = model.encode(prompts)
  h = h[:, -1]
  forced_words = not cfg.word_head  # no alignment head: one note per syllable (sampling.py)
  missing = [f for f in NOTE_COLUMNS if f not in model.heads and f != 'word_id']
  if missing:
    raise ValueError(f'decode: the model has no output head for {missing} '
                     '(config.model.target_fields)')
  sizes = {f: int(model.heads[f].bias.shape[0]) for f in NOTE_COLUMNS if f in model.heads}
  input_bar = prompts['tokens'][:, -1, tk.F.bar]  # the SEP row
  classes = (phrase_position.lyric_classes(prompts['tokens'], prompts['phrase_ids'],
                                           prompts['segment_ids'])
             if cfg.phrase_position else None)
  syllables = {}
  if classes is not None:
    syllables['end_class'] = (classes[0], 0)
  if cfg.note_syllable_stress:
    syllables['stress'] = (prompts['tokens'][..., tk.F.stress], tk.NA)
  pad = [(0, 0), (0, max_notes), (0, 0)]
  cache = tuple(tuple(  # [B * H, T, K] per layer
      jnp.pad(jnp.swapaxes(x[i], 1, 2).reshape(b * cfg.num_heads, p, -1).astype(cfg.dtype), pad)
      for i in range(cfg.num_layers)) for x in kv)
  valid = jnp.pad(prompts['segment_ids'] != 0, [(0, 0), (0, max_notes)])
  notes = jnp.zeros((b, max_notes, len(NOTE_COLUMNS)), jnp.int32)
  blocks = _unstack_blocks(model)
  rec = ({f: jnp.zeros((b, max_notes + 1, sizes[f]), jnp.float32) for f in sizes}
         if record_logits else None)

  def cond(carry):
    t, st = carry[0], carry[1]
    return (t <= max_notes) & ~jnp.all(st.done)

  def body(carry):
    t, st, h, input_bar, cache, valid, notes, rec = carry
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(row_keys, t)
    used = {} if rec is not None else None
    note, is_note, st = sample_note(keys, step_logits(model, h, input_bar, sizes, syllables),
                                    st, rows, grids, settings, t, max_notes=max_notes,
                                    constrained=constrained, record=used,
                                    forced_words=forced_words)
    if rec is not None:
      rec = {f: rec[f].at[:, t].set(used[f].astype(jnp.float32)) for f in rec}
    slot = jnp.minimum(t, max_notes - 1)
    old = jax.lax.dynamic_slice_in_dim(notes, slot, 1, axis=1)
    notes = jax.lax.dynamic_update_slice(
        notes, jnp.where(is_note[:, None, None], note[:, None], old), (0, slot, 0))
    pos = p + slot
    valid = jax.lax.dynamic_update_slice(valid, jnp.ones((b, 1), bool), (0, pos))
    h, cache = _cached_step(model, blocks, note_inputs(note, prompts, rows, t, cfg, classes),
                            cache, valid, pos)
    return t + 1, st, h, note[:, NOTE_COLUMNS.index('bar')], cache, valid, notes, rec

  carry = (jnp.int32(0), initial_state(b, rows), h, input_bar, cache, valid, notes, rec)
  _, st, _, _, _, _, notes, rec = jax.lax.while_loop(cond, body, carry)
  return Decoded(notes=notes, num_notes=st.num_notes, stopped=st.stopped, logits=rec)
