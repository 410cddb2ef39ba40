"""The oracle: one example at a time, in plain loops. Used only by tests and the benchmark.

Same objectives, layout and random draws as the vectorized path (``masking.py``,
``masking_spans.py``, ``layout.py``), written the obvious way so that it can be read against
the description in ``masking.py`` and compared example by example with the fast path. Each
random stream an example uses is drawn once, as one vector (``_draws``), as a straightforward
per-example implementation would; ``pipeline_bench.py`` reports its speed-ups against this.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from songglm_jax.data import masking as mk
from songglm_jax.data import tokenizer as tok


def _draws(key: int, stream: int, count: int) -> list[float]:
  """The first ``count`` uniforms of one random stream of an example, drawn in one call."""
  return mk.uniforms(np.uint64(key), stream, np.arange(count)).tolist()


def _smallest(key: int, stream: int, slots: list[int], count: int) -> list[int]:
  """The ``count`` slots with the smallest draws, in slot order."""
  u = _draws(key, stream, max(slots, default=-1) + 1)
  by_draw = sorted(slots, key=lambda j: u[j])
  return sorted(by_draw[:count])


def song_mask(n: int, key: int, rate: float) -> list[bool]:
  c = min(max(int(mk.round_half_up(rate * n)), 1), n)
  offset = int(np.floor(_draws(key, mk.STREAM_SONG, 1)[0] * (n - c + 1)))
  return [offset <= j < offset + c for j in range(n)]


def phrase_mask(note_phrase: list[int], num_phrases: int, key: int, rate: float) -> list[bool]:
  need = int(mk.notes_needed(rate, len(note_phrase)))
  count = [0] * num_phrases
  for p in note_phrase:
    count[p] += 1
  u = _draws(key, mk.STREAM_PHRASE, num_phrases)
  order = sorted(range(num_phrases), key=lambda p: u[p])
  chosen, covered = set(), 0
  for p in order:
    if covered >= need:
      break
    chosen.add(p)
    covered += count[p]
  return [p in chosen for p in note_phrase]


def random_spans_mask(n: int, key: int, rate: float, mean_span_length: float) -> list[bool]:
  noise = min(max(int(mk.round_half_up(rate * n)), 1), n)
  k = min(max(int(mk.round_half_up(noise / mean_span_length)), 1), noise, n - noise + 1)
  cuts = set(_smallest(key, mk.STREAM_T5_CUTS, list(range(1, noise)), k - 1))
  lengths, run = [], 0
  for q in range(noise):
    if q > 0 and q in cuts:
      lengths.append(run)
      run = 0
    run += 1
  lengths.append(run)
  spare = n - noise - (k - 1)
  bars = _smallest(key, mk.STREAM_T5_GAPS, list(range(spare + k)), k)
  # Gap before span j: the stars between bars j-1 and j, plus 1 for an inner gap.
  masked, prev_bar = [], -1
  for j in range(k):
    gap = bars[j] - prev_bar - 1 + (1 if j > 0 else 0)
    masked += [False] * gap + [True] * lengths[j]
    prev_bar = bars[j]
  masked += [False] * (n - len(masked))
  return masked


def ngram_mask(n: int, candidates: list[tuple[int, int]], key: int, rate: float,
               mean_span_length: float) -> list[bool]:
  need = int(mk.notes_needed(rate, n))
  u = _draws(key, mk.STREAM_NGRAM, len(candidates))
  order = sorted(range(len(candidates)), key=lambda j: u[j])
  masked, covered = [False] * n, 0
  for j in order:
    if covered >= need:
      break
    a, b = candidates[j]
    if any(masked[a:b]):
      continue
    for i in range(a, b):
      masked[i] = True
    covered += b - a
  if covered < need:
    return random_spans_mask(n, key, rate, mean_span_length)
  return masked


def mask_record(tokens: np.ndarray, spans: dict, key: int, task: str,
                opts: mk.MaskingOptions) -> list[bool]:
  """Masked notes of one record for one task (``spans``: 'smr'/'srr' -> [[start, end], ...])."""
  s = sum(1 for row in tokens if row[tok.F.type] == tok.LYRIC)
  notes = tokens[s + 3:len(tokens) - 1]
  n = len(notes)
  if task == 'song':
    return song_mask(n, key, opts.song_rate)
  if task == 'phrase':
    note_phrase = [int(r[tok.F.phrase_id]) - tok.NUM_SPECIAL for r in notes]
    num_phrases = int(tokens[s, tok.F.phrase_id]) - tok.NUM_SPECIAL + 1
    return phrase_mask(note_phrase, num_phrases, key, opts.phrase_rate)
  if task == mk.FINETUNE:
    return [True] * n
  cands = [(int(a), int(b)) for a, b in spans[task.split('_')[1]]]
  return ngram_mask(n, cands, key, opts.word_rate, opts.mean_span_length)


def layout(tokens: np.ndarray, masked: list[bool], key: int, *, long_mask: bool, finetune: bool,
           shuffle: bool) -> dict:
  """One example's arrays (``layout.BATCH_KEYS``) from its record rows and masked notes."""
  tokens = np.asarray(tokens)
  s = sum(1 for row in tokens if row[tok.F.type] == tok.LYRIC)
  first_note = s + 3

  def raw(i: int) -> tuple[int, int]:
    t = int(tokens[i, tok.F.type])
    if t == tok.BOS:
      return 0, 0
    if t == tok.EOS:
      i = s  # the last syllable
    return (int(tokens[i, tok.F.word_id]) - tok.NUM_SPECIAL,
            int(tokens[i, tok.F.phrase_id]) - tok.NUM_SPECIAL)

  # Part A, and each span as (Part A index of its MASK, its rows).
  part_a: list[tuple[list[int], int, tuple[int, int]]] = []  # (row values, position, raw ids)
  spans: list[tuple[int, list[int]]] = []
  i = 0
  while i < len(tokens):
    j = i - first_note
    in_notes = 0 <= j < len(masked)
    if in_notes and masked[j]:
      rows = []
      while i - first_note < len(masked) and masked[i - first_note]:
        rows.append(i)
        i += 1
      mask_value = tok.LMASK if long_mask else tok.MASK
      spans.append((len(part_a), rows))
      part_a.append(([mask_value] * tokens.shape[1], len(part_a), raw(rows[0])))
      continue
    if finetune and (i == first_note - 1 or i == len(tokens) - 1):
      i += 1
      continue
    part_a.append((tokens[i].tolist(), len(part_a), raw(i)))
    i += 1
  order = list(range(len(spans)))
  if shuffle:
    u = _draws(key, mk.STREAM_SHUFFLE, len(spans))
    order.sort(key=lambda j: u[j])

  f = tokens.shape[1]
  out = {k: [] for k in ('tokens', 'targets', 'loss_mask', 'position_ids', 'block_position_ids',
                         'word_ids', 'phrase_ids', 'is_part_a')}

  def put(row, target, loss, pos, block, ids, is_a):
    out['tokens'].append(row)
    out['targets'].append(target)
    out['loss_mask'].append(loss)
    out['position_ids'].append(pos)
    out['block_position_ids'].append(block)
    out['word_ids'].append(ids[0])
    out['phrase_ids'].append(ids[1])
    out['is_part_a'].append(is_a)

  for row, p, ids in part_a:
    put(row, [tok.PAD] * f, 0.0, p, 0, ids, True)
  for j in order:
    mask_pos, rows = spans[j]
    seq = [[tok.SEP] * f] + [tokens[r].tolist() for r in rows] + [[tok.SEP] * f]
    ids = [raw(rows[0])] + [raw(r) for r in rows]
    for b in range(len(rows) + 1):
      put(seq[b], seq[b + 1], 1.0, mask_pos, b + 1, ids[b], False)
  dtypes = {'tokens': np.int32, 'targets': np.int32, 'loss_mask': np.float32,
            'position_ids': np.int32, 'block_position_ids': np.int32, 'word_ids': np.int32,
            'phrase_ids': np.int32, 'is_part_a': bool}
  return {k: np.asarray(v, dtypes[k]).reshape((-1, f) if k in ('tokens', 'targets') else (-1,))
          for k, v in out.items()}


def make_example(record, key: int, opts: mk.MaskingOptions, task: Optional[str] = None) -> dict:
  """One example of a record (which must fit): its arrays plus ``'task'`` (the task name)."""
  if task is None:
    u, total, acc = _draws(key, mk.STREAM_TASK, 1)[0], sum(opts.task_weights), 0.0
    task = mk.TASKS[-1]
    for name, w in zip(mk.TASKS, opts.task_weights):
      acc += w
      if w > 0 and u < acc / total:
        task = name
        break
  spans = {'smr': np.asarray(record.spans_smr).reshape(-1, 2),
           'srr': np.asarray(record.spans_srr).reshape(-1, 2)}
  masked = mask_record(record.tokens, spans, key, task, opts)
  out = layout(record.tokens, masked, key, long_mask=task == 'song',
               finetune=task == mk.FINETUNE, shuffle=opts.shuffle_spans)
  out['task'] = task
  return out
