"""Windows of long records: every example must fit in one packed row of ``seq_len`` tokens.

A record whose longest possible example (:func:`max_example_length`, over the tasks with non-zero
weight) would not fit is cut, before masking, into windows of consecutive whole phrases, grown
greedily while they fit; a phrase that alone is too long is cut between syllables (a syllable
always keeps all its notes, so notes stay with their syllables). A window is a record of its own,
laid out ``[BOS] syllables [EOS] [BOS] notes [EOS]``, whose word ids, phrase ids and bars restart
at 0; it keeps the n-gram spans that lie wholly inside it (shifted) and is named ``NAME@k``.
Window ``k`` of record ``i`` in epoch ``e`` draws its masks from ``example_keys(seed, e, i, k)``.
A single syllable with too many notes for ``seq_len`` is an error (raise ``seq_len``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from songglm_jax.data import masking as mk
from songglm_jax.data import records as records_lib
from songglm_jax.data import tokenizer as tok


def max_example_length(num_syllables, num_notes, num_phrases, opts: mk.MaskingOptions,
                       finetune: bool = False) -> np.ndarray:
  """Upper bound of an example's length (tokens) over the tasks with non-zero weight.

  An example holds the record's ``S + N + 4`` rows plus one MASK and one SEP per span; word-level
  tasks make at most ``masking.notes_needed(word_rate, N)`` spans, the phrase task at most
  ``ceil(P / 2)`` (drawn phrases next to each other merge), the song task one. Fine-tuning
  examples have exactly ``S + N + 4`` tokens.
  """
  n = np.asarray(num_notes, np.int64)
  t = np.asarray(num_syllables, np.int64) + n + 4
  if finetune:
    return t  # Part A: S + 2 lyric rows + MASK; Part B: SEP + N notes
  w = opts.task_weights
  k = np.zeros_like(n)
  if w[0] > 0 or w[1] > 0:
    k = np.maximum(k, mk.notes_needed(opts.word_rate, n))
  if w[2] > 0:
    k = np.maximum(k, (np.asarray(num_phrases, np.int64) + 1) // 2)
  if w[3] > 0:
    k = np.maximum(k, 1)
  return t + 2 * k


def split_long_record(record: records_lib.SongRecord, seq_len: int, opts: mk.MaskingOptions,
                      finetune: bool = False) -> list[records_lib.SongRecord]:
  """``[record]`` when its examples fit in ``seq_len``, else its windows (module docstring).

  Raises:
    ValueError: one syllable has too many notes to fit in ``seq_len``.
  """
  t = record.tokens
  typ = t[:, tok.F.type]
  s = int(np.count_nonzero(typ == tok.LYRIC))
  n = len(t) - s - 4
  syl_phrase = t[1:s + 1, tok.F.phrase_id].astype(np.int64) - tok.NUM_SPECIAL
  p = int(syl_phrase[-1]) + 1
  fits = lambda ns, nn, np_: int(max_example_length(ns, nn, np_, opts, finetune)) <= seq_len
  if fits(s, n, p):
    return [record]
  note_syl = t[s + 3:s + 3 + n, tok.F.word_id].astype(np.int64) - tok.NUM_SPECIAL
  first_note = np.searchsorted(note_syl, np.arange(s + 1))  # [S + 1], last = N
  windows: list[tuple[int, int]] = []  # syllable ranges
  a = 0
  while a < s:
    # Grow by whole phrases while the window fits; else by syllables inside the first phrase.
    b = a
    while b < s:
      c = b + 1
      while c < s and syl_phrase[c] == syl_phrase[b]:
        c += 1  # end of the phrase that starts at b (or continues from b)
      if not fits(c - a, first_note[c] - first_note[a], syl_phrase[c - 1] - syl_phrase[a] + 1):
        break
      b = c
    if b == a:  # the first phrase alone is too long: cut it between syllables
      while b < s and fits(b + 1 - a, first_note[b + 1] - first_note[a],
                           syl_phrase[b] - syl_phrase[a] + 1):
        b += 1
      if b == a:
        raise ValueError(f'record {record.name!r}: syllable {a} has '
                         f'{first_note[a + 1] - first_note[a]} notes, too many for one example '
                         f'of seq_len={seq_len}; raise pipeline.seq_len')
    windows.append((a, b))
    a = b
  return [_window(record, s, first_note, a, b, k) for k, (a, b) in enumerate(windows)]


def _window(record, s, first_note, a, b, k) -> records_lib.SongRecord:
  t = record.tokens
  n0, n1 = int(first_note[a]), int(first_note[b])
  lyr = t[1 + a:1 + b].copy()
  notes = t[s + 3 + n0:s + 3 + n1].copy()
  phrase0 = lyr[0, tok.F.phrase_id] - tok.NUM_SPECIAL
  for rows in (lyr, notes):
    rows[:, tok.F.word_id] -= a
    rows[:, tok.F.phrase_id] -= phrase0
  notes[:, tok.F.bar] -= notes[0, tok.F.bar] - tok.NUM_SPECIAL
  special = lambda v: np.full((1, t.shape[1]), v, np.int32)
  tokens = np.concatenate([special(tok.BOS), lyr, special(tok.EOS), special(tok.BOS), notes,
                           special(tok.EOS)]).astype(np.int32)

  def keep(spans):
    spans = np.asarray(spans, np.int32).reshape(-1, 2)
    inside = (spans[:, 0] >= n0) & (spans[:, 1] <= n1)
    return (spans[inside] - n0).astype(np.int32)

  return records_lib.SongRecord(tokens=tokens, time_signatures=record.time_signatures,
                                spans_smr=keep(record.spans_smr), spans_srr=keep(record.spans_srr),
                                name=f'{record.name}@{k}', source=record.source,
                                tempo=record.tempo)


def windowed_batch(recs: Sequence[records_lib.SongRecord], epochs, indices, seed: int,
                   seq_len: int, opts: mk.MaskingOptions, finetune: bool = False) -> mk.RecordBatch:
  """The records as a batch, long ones replaced by their windows (:func:`split_long_record`).

  ``epochs``/``indices``: the epoch and record index of each record; the key of window ``w`` of
  a record is ``mk.example_keys(seed, epoch, index, w)`` (``w = 0`` for a record that fits).
  """
  epochs = np.asarray(epochs, np.int64)
  indices = np.asarray(indices, np.int64)
  batch = mk.RecordBatch.from_records(recs, mk.example_keys(seed, epochs, indices, 0))
  bound = max_example_length(batch.num_syllables, batch.num_notes, batch.num_phrases, opts,
                             finetune)
  if np.all(bound <= seq_len):
    return batch
  out, ep, ix, win = [], [], [], []
  for i, rec in enumerate(recs):
    pieces = split_long_record(rec, seq_len, opts, finetune) if bound[i] > seq_len else [rec]
    out.extend(pieces)
    ep.extend([epochs[i]] * len(pieces))
    ix.extend([indices[i]] * len(pieces))
    win.extend(range(len(pieces)))
  return mk.RecordBatch.from_records(out, mk.example_keys(seed, np.array(ep), np.array(ix),
                                                    np.array(win)))
