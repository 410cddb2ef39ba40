"""Lyrics -> songs with a trained GLM: batching, decoding (``model/decode.py``), checking,
detokenizing.

:class:`Generator` takes the model explicitly (``model_cfg, field_sizes, tokenizer, graphdef,
params``) so it runs on a checkpoint (``train.inference.load_for_inference``) or on random
weights (tests, benchmarks). One call decodes every (lyrics window, sample) row of a run in
batches of ``batch_size`` rows padded to one shape (rows sorted by length, the last batch
filled with copies), so a run compiles once.

Seeds: the key of sample ``k`` of lyrics ``i`` (window ``j``) is
``fold_in(fold_in(fold_in(key(seed), i), j), k)``: a sample does not depend on the batch size or
on which other lyrics are in the run (up to float rounding of differently padded shapes).

Validity (:func:`invalid_reason`) is checked on every decoded row, constrained or not: real
values in every note field, word ids 0 .. S-1 stepping by 0/1 (every syllable sung), ended by
the stopping rule, onsets never before the previous note's end, positions inside the bar,
pitches in the range. Constrained decoding always passes (tested); unconstrained decoding is how
the public SongGLM code samples.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from songglm_jax.data import tokenizer as tk
from songglm_jax.inference.generation_rules import FIELDS, GenerateOptions, invalid_reason  # noqa: F401  (re-exported)
from songglm_jax.inference.generation_rules import prior_rows
from songglm_jax.inference.lyrics import Lyrics
from songglm_jax.model import decode as decode_lib
from songglm_jax.model import sampling
from songglm_jax.music import meter
from songglm_jax.music.song import Song

@dataclasses.dataclass
class Sample:
  """One generated song: ``song`` when valid, else ``reason`` says what is wrong."""
  lyrics_index: int
  sample: int
  song: Optional[Song]
  reason: Optional[str] = None


def lyric_rows(lyrics: Lyrics, tokenizer: tk.Tokenizer) -> np.ndarray:
  """``[BOS] syllables [EOS]`` token rows int32 [S + 2, F] of the lyrics, via
  ``Tokenizer.tokenize`` of a placeholder melody (one 30-tick note per syllable)."""
  s = lyrics.num_syllables
  onset = np.arange(s) * 30
  song = Song(pitch=np.full(s, 60), onset=onset, offset=onset + 30, velocity=np.full(s, 80),
              note_syllable=np.arange(s), syllables=lyrics.syllables,
              syllable_phrase=lyrics.syllable_phrase, syllable_stress=lyrics.syllable_stress,
              name=lyrics.name)
  return tokenizer.tokenize(song)[:s + 2]


def notes_to_song(lyrics: Lyrics, rows: np.ndarray, notes: np.ndarray, tokenizer: tk.Tokenizer,
                  velocity: int = 80) -> Song:
  """The Song of valid decoded notes int32 [N, 5], with the lyrics' own syllable texts."""
  n = len(notes)
  out = np.full((n, len(tk.FIELDS)), tk.NA, np.int32)
  out[:, tk.F.type] = tk.NOTE
  for i, f in enumerate(FIELDS):
    out[:, getattr(tk.F, f)] = notes[:, i]
  out[:, tk.F.phrase_id] = lyrics.syllable_phrase[notes[:, 4] - tk.NUM_SPECIAL] + tk.NUM_SPECIAL
  special = lambda v: np.full((1, len(tk.FIELDS)), v, np.int32)
  tokens = np.concatenate([rows, special(tk.BOS), out, special(tk.EOS)])
  song = tokenizer.detokenize(tokens, time_signatures=np.array([[0, *lyrics.time_signature]]),
                              tempo=lyrics.tempo, name=lyrics.name, velocity=velocity)
  return song.replace(syllables=lyrics.syllables, syllable_stress=lyrics.syllable_stress)


