"""Where a syllable stands in its phrase, computed inside the jitted model from the batch.

The 2D alignment encoding tells the model *which* phrase a syllable or note belongs to; whether a
syllable is the last of its phrase it must infer by comparing phrase ids across Part A. With
``model.phrase_position`` the embedder adds two small tables instead:

    E_end[class(syllables to the phrase's end)] + E_start[class(syllables from its start)]

class 0 = not applicable (specials, MASK/SEP rows, padding), else ``1 + min(distance, 3)``: 1 is
the phrase-final (or -initial) syllable. Lyric rows get their own classes; note rows the classes
of the syllable they are sung on, read from the lyric row of their example (an example's Part A
starts ``[BOS] syllables``, so word id ``w`` is at the example's start + 1 + w). Everything is
computed from ``tokens``, ``phrase_ids``, ``word_ids`` and ``segment_ids`` with cumulative
min/max scans, so no new batch field is needed; a KV-cache decoder that feeds single note rows
passes the classes of the note's syllable explicitly (``inputs['phrase_end_class']`` and
``inputs['phrase_start_class']``, taken from the prompt's lyric rows).

The same lookup gives note rows their syllable's stress (``model.note_syllable_stress``: a note
row's stress field, NA in the data, is filled with its syllable's stress id before embedding) and
gives the field chain the predicted note's syllable features (:func:`target_syllable`).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from songglm_jax.data import tokenizer as tk

NUM_CLASSES = 5  # n/a, then distance 0, 1, 2, >= 3
KEYS = ('phrase_end_class', 'phrase_start_class')


def _classes(distance: jax.Array, valid: jax.Array) -> jax.Array:
  return jnp.where(valid, 1 + jnp.clip(distance, 0, NUM_CLASSES - 2), 0).astype(jnp.int32)


def segment_start(segment_ids: jax.Array) -> jax.Array:
  """int32 [B, L]: index of the first row of each row's segment (a run of equal ids)."""
  idx = jnp.broadcast_to(jnp.arange(segment_ids.shape[-1], dtype=jnp.int32), segment_ids.shape)
  prev = jnp.concatenate([segment_ids[:, :1] - 1, segment_ids[:, :-1]], axis=1)
  return jax.lax.cummax(jnp.where(segment_ids != prev, idx, 0), axis=1)


def lyric_classes(tokens: jax.Array, phrase_ids: jax.Array, segment_ids: jax.Array
                  ) -> tuple[jax.Array, jax.Array]:
  """(to-end class, from-start class) int32 [B, L] of lyric rows (0 on other rows)."""
  b, l = segment_ids.shape
  idx = jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l))
  lyric = (tokens[..., tk.F.type] == tk.LYRIC) & (segment_ids != 0)
  nxt = lambda x, fill: jnp.concatenate([x[:, 1:], jnp.full((b, 1), fill, x.dtype)], axis=1)
  prv = lambda x, fill: jnp.concatenate([jnp.full((b, 1), fill, x.dtype), x[:, :-1]], axis=1)
  same_next = nxt(lyric, False) & (nxt(phrase_ids, -1) == phrase_ids) & (
      nxt(segment_ids, -1) == segment_ids)
  same_prev = prv(lyric, False) & (prv(phrase_ids, -1) == phrase_ids) & (
      prv(segment_ids, -1) == segment_ids)
  final = lyric & ~same_next
  first = lyric & ~same_prev
  end = jax.lax.cummin(jnp.where(final, idx, l), axis=1, reverse=True)
  start = jax.lax.cummax(jnp.where(first, idx, -1), axis=1)
  return _classes(end - idx, lyric), _classes(idx - start, lyric)


def of_syllables(classes: jax.Array, seg_start: jax.Array, word: jax.Array,
                 lyric_valid: jax.Array) -> jax.Array:
  """The class of the lyric row of syllable ``word`` [B, L] of each row's example (0 when that
  row is not a lyric row of the same segment: ``lyric_valid`` marks lyric rows)."""
  l = classes.shape[-1]
  at = jnp.clip(seg_start + 1 + word, 0, l - 1)
  ok = jnp.take_along_axis(lyric_valid, at, axis=1) & (seg_start + 1 + word < l) & (word >= 0)
  return jnp.where(ok, jnp.take_along_axis(classes, at, axis=1), 0)


def row_classes(inputs: Mapping[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """(to-end, from-start) classes [B, L] of every row: lyric rows their own, note rows those of
  their syllable, other rows 0; explicit ``inputs[KEYS]`` win (single-row decoding)."""
  if all(k in inputs for k in KEYS):
    return inputs[KEYS[0]], inputs[KEYS[1]]
  tokens, seg = inputs['tokens'], inputs['segment_ids']
  end, start = lyric_classes(tokens, inputs['phrase_ids'], seg)
  lyric = end > 0
  note = (tokens[..., tk.F.type] == tk.NOTE) & (seg != 0)
  s0 = segment_start(seg)
  same = lambda c: jnp.where(lyric, c, jnp.where(note, of_syllables(
      c, s0, inputs['word_ids'], lyric), 0))
  return same(end), same(start)


def target_syllable(inputs: Mapping[str, jax.Array], *, end_class: bool, stress: bool
                    ) -> dict[str, jax.Array]:
  """Features [B, L] of the syllable of each row's *target* note (training: read from
  ``targets``' word id): ``'end_class'`` (its to-end class, 0 where the target is not a note)
  and/or ``'stress'`` (its stress token id, NA where the target is not a note)."""
  tokens, seg = inputs['tokens'], inputs['segment_ids']
  end, _ = lyric_classes(tokens, inputs['phrase_ids'], seg)
  word = inputs['targets'][..., tk.F.word_id] - tk.NUM_SPECIAL
  is_note = inputs['targets'][..., tk.F.type] == tk.NOTE
  s0 = segment_start(seg)
  out = {}
  if end_class:
    out['end_class'] = jnp.where(is_note, of_syllables(end, s0, word, end > 0), 0)
  if stress:
    ids = of_syllables(tokens[..., tk.F.stress], s0, word, end > 0)
    out['stress'] = jnp.where(is_note & (ids > 0), ids, tk.NA)
  return out


def note_stress(inputs: Mapping[str, jax.Array]) -> jax.Array:
  """The stress column [B, L] with every note row that holds NA given its syllable's stress id
  (read from the lyric row of its example); other rows unchanged."""
  tokens, seg = inputs['tokens'], inputs['segment_ids']
  end, _ = lyric_classes(tokens, inputs['phrase_ids'], seg)
  col = tokens[..., tk.F.stress]
  ids = of_syllables(col, segment_start(seg), inputs['word_ids'], end > 0)
  fill = (tokens[..., tk.F.type] == tk.NOTE) & (col == tk.NA) & (ids > 0) & (seg != 0)
  return jnp.where(fill, ids, col)
