"""Melody infilling: keep the notes a musician likes, regenerate the rest (issue 15).

SongGLM's pre-training is blank infilling: Part A is the song with each masked span replaced by
one MASK row (LMASK for the song-level span), Part B holds ``[SEP] span notes`` per span. Infilling
asks a trained model exactly that:

* Part A is built by the pre-training code itself (``data/layout.glm_layout`` of the song's record
  with the span notes masked, spans in song order): ``[BOS] syllables [EOS] [BOS] kept notes,
  one MASK/LMASK row per span [EOS]``, with its position, word and phrase ids. A single span
  holding at least ``song_rate`` of the notes shows LMASK (the song-level task's one span); any
  other span shows MASK (the n-gram and phrase tasks' cue, which can also merge into one long
  span: the same Part A with the other cue); ``mask=`` forces one.
* The spans are decoded one after another by the KV-cache decoder (``model/decode.decode``): the
  prompt of span j is Part A, the Part B rows of spans 0 .. j-1 as decoded for that sample
  (``[SEP] notes``, causal, as in training), padding, then span j's SEP (position id = its MASK's
  index, block ids 1, 2, ...). One compilation per span serves every batch of samples.
* Constraints (``model/sampling.py``, the whole-song rules with ``Rows.first_word`` /
  ``start_tick`` / ``end_tick``): the span sings exactly its syllables, in order, each at least
  once; its first onset is at or after the previous kept note's end (rounded up to the 10-tick
  grid unit); every note ends at or before the next kept syllable's start (its lyric onset, which
  is at or before its first note); onsets inside the bar, pitches in range.
* Each decoded span is checked with ``generation.invalid_reason`` (the whole-song checks, word
  ids counted from the span's first syllable) plus the two boundaries; the output song takes the
  input's kept notes as they are (pitch, onset, offset, velocity: identical arrays) and the new
  notes (velocity: the median of the kept notes').

Seeds: span j of sample k draws with ``fold_in(fold_in(key(seed), k), j)``.

Limits: one time signature (bar length) per song; the song must fit the model (syllables
<= ``model.num_word_ids``, phrases <= ``model.num_phrase_ids``, Part A <= ``model.max_len``
rows) and the tokenizer (bars); a span needs room for its syllables between the kept notes
(50 ticks per syllable). Anything else is a one-line ValueError.

``allow_shift``: a span that is not the song's end may run past the next kept syllable; the rest
of the song (kept notes and later spans) then moves later by the fewest whole bars that make
room, as far as the tokenizer's bars allow. Later spans are decoded in the moved frame: their
prompts show the moved kept notes (bar field + the whole bars), so the context stays consistent.
Moved kept notes keep their pitch, duration and velocity; their onsets change by whole bars.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from songglm_jax.inference.generation_rules import GenerateOptions, invalid_reason, prior_rows
from songglm_jax.data import layout, masking, records
from songglm_jax.data import tokenizer as tk
from songglm_jax.inference.infill_spec import Span, parse_spec, spans_from_ranges
from songglm_jax.model import decode as decode_lib
from songglm_jax.model import sampling
from songglm_jax.music import meter
from songglm_jax.music.song import Song, SongSkip

MASKS = ('auto', 'MASK', 'LMASK')


@dataclasses.dataclass
class InfillSample:
  """One infilled song: ``song`` when every span is valid (else ``reason``); ``regenerated``
  marks its new notes (bool [N_out]); ``shift_bars`` (with ``allow_shift``) says how many bars
  the rest of the song moved after each span."""
  sample: int
  song: Optional[Song]
  reason: Optional[str] = None
  regenerated: Optional[np.ndarray] = None
  shift_bars: Optional[list[int]] = None  # per span: bars the rest of the song moved after it


@dataclasses.dataclass
class Plan:
  """The host-side inputs of one song's infilling (:func:`plan`)."""
  song: Song
  spans: list[Span]
  part_a: dict           # PROMPT_KEYS -> [A(, F)] arrays (no segment_ids)
  seps: list[dict]       # per span: PROMPT_KEYS -> the SEP row's values
  masks: list[str]       # per span: 'MASK' or 'LMASK' (the Part A cue)
  bar_ticks: int
  start_tick: list[int]  # per span: first allowed onset
  end_tick: list[int]    # per span: last allowed end
  note_range: list[tuple[int, int]]  # per span: original notes [n0, n1)
  a_note: Optional[np.ndarray] = None  # int64 [A]: the original note of each Part A row (or -1)
  allow_shift: bool = False
  cap: int = 0  # ticks the tokenizer's bars hold

  def shift_room(self, shift: np.ndarray) -> np.ndarray:
    """Whole-bar ticks the rest of the song may still move, given its moves so far [B]."""
    last = int(self.song.offset.max())
    return np.maximum(self.cap - last - shift, 0) // self.bar_ticks * self.bar_ticks

  def describe(self) -> list[dict]:
    return [{**s.describe(self.song), 'mask': m, 'start_tick': a, 'end_tick': b}
            for s, m, a, b in zip(self.spans, self.masks, self.start_tick, self.end_tick)]