def join_songs(parts: Sequence[Song], name: str) -> Song:
  """Songs one after another, each starting at the bar after the previous one's last note."""
  song = parts[0]
  for nxt in parts[1:]:
    bar = int(meter.bar_lengths(song.time_signatures[:1])[0])
    shift = -(-int(song.offset.max()) // bar) * bar
    cat = lambda a, b: np.concatenate([a, b])
    song = Song(pitch=cat(song.pitch, nxt.pitch), onset=cat(song.onset, nxt.onset + shift),
                offset=cat(song.offset, nxt.offset + shift),
                velocity=cat(song.velocity, nxt.velocity),
                note_syllable=cat(song.note_syllable, nxt.note_syllable + song.num_syllables),
                syllables=song.syllables + nxt.syllables,
                syllable_phrase=cat(song.syllable_phrase, nxt.syllable_phrase + song.num_phrases),
                syllable_stress=(None if song.syllable_stress is None or nxt.syllable_stress is None
                                 else song.syllable_stress + nxt.syllable_stress),
                tempo=song.tempo,
                time_signatures=song.time_signatures, name=name)
  return song.replace(name=name)


@jax.jit
def _row_keys(base: jax.Array, lyric: jax.Array, window: jax.Array, sample: jax.Array):
  fold = jax.random.fold_in
  return jax.vmap(lambda i, j, k: fold(fold(fold(base, i), j), k))(lyric, window, sample)


class Generator:
  """Samples songs for lyrics with one model (see the module docstring)."""

  def __init__(self, model_cfg, field_sizes: Mapping[str, int], tokenizer: tk.Tokenizer,
               graphdef, params, options: GenerateOptions = GenerateOptions(), *,
               prompt_mask: str = 'MASK'):
    """``prompt_mask``: the whole-melody cue the model was fine-tuned with
    (``config.pipeline.finetune_mask``: 'MASK' or 'LMASK')."""
    options.validate()
    self.prompt_mask = prompt_mask
    if dict(field_sizes) != tokenizer.field_sizes:
      raise ValueError('Generator: field_sizes differ from the tokenizer\'s '
                       f'({dict(field_sizes)} vs {tokenizer.field_sizes})')
    self.model_cfg, self.tokenizer, self.options = model_cfg, tokenizer, options
    self.graphdef, self.params = graphdef, params
    self.grids = sampling.make_grids(tokenizer.position_grid, tokenizer.duration_grid)

  def _check(self, lyrics: Lyrics) -> None:
    bar = lyrics.bar_ticks
    if bar % sampling.GRID_PERIOD or bar > self.tokenizer.vocab.max_bar_ticks:
      raise ValueError(f'lyrics {lyrics.name!r}: time signature {lyrics.time_signature} has '
                       f'bars of {bar} ticks; expected a multiple of {sampling.GRID_PERIOD} up to'
                       f' {self.tokenizer.vocab.max_bar_ticks}')
    room = int(self.grids.step) * lyrics.num_syllables
    if room > self.tokenizer.vocab.max_bars * bar:
      raise ValueError(f'lyrics {lyrics.name!r}: {lyrics.num_syllables} syllables may not fit in'
                       f' {self.tokenizer.vocab.max_bars} bars')

  def generate(self, lyrics: Sequence[Lyrics], progress=None) -> list[list[Sample]]:
    """``options.num_samples`` songs per lyrics: ``out[i][k]`` is sample k of ``lyrics[i]``.

    ``progress(done_rows, total_rows)`` is called after each batch when given.
    """
    o, cfg = self.options, self.model_cfg
    units = []  # (lyrics index, window index, window, rows)
    for i, lyr in enumerate(lyrics):
      self._check(lyr)
      for j, w in enumerate(lyr.windows(cfg.num_word_ids, cfg.num_phrase_ids)):
        units.append((i, j, w, lyric_rows(w, self.tokenizer)))
    s_max = max(u[2].num_syllables for u in units)
    max_notes = min(o.max_notes_per_syllable * s_max, o.max_notes, cfg.max_len - 2)
    if max_notes < s_max:
      raise ValueError(f'generate: {s_max} syllables need a note budget >= {s_max}, have '
                       f'{max_notes} (generate.max_notes, model.max_len - 2)')
    length = -(-(s_max + 4) // 8) * 8
    todo = sorted(((u, k) for u in range(len(units)) for k in range(o.num_samples)),
                  key=lambda r: units[r[0]][2].num_syllables)
    base = jax.random.key(o.seed)
    decoded = {}
    settings = o.settings()
    for start in range(0, len(todo), o.batch_size):
      batch = todo[start:start + o.batch_size]
      batch = batch + [batch[-1]] * (o.batch_size - len(batch))
      us = [units[u] for u, _ in batch]
      prompts = decode_lib.build_prompts([u[3] for u in us], length, self.prompt_mask)
      phr = np.stack([np.pad(u[2].syllable_phrase, (0, s_max - u[2].num_syllables), mode='edge')
                      for u in us])
      col = lambda v: jnp.asarray(np.asarray(v, np.int32))
      rows = sampling.Rows(
          num_syllables=col([u[2].num_syllables for u in us]), syllable_phrase=col(phr),
          bar_ticks=col([u[2].bar_ticks for u in us]), pitch_low=col([o.pitch_low] * len(us)),
          pitch_high=col([o.pitch_high] * len(us)),
          max_per_syllable=col([o.max_notes_per_syllable] * len(us)),
          max_bar_advance=col([o.max_bar_advance] * len(us)), **prior_rows(
              o, [(u[2].syllable_stress, u[2].syllable_phrase, u[2].time_signature) for u in us],
              s_max, self.tokenizer.duration_grid))
      keys = _row_keys(base, col([units[u][0] for u, _ in batch]),
                       col([units[u][1] for u, _ in batch]), col([k for _, k in batch]))
      out = decode_lib.decode(self.graphdef, self.params, prompts, rows, self.grids, settings,
                              keys, max_notes=max_notes, constrained=o.constrained)
      notes, num, stopped = jax.device_get((out.notes, out.num_notes, out.stopped))
      for r, key in enumerate(batch[:len(todo) - start]):
        decoded[key] = (notes[r], int(num[r]), bool(stopped[r]))
      if progress is not None:
        progress(min(start + o.batch_size, len(todo)), len(todo))
    return self._assemble(lyrics, units, decoded)

  def infill(self, song: Song, spans, options: Optional[GenerateOptions] = None, **kw):
    """Regenerate ``spans`` of ``song`` (a SPEC string such as ``'phrase:3,bars:5-8'`` or 0-based
    ``(first, end)`` syllable ranges), keeping every other note: ``infill.infill`` (its module
    docstring says how), with ``options`` (default: this generator's)."""
    from songglm_jax.inference import infill as infill_lib  # pylint: disable=import-outside-toplevel
    return infill_lib.infill(self, song, spans, options, **kw)

  def _assemble(self, lyrics, units, decoded) -> list[list[Sample]]:
    o = self.options
    out = [[Sample(i, k, None) for k in range(o.num_samples)] for i in range(len(lyrics))]
    parts: dict = {}
    for u, (i, j, w, rows) in enumerate(units):
      for k in range(o.num_samples):
        notes, num, stopped = decoded[(u, k)]
        reason = invalid_reason(notes, num, stopped, w.num_syllables, w.bar_ticks,
                                self.tokenizer, (o.pitch_low, o.pitch_high))
        if reason is None:
          try:
            song = notes_to_song(w, rows, notes[:num], self.tokenizer, o.velocity)
          except ValueError as e:  # a check above missed something: report, do not stop
            song, reason = None, f'invalid_song: {e}'
        else:
          song = None
        parts.setdefault((i, k), []).append((song, reason))
    for (i, k), ps in parts.items():
      bad = [r for s, r in ps if s is None]
      if bad:
        out[i][k].reason = bad[0]
      else:
        out[i][k].song = join_songs([s for s, _ in ps], lyrics[i].name)
    return out
