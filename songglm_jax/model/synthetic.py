"""Synthetic batches that follow the batch contract exactly (for tests and benchmarks).

Each packed row holds several examples (segments 1, 2, ...) and ends with padding. An example is
a random song of S syllables and N notes (S <= N <= 2S) laid out as
``[BOS] syllables [EOS] [BOS] notes [EOS]``; K note spans are blanked:

* pretrain layout: Part A = the song with each span replaced by one MASK row; Part B = for each
  span ``[SEP] span notes`` with targets ``span notes SEP``;
* finetune layout: Part A = ``[BOS] syllables [EOS] MASK``; Part B = ``[SEP] notes`` with targets
  ``notes SEP``.

Values are random but valid for ``field_sizes``; alignment ids follow the contract (notes take
their syllable's ids; BOS 0; EOS the last syllable's; MASK/SEP those of the span's first note).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from songglm_jax.data import tokenizer as tk

F = tk.F


def synthetic_field_sizes(num_syllables: int = 500, num_stress: int = 12,
                          max_bars: int = 64) -> dict[str, int]:
  """Field sizes shaped like ``Tokenizer(vocab).field_sizes`` with a made-up vocabulary."""
  return {'type': tk.NUM_SPECIAL + 2, 'syllable': tk.NUM_SPECIAL + num_syllables,
          'stress': tk.NUM_SPECIAL + num_stress, 'bar': tk.NUM_SPECIAL + max_bars,
          'position': 201, 'duration': 200, 'pitch': tk.NUM_SPECIAL + 128,
          'word_id': tk.NUM_SPECIAL + 256, 'phrase_id': tk.NUM_SPECIAL + 128}


def _song(rng: np.random.Generator, s: int, n: int, sizes: Mapping[str, int]):
  """Token rows of a random song and the raw (word, phrase) ids of every row."""
  note_syl = np.sort(np.concatenate([np.arange(s), rng.integers(0, s, n - s)]))
  phrase = np.minimum(np.cumsum(rng.random(s) < 0.15), 127)
  rows = np.full((s + n + 4, len(tk.FIELDS)), tk.NA, np.int32)
  for r, sp in ((0, tk.BOS), (s + 1, tk.EOS), (s + 2, tk.BOS), (s + n + 3, tk.EOS)):
    rows[r] = sp
  lyr, notes = rows[1:s + 1], rows[s + 3:s + 3 + n]
  lyr[:, F.type] = tk.LYRIC
  lyr[:, F.syllable] = rng.integers(tk.NUM_SPECIAL, sizes['syllable'], s)
  lyr[:, F.stress] = rng.integers(tk.NUM_SPECIAL, sizes['stress'], s)
  lyr[:, F.word_id] = tk.NUM_SPECIAL + np.arange(s)
  lyr[:, F.phrase_id] = tk.NUM_SPECIAL + phrase
  notes[:, F.type] = tk.NOTE
  bars = np.minimum(np.cumsum(rng.random(n) < 0.25), sizes['bar'] - tk.NUM_SPECIAL - 1)
  notes[:, F.bar] = tk.NUM_SPECIAL + bars
  for f in ('position', 'duration', 'pitch'):
    notes[:, getattr(F, f)] = rng.integers(tk.NUM_SPECIAL, sizes[f], n)
  notes[:, F.word_id] = tk.NUM_SPECIAL + note_syl
  notes[:, F.phrase_id] = tk.NUM_SPECIAL + phrase[note_syl]
  word = np.concatenate([[0], np.arange(s), [s - 1], [0], note_syl, [s - 1]])
  phr = np.concatenate([[0], phrase, [phrase[-1]], [0], phrase[note_syl], [phrase[-1]]])
  return rows, word, phr


def _spans(rng: np.random.Generator, n: int, k: int) -> list[tuple[int, int]]:
  """k disjoint, non-empty [start, end) note spans in 0..n, in order (needs n >= 2k - 1)."""
  edges = np.sort(rng.choice(n + 1, size=2 * k, replace=False))
  return [(int(edges[2 * i]), int(edges[2 * i + 1])) for i in range(k)]


def example(rng: np.random.Generator, length: int, sizes: Mapping[str, int],
            layout: str = 'pretrain') -> dict[str, np.ndarray]:
  """One example of exactly ``length`` (>= 8) tokens; arrays [length(, F)]."""
  k = 1 if layout == 'finetune' else int(rng.integers(1, 4))
  while k > 1 and length - 4 - 2 * k < 4 * k:
    k -= 1
  overhead = 4 if layout == 'finetune' else 4 + 2 * k
  budget = length - overhead  # = S + N
  s = min(int(rng.integers(max(1, -(-budget // 3)), budget // 2 + 1)), 256)
  n = budget - s
  rows, word, phr = _song(rng, s, n, sizes)
  lyric = np.arange(s + 2)
  if layout == 'finetune':
    spans = [(0, n)]
    a_rows = [rows[lyric], np.full((1, rows.shape[1]), tk.MASK, np.int32)]
    a_src = [lyric, [s + 3]]  # MASK takes the first note's alignment ids
  else:
    spans = _spans(rng, n, k)
    a_rows, a_src, prev = [rows[:s + 3]], [np.arange(s + 3)], 0
    for st, en in spans:
      a_rows += [rows[s + 3 + prev:s + 3 + st], np.full((1, rows.shape[1]), tk.MASK, np.int32)]
      a_src += [np.arange(s + 3 + prev, s + 3 + st), [s + 3 + st]]
      prev = en
    a_rows.append(rows[s + 3 + prev:])
    a_src.append(np.arange(s + 3 + prev, len(rows)))
  a_tok, a_src = np.concatenate(a_rows), np.concatenate(a_src).astype(int)
  mask_at = np.flatnonzero(a_tok[:, F.type] == tk.MASK)
  sep = np.full((1, rows.shape[1]), tk.SEP, np.int32)
  b_tok, b_tgt, b_src, b_pos, b_blk = [], [], [], [], []
  for (st, en), m in zip(spans, mask_at):
    span = rows[s + 3 + st:s + 3 + en]
    b_tok += [sep, span]
    b_tgt += [span, sep]
    b_src += [[s + 3 + st], np.arange(s + 3 + st, s + 3 + en)]
    b_pos.append(np.full(en - st + 1, m))
    b_blk.append(np.arange(1, en - st + 2))
  b_src = np.concatenate(b_src).astype(int)
  na, nb = len(a_tok), len(b_src)
  src = np.concatenate([a_src, b_src])
  out = {
      'tokens': np.concatenate([a_tok] + b_tok),
      'targets': np.concatenate([np.zeros_like(a_tok)] + b_tgt),
      'loss_mask': np.concatenate([np.zeros(na), np.ones(nb)]).astype(np.float32),
      'position_ids': np.concatenate([np.arange(na)] + b_pos).astype(np.int32),
      'block_position_ids': np.concatenate([np.zeros(na, int)] + b_blk).astype(np.int32),
      'word_ids': word[src].astype(np.int32), 'phrase_ids': phr[src].astype(np.int32),
      'is_part_a': np.arange(na + nb) < na}
  assert len(out['tokens']) == length, (len(out['tokens']), length)
  return out


def synthetic_batch(rng: np.random.Generator, batch_size: int, seq_len: int,
                    field_sizes: Mapping[str, int], *, layout: str = 'pretrain',
                    min_example: int = 16, max_example: int = 300,
                    pad_fraction: float = 0.05) -> dict[str, np.ndarray]:
  """A packed batch [B, L(, F)] of random examples; each row ends with about ``pad_fraction``
  of padding (at least one padding token when ``pad_fraction`` > 0)."""
  keys = ('tokens', 'targets', 'loss_mask', 'position_ids', 'block_position_ids', 'word_ids',
          'phrase_ids', 'is_part_a')
  rows = {k: [] for k in keys + ('segment_ids',)}
  for _ in range(batch_size):
    fill = seq_len - max(int(round(pad_fraction * seq_len)), 1 if pad_fraction > 0 else 0)
    parts, segs, used = [], [], 0
    while fill - used >= min_example:
      room = fill - used
      length = room if room < 2 * min_example else int(
          rng.integers(min_example, min(max_example, room - min_example) + 1))
      parts.append(example(rng, length, field_sizes, layout))
      segs.append(np.full(length, len(parts), np.int32))
      used += length
    pad = seq_len - used
    for k in keys:
      cat = np.concatenate([p[k] for p in parts])
      rows[k].append(np.concatenate([cat, np.zeros((pad,) + cat.shape[1:], cat.dtype)]))
    rows['segment_ids'].append(np.concatenate(segs + [np.zeros(pad, np.int32)]))
  return {k: np.stack(v) for k, v in rows.items()}