def _bar_ticks(song: Song, tokenizer: tk.Tokenizer) -> int:
  ts = song.time_signatures
  lengths = meter.bar_lengths(ts)
  bar = int(lengths[0])
  last = int(meter.bar_and_position(song.offset[-1:], ts)[0][0]) + 2
  if np.any(lengths != bar) or not np.array_equal(meter.bar_start(np.arange(last), ts),
                                                  np.arange(last) * bar):
    raise ValueError(f'song {song.name!r}: infilling needs one bar length for the whole song, '
                     f'the time signatures {ts[:, 1:].tolist()} change it')
  if bar % sampling.GRID_PERIOD or bar > tokenizer.vocab.max_bar_ticks:
    raise ValueError(f'song {song.name!r}: bars of {bar} ticks; expected a multiple of '
                     f'{sampling.GRID_PERIOD} up to {tokenizer.vocab.max_bar_ticks}')
  return bar


def plan(song: Song, spans, tokenizer: tk.Tokenizer, model_cfg, *, mask: str = 'auto',
         song_rate: float = 0.5, step: int = 50, allow_shift: bool = False) -> Plan:
  """Part A, the SEP rows and the time bounds of infilling ``spans`` of ``song``.

  Args:
    spans: a SPEC string (``infill_spec``) or 0-based ``(first, end)`` syllable ranges.
    mask: 'auto' (module docstring), 'MASK' or 'LMASK' for every span.
    song_rate: ``config.pipeline.song_rate`` (the song-level span's share of the notes).
    step: ticks a forced note may cost (``sampling.make_grids(...).step``).
    allow_shift: let a span move the rest of the song by whole bars (module docstring).

  Raises:
    ValueError: a bad spec, a song the model or tokenizer cannot hold, a span without room.
  """
  if mask not in MASKS:
    raise ValueError(f'infill: mask {mask!r}, expected one of {MASKS}')
  spans = parse_spec(song, spans) if isinstance(spans, str) else spans_from_ranges(song, spans)
  s, n = song.num_syllables, song.num_notes
  if s > model_cfg.num_word_ids or song.num_phrases > model_cfg.num_phrase_ids:
    raise ValueError(f'song {song.name!r}: {s} syllables in {song.num_phrases} phrases; the '
                     f'model holds up to {model_cfg.num_word_ids} / {model_cfg.num_phrase_ids}')
  bar = _bar_ticks(song, tokenizer)
  try:
    tokens = tokenizer.tokenize(song)
  except SongSkip as e:
    raise ValueError(f'song {song.name!r}: cannot be tokenized ({e.reason}: {e})') from None
  masked = np.zeros(n, bool)
  for sp in spans:
    masked |= (song.note_syllable >= sp.first) & (song.note_syllable < sp.end)
  rec = records.SongRecord(tokens=tokens, time_signatures=song.time_signatures,
                           spans_smr=np.zeros((0, 2), np.int32),
                           spans_srr=np.zeros((0, 2), np.int32))
  batch = masking.RecordBatch.from_records([rec], np.zeros(1, np.uint64))
  ex = layout.glm_layout(batch, masked, long_mask=np.zeros(1, bool), finetune=np.zeros(1, bool),
                         shuffle=False).example(0)
  a = int(ex['is_part_a'].sum())
  if a > model_cfg.max_len:
    raise ValueError(f'song {song.name!r}: Part A of {a} rows > model.max_len '
                     f'{model_cfg.max_len}; regenerate a shorter song (or window)')
  part_a = {k: ex[k][:a].copy() for k in decode_lib.PROMPT_KEYS if k != 'segment_ids'}
  sep_at = np.flatnonzero(ex['block_position_ids'] == 1)  # in song order (no shuffle)
  seps = [{k: ex[k][i] for k in part_a} for i in sep_at]
  long_len = int(np.clip(masking.round_half_up(song_rate * n), 1, n))
  first_note = song.syllable_first_note
  rows_a = np.flatnonzero(ex['is_part_a'])  # Part A comes first: its rows are 0 .. a - 1
  row = np.arange(len(tokens))  # the record row of each Part A row, then its note index
  note_row = np.zeros(len(tokens), bool)
  note_row[s + 3:s + 3 + n] = True
  masked_row = np.zeros(len(tokens), bool)
  masked_row[s + 3:s + 3 + n] = masked
  start_row = masked_row & ~np.concatenate([[False], masked_row[:-1]])
  src = row[~masked_row | start_row]
  assert len(src) == a == len(rows_a)
  a_note = np.where(note_row[src] & ~masked_row[src], src - (s + 3), -1)
  cap = tokenizer.vocab.max_bars * bar
  out = Plan(song=song, spans=spans, part_a=part_a, seps=seps, masks=[], bar_ticks=bar,
             start_tick=[], end_tick=[], note_range=[], a_note=a_note,
             allow_shift=allow_shift, cap=cap)
  for sp, sep in zip(spans, seps):
    n0 = int(first_note[sp.first])
    n1 = int(first_note[sp.end]) if sp.end < s else n
    long = len(spans) == 1 and n1 - n0 >= long_len  # the song-level task's one span
    kind = mask if mask != 'auto' else ('LMASK' if long else 'MASK')
    if kind == 'LMASK':
      part_a['tokens'][int(sep['position_ids'])] = tk.LMASK
    start = -(-int(song.offset[n0 - 1]) // tk.GRID_UNIT) * tk.GRID_UNIT if n0 > 0 else 0
    end = (int(song.syllable_onset[sp.end]) // tk.GRID_UNIT * tk.GRID_UNIT if sp.end < s
           else cap)
    end = min(end, cap)
    room = int(out.shift_room(np.zeros(1, np.int64))[0]) if allow_shift and sp.end < s else 0
    if start + step * sp.num_syllables > end + room:
      raise ValueError(f'--regenerate {",".join(sp.items)}: {sp.num_syllables} syllables need '
                       f'{step * sp.num_syllables} ticks between the kept notes, there are '
                       f'{max(end - start, 0)} (ticks {start}..{end})'
                       + ('' if allow_shift else '; --allow_shift lets it move the rest'))
    out.masks.append(kind)
    out.start_tick.append(start)
    out.end_tick.append(end)
    out.note_range.append((n0, n1))
  return out


def _part_b_rows(sep: dict, notes: np.ndarray, syllable_phrase: np.ndarray) -> dict:
  """A decoded span as Part B rows: ``[SEP] notes`` ([1 + n] per key) as layout.py builds them."""
  k = len(notes)
  tok = np.full((k + 1, len(tk.FIELDS)), tk.NA, np.int32)
  tok[0] = sep['tokens']
  tok[1:, tk.F.type] = tk.NOTE
  for i, f in enumerate(sampling.NOTE_COLUMNS):
    tok[1:, getattr(tk.F, f)] = notes[:, i]
  word = np.clip(notes[:, 4].astype(np.int64) - tk.NUM_SPECIAL, 0, len(syllable_phrase) - 1)
  tok[1:, tk.F.phrase_id] = syllable_phrase[word] + tk.NUM_SPECIAL
  col = lambda first, rest: np.concatenate([[first], rest]).astype(np.int32)
  return {'tokens': tok, 'position_ids': np.full(k + 1, sep['position_ids'], np.int32),
          'block_position_ids': np.arange(1, k + 2, dtype=np.int32),
          'word_ids': col(sep['word_ids'], word), 'phrase_ids': col(sep['phrase_ids'],
                                                                    syllable_phrase[word]),
          'is_part_a': np.zeros(k + 1, bool)}


def _prompts(p: Plan, j: int, before: Sequence[Sequence[dict]], length: int,
             shift: Optional[np.ndarray] = None) -> dict:
  """Span j's prompts [B, length]: Part A, each row's earlier Part B rows, padding, SEP;
  ``shift`` (ticks [B, N], whole bars) moves each kept note of Part A."""
  b = len(before)
  out = {k: np.zeros((b, length) + v.shape[1:], v.dtype) for k, v in p.part_a.items()}
  out['segment_ids'] = np.zeros((b, length), np.int32)
  for r, parts in enumerate(before):
    rows = [p.part_a] + list(parts)
    m = sum(len(x['position_ids']) for x in rows)
    for k in p.part_a:
      out[k][r, :m] = np.concatenate([x[k] for x in rows])
      out[k][r, -1] = p.seps[j][k]
    out['segment_ids'][r, :m] = 1
    out['segment_ids'][r, -1] = 1
    if shift is not None:
      kept = p.a_note >= 0
      out['tokens'][r, np.flatnonzero(kept), tk.F.bar] += (
          shift[r, p.a_note[kept]] // p.bar_ticks).astype(np.int32)
  return out


def span_invalid_reason(notes: np.ndarray, num: int, stopped: bool, p: Plan, j: int,
                        tokenizer: tk.Tokenizer, pitch_range: tuple[int, int],
                        bounds: Optional[tuple[int, int]] = None) -> Optional[str]:
  """Why decoded span j is not valid (None when it is): ``generation.invalid_reason`` with word
  ids counted from the span's first syllable, then the boundaries (``bounds``: the row's
  (start, end) ticks when they differ from the plan's)."""
  sp = p.spans[j]
  shifted = np.array(notes[:num], np.int64)
  shifted[:, 4] -= sp.first
  shifted[:, 4] = np.where(shifted[:, 4] < tk.NUM_SPECIAL, -1, shifted[:, 4])
  reason = invalid_reason(shifted, num, stopped, sp.num_syllables, p.bar_ticks,
                                     tokenizer, pitch_range)
  if reason is not None:
    return reason
  onset, end = note_ticks(notes[:num], p.bar_ticks, tokenizer)
  lo, hi = bounds or (p.start_tick[j], p.end_tick[j])
  if onset[0] < lo:
    return 'before_previous_kept_note'
  if end[-1] > hi:
    return 'past_next_kept_note'
  return None


def note_ticks(notes: np.ndarray, bar_ticks: int, tokenizer: tk.Tokenizer):
  """(onset, end) ticks int64 [n] of decoded note rows (valid ids)."""
  v = np.asarray(notes, np.int64) - tk.NUM_SPECIAL
  onset = v[:, 0] * bar_ticks + tokenizer.position_grid[v[:, 1]]
  return onset, onset + tokenizer.duration_grid[v[:, 2]]


def assemble(p: Plan, decoded: Sequence[np.ndarray], tokenizer: tk.Tokenizer,
             shift: Optional[np.ndarray] = None) -> tuple[Song, np.ndarray]:
  """The infilled song (kept notes as they are, moved by ``shift`` ticks [N] when given; each
  span's decoded notes [n, 5] in its place) and its regenerated-note mask."""
  song = p.song
  move = np.zeros(song.num_notes, np.int64) if shift is None else np.asarray(shift, np.int64)
  keep = lambda a, b: dict(pitch=song.pitch[a:b], onset=song.onset[a:b] + move[a:b],
                           offset=song.offset[a:b] + move[a:b], velocity=song.velocity[a:b],
                           note_syllable=song.note_syllable[a:b])
  kept = np.ones(song.num_notes, bool)
  for n0, n1 in p.note_range:
    kept[n0:n1] = False
  vel = int(np.round(np.median(song.velocity[kept] if kept.any() else song.velocity)))
  parts, regen, cursor = [], [], 0
  syl_onset = np.array(song.syllable_onset) + move[song.syllable_first_note]
  for (n0, n1), notes in zip(p.note_range, decoded):
    parts.append(keep(cursor, n0))
    regen.append(np.zeros(n0 - cursor, bool))
    onset, end = note_ticks(notes, p.bar_ticks, tokenizer)
    word = np.asarray(notes[:, 4], np.int64) - tk.NUM_SPECIAL
    parts.append(dict(pitch=notes[:, 3] - tk.NUM_SPECIAL, onset=onset, offset=end,
                      velocity=np.full(len(notes), vel), note_syllable=word))
    regen.append(np.ones(len(notes), bool))
    first = np.flatnonzero(np.diff(word, prepend=-1) != 0)
    syl_onset[word[first]] = onset[first]
    cursor = n1
  parts.append(keep(cursor, song.num_notes))
  regen.append(np.zeros(song.num_notes - cursor, bool))
  cat = {k: np.concatenate([np.asarray(x[k], np.int64) for x in parts]) for k in parts[0]}
  return song.replace(syllable_onset=syl_onset, **cat), np.concatenate(regen)


def infill(gen, song: Song, spans,
           options: Optional[GenerateOptions] = None, *, mask: str = 'auto',
           song_rate: float = 0.5, allow_shift: bool = False,
           progress=None) -> list[InfillSample]:
  """``options.num_samples`` infillings of ``spans`` of ``song`` (``Generator.infill``).

  Args:
    gen: a ``generation.Generator`` (its tokenizer, graphdef and params; ``gen.options``
      unless ``options``).
    song: the song with its lyrics, phrases and stress as the model should see them (a file:
      ``infill_spec.read_song``).
    spans: a SPEC string or 0-based ``(first, end)`` syllable ranges.
    mask, song_rate, allow_shift: see :func:`plan`.
    progress: ``progress(done_rows, total_rows)`` after each decoded batch of one span.
  """
  o = options or gen.options
  o.validate()
  cfg, tok = gen.model_cfg, gen.tokenizer
  p = plan(song, spans, tok, cfg, mask=mask, song_rate=song_rate, step=int(gen.grids.step),
           allow_shift=allow_shift)
  # Shapes in buckets of 32 (fewer compilations across spans and songs): a budget above
  # max_notes_per_syllable * syllables never binds (the per-syllable cap binds first), so the
  # samples do not change; prompts are padded before the SEP anyway.
  up = lambda x: -(-x // 32) * 32
  budget = []
  for sp in p.spans:
    m = min(up(o.max_notes_per_syllable * sp.num_syllables), o.max_notes, cfg.max_len - 2)
    if m < sp.num_syllables:
      raise ValueError(f'infill: {sp.num_syllables} syllables need a note budget >= '
                       f'{sp.num_syllables}, have {m} (generate.max_notes, model.max_len - 2)')
    budget.append(m)
  a = len(p.part_a['position_ids'])
  lengths = [up(a + sum(x + 1 for x in budget[:j]) + 1) for j in range(len(budget))]
  base = jax.random.key(o.seed)
  col = lambda v: jnp.asarray(np.asarray(v, np.int32))
  settings = o.settings()
  phrase = np.asarray(song.syllable_phrase, np.int64)
  stresses = (song.syllable_stress if song.syllable_stress is not None
              else ('?',) * song.num_syllables)  # unknown: no stress prior
  ts = tuple(int(x) for x in song.time_signatures[0, 1:3])
  priors = {k: jnp.repeat(v, o.batch_size, axis=0)  # every row sings the same song: computed once
            for k, v in prior_rows(o, [(stresses, phrase, ts)], song.num_syllables,
                                   tok.duration_grid).items()}
  out = []
  total = o.num_samples * len(p.spans)
  for start in range(0, o.num_samples, o.batch_size):
    ks = list(range(start, min(start + o.batch_size, o.num_samples)))
    ks = ks + [ks[-1]] * (o.batch_size - len(ks))
    b = len(ks)
    before = [[] for _ in ks]
    found = [[] for _ in ks]
    reasons: list[Optional[str]] = [None] * b
    shift = np.zeros((b, song.num_notes), np.int64)  # ticks each original note moves (whole bars)
    for j, sp in enumerate(p.spans):
      n0, n1 = p.note_range[j]
      lo, hi = p.start_tick[j] + shift[:, n0], p.end_tick[j] + shift[:, n0]
      if allow_shift and n1 < song.num_notes:
        hi = hi + p.shift_room(shift[:, n0])
      hi = np.minimum(hi, p.cap)
      prompts = _prompts(p, j, before, lengths[j], shift if allow_shift else None)
      rows = sampling.Rows(
          num_syllables=col([sp.end] * b), syllable_phrase=col(np.tile(phrase, (b, 1))),
          bar_ticks=col([p.bar_ticks] * b), pitch_low=col([o.pitch_low] * b),
          pitch_high=col([o.pitch_high] * b), max_per_syllable=col([o.max_notes_per_syllable] * b),
          max_bar_advance=col([o.max_bar_advance] * b), first_word=col([sp.first] * b),
          start_tick=col(lo), end_tick=col(hi), **priors)
      keys = jax.vmap(lambda k, j=j: jax.random.fold_in(jax.random.fold_in(base, k), j))(col(ks))
      dec = decode_lib.decode(gen.graphdef, gen.params, prompts, rows, gen.grids, settings, keys,
                              max_notes=budget[j], constrained=o.constrained)
      notes, num, stopped = jax.device_get((dec.notes, dec.num_notes, dec.stopped))
      for r in range(b):
        got = np.asarray(notes[r, :int(num[r])])
        if reasons[r] is None:
          reasons[r] = span_invalid_reason(notes[r], int(num[r]), bool(stopped[r]), p, j, tok,
                                           (o.pitch_low, o.pitch_high), (lo[r], hi[r]))
          if reasons[r] is not None:
            reasons[r] = f'span {j + 1} ({",".join(sp.items)}): {reasons[r]}'
          elif allow_shift and n1 < song.num_notes:
            over = int(note_ticks(got[-1:], p.bar_ticks, tok)[1][0]) - (p.end_tick[j]
                                                                         + shift[r, n0])
            shift[r, n1:] += -(-max(over, 0) // p.bar_ticks) * p.bar_ticks
        found[r].append(got)
        before[r].append(_part_b_rows(p.seps[j], got, phrase))
      if progress is not None:
        progress(start * len(p.spans) + min(b, o.num_samples - start) * (j + 1), total)
    for r, k in enumerate(ks[:o.num_samples - start]):
      if reasons[r] is not None:
        out.append(InfillSample(k, None, reasons[r]))
        continue
      try:
        new, regen = assemble(p, found[r], tok, shift[r])
      except ValueError as e:  # a check above missed something: report, do not stop
        out.append(InfillSample(k, None, f'invalid_song: {e}'))
        continue
      moved = [int(shift[r, n1] - shift[r, n0]) // p.bar_ticks if n1 < song.num_notes else 0
               for n0, n1 in p.note_range]
      out.append(InfillSample(k, new, None, regen, moved))
  return out
