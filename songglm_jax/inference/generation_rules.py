"""How songs are sampled and what a sung melody must satisfy: :class:`GenerateOptions`
(``config.generate``'s sampling fields, per note field) and :func:`invalid_reason` (the validity
rules every decoded row is checked against). Whole-song generation (``generation.py``) and
infilling (``infill.py``) both build on these; ``generation`` re-exports them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from songglm_jax.data import tokenizer as tk
from songglm_jax.model import sampling
from songglm_jax.music import stress

FIELDS = sampling.NOTE_COLUMNS  # fields with sampling settings
# The lyric-melody priors (GenerateOptions); each 0 = off.
PRIORS = ('stress_beat_bias', 'phrase_rest_bias', 'stress_duration_bias', 'phrase_final_long_bias',
          'legato_bias')
# Added later: configs of older workdirs lack them (the default, off, applies).
OPTIONAL = PRIORS + ('duration_offsets',)


def parse_offsets(text: str) -> dict[int, float]:
  """``'240:0.3,480:-0.35'`` -> ``{240: 0.3, 480: -0.35}`` (duration ticks: logit offset; ''
  -> {}).

  Raises:
    ValueError: not ``ticks:offset`` pairs of a positive whole number and a finite number, or a
      duration given twice.
  """
  out: dict[int, float] = {}
  for part in (x.strip() for x in str(text).split(',') if x.strip()):
    ticks, sep, value = part.partition(':')
    try:
      t, v = int(ticks), float(value)
    except ValueError:
      t, v = 0, float('nan')
    if not sep or t <= 0 or not math.isfinite(v) or t in out:
      raise ValueError(f'generate.duration_offsets: bad entry {part!r} in {text!r}, expected '
                       "comma-separated 'ticks:offset' pairs (positive ticks, each once; finite "
                       "offsets), e.g. '240:0.3,480:-0.35'")
    out[t] = v
  return out


def format_offsets(offsets: dict[int, float]) -> str:
  """The inverse of :func:`parse_offsets`: ``{480: -0.35, 240: 0.3}`` -> ``'240:0.3,480:-0.35'``
  (sorted by ticks; {} -> '')."""
  return ','.join(f'{t}:{v:g}' for t, v in sorted(offsets.items()))


def _is_number(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclasses.dataclass(frozen=True)
class GenerateOptions:
  """How songs are sampled (``config.generate`` mirrors these fields).

  ``temperature``, ``top_k`` and ``top_p`` map each field of :data:`FIELDS` to its setting
  (temperature <= 0: greedy; top_k 0 and top_p 1.0: off; every value finite). Defaults follow
  the public SongGLM code: temperature 0.9, top-k 10, 10 samples per song.

  Lyric-melody priors (beyond the paper; 0 = off, the default): ``stress_beat_bias`` is added to
  the position logits of strong beats for the first note of a syllable with primary stress and
  subtracted for an unstressed one (``sampling.position_prior``); ``phrase_rest_bias`` is added
  to the onsets that leave a rest of an eighth or more before the first note of a phrase;
  ``stress_duration_bias`` is added to the durations that end on a strong beat when the next
  syllable has primary stress and subtracted when it is unstressed (``sampling.duration_prior``);
  ``duration_offsets`` (``'ticks:offset,...'``, '' = off) adds a fixed offset to the logit of
  each duration it names, for every note (a calibration of the duration marginal; ticks must be
  values of the tokenizer's duration grid). ``phrase_final_long_bias`` is added to the durations
  of a quarter note or longer for the notes
  of a phrase-final syllable (the last syllable before a change of phrase id; not the song's
  last, which the rest after the song already ends); ``legato_bias`` (a melody prior) is added,
  for every note but the first of the song and the first of a phrase, to the bar and then the
  position at which the note starts exactly where the previous one ends
  (``sampling.bar_prior``, ``sampling.legato_weight``).
  """
  num_samples: int = 10
  seed: int = 0
  batch_size: int = 20
  temperature: Mapping[str, float] = dataclasses.field(
      default_factory=lambda: {f: 0.9 for f in FIELDS})
  top_k: Mapping[str, int] = dataclasses.field(default_factory=lambda: {f: 10 for f in FIELDS})
  top_p: Mapping[str, float] = dataclasses.field(default_factory=lambda: {f: 1.0 for f in FIELDS})
  constrained: bool = True
  max_notes_per_syllable: int = 8
  max_notes: int = 512
  pitch_low: int = 36
  pitch_high: int = 96
  max_bar_advance: int = 2
  velocity: int = 80
  stress_beat_bias: float = 0.0
  phrase_rest_bias: float = 0.0
  stress_duration_bias: float = 0.0
  phrase_final_long_bias: float = 0.0
  legato_bias: float = 0.0
  duration_offsets: str = ''

  def validate(self) -> None:
    bad = lambda f, want: ValueError(f'generate.{f}: got {getattr(self, f)!r}, expected {want}')
    for f in ('num_samples', 'batch_size', 'max_notes_per_syllable', 'max_notes',
              'max_bar_advance'):
      if int(getattr(self, f)) < 1:
        raise bad(f, 'an integer >= 1')
    if not 0 <= self.pitch_low <= self.pitch_high <= 127:
      raise ValueError(f'generate.pitch_low/pitch_high: got {self.pitch_low}..{self.pitch_high},'
                       ' expected 0 <= low <= high <= 127')
    if not 1 <= self.velocity <= 127:
      raise bad('velocity', 'in 1..127')
    if not (_is_number(self.seed) and float(self.seed).is_integer() and
            0 <= self.seed < 2**32):
      raise bad('seed', f'a whole number in 0 .. {2**32 - 1} (JAX keys use 32 bits of it)')
    for f in PRIORS:
      if not (_is_number(getattr(self, f)) and math.isfinite(getattr(self, f))):
        raise bad(f, 'a finite number')
    if not isinstance(self.duration_offsets, str):
      raise bad('duration_offsets', "a string of 'ticks:offset' pairs")
    parse_offsets(self.duration_offsets)
    for knob in ('temperature', 'top_k', 'top_p'):
      d = getattr(self, knob)
      if set(d) != set(FIELDS):
        raise ValueError(f'generate.{knob}: expected a value for each of {FIELDS}, got {dict(d)}')
      if not all(_is_number(v) and math.isfinite(v) for v in d.values()):
        raise bad(knob, 'finite numbers')
    if any(not 0 < v <= 1 for v in self.top_p.values()):
      raise bad('top_p', 'values in (0, 1]')
    if any(v < 0 or not float(v).is_integer() for v in self.top_k.values()):
      raise bad('top_k', 'whole numbers >= 0')

  @classmethod
  def from_config(cls, config: Any, **overrides) -> 'GenerateOptions':
    """From ``config.generate`` (every field but ``seed``; temperature/top_k/top_p one value per
    field) and ``config.seed``, then ``overrides`` (None values ignored).

    Raises:
      ValueError: a field is missing or a value is out of range.
    """
    section = config.generate
    names = [f.name for f in dataclasses.fields(cls) if f.name != 'seed']
    missing = [n for n in names if n not in section and n not in OPTIONAL]
    if missing:
      raise ValueError(f'config.generate: missing field(s) {missing}')
    kw = {n: section[n] for n in names if n in section}
    kw['seed'] = int(config.seed)
    for knob in ('temperature', 'top_k', 'top_p'):
      kw[knob] = {f: kw[knob][f] for f in FIELDS}
    kw.update({k: v for k, v in overrides.items() if v is not None})
    opts = cls(**kw)
    opts.validate()
    return opts

  def duration_priors(self, syllable_stress: Sequence[str]) -> Optional[np.ndarray]:
    """Per-syllable ``duration_bias`` float32 [S] (None when the option is 0)."""
    if not self.stress_duration_bias:
      return None
    return np.float32(self.stress_duration_bias) * stress_sign(syllable_stress)

  def long_priors(self, syllable_phrase: np.ndarray) -> Optional[np.ndarray]:
    """Per-syllable ``long_bias`` float32 [S] (None when the option is 0)."""
    if not self.phrase_final_long_bias:
      return None
    phrase = np.asarray(syllable_phrase)
    final = np.zeros(len(phrase), bool)
    final[:-1] = phrase[:-1] != phrase[1:]
    return np.where(final, np.float32(self.phrase_final_long_bias), np.float32(0))

  def legato_priors(self, num_syllables: int) -> Optional[np.ndarray]:
    """Per-syllable ``legato_bias`` float32 [S] (None when the option is 0); the exceptions
    (a song's and a phrase's first note) are the decoder's (``sampling.legato_weight``)."""
    if not self.legato_bias:
      return None
    return np.full(num_syllables, self.legato_bias, np.float32)

  def duration_offset_vector(self, duration_grid: Sequence[int]) -> Optional[np.ndarray]:
    """float32 [len(duration_grid)]: the offset of each grid duration (None when
    ``duration_offsets`` is empty).

    Raises:
      ValueError: a duration that is not on the grid.
    """
    offsets = parse_offsets(self.duration_offsets)
    if not offsets:
      return None
    grid = np.asarray(duration_grid, np.int64)
    out = np.zeros(len(grid), np.float32)
    for ticks, v in offsets.items():
      at = np.flatnonzero(grid == ticks)
      if not len(at):
        raise ValueError(f'generate.duration_offsets: {ticks} ticks is not a duration of the '
                         f'tokenizer grid ({grid[0]}..{grid[-1]} in steps of {grid[0]})')
      out[at[0]] = v
    return out

  def priors(self, syllable_stress: Sequence[str], syllable_phrase: np.ndarray
             ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Per-syllable ``(beat_bias, rest_bias)`` float32 [S] of one lyrics window for
    ``sampling.Rows`` (each None when its option is 0)."""
    beat = rest = None
    if self.stress_beat_bias:
      beat = np.float32(self.stress_beat_bias) * stress_sign(syllable_stress)
    if self.phrase_rest_bias:
      phrase = np.asarray(syllable_phrase)
      starts = np.zeros(len(phrase), bool)
      starts[1:] = phrase[1:] != phrase[:-1]
      rest = np.where(starts, np.float32(self.phrase_rest_bias), np.float32(0))
    return beat, rest

  def settings(self) -> sampling.Settings:
    return sampling.Settings(tuple(float(self.temperature[f]) for f in FIELDS),
                             tuple(int(self.top_k[f]) for f in FIELDS),
                             tuple(float(self.top_p[f]) for f in FIELDS))



def stress_sign(syllable_stress: Sequence[str]) -> np.ndarray:
  """float32 [S]: +1 for primary stress, -1 for an unstressed syllable, 0 otherwise ('2', '?')."""
  return np.asarray([1.0 if stress.is_primary(p) else -1.0 if p and set(p) <= {'0'} else 0.0
                     for p in syllable_stress], np.float32)


def prior_rows(options: GenerateOptions, rows: Sequence[tuple[Sequence[str], np.ndarray, Any]],
               s_max: int, duration_grid: Optional[Sequence[int]] = None) -> dict[str, Any]:
  """The ``sampling.Rows`` fields of the lyric-melody priors of a batch ({} when all are off).

  Args:
    rows: per decoded row, (syllable stress patterns, syllable phrase ids, time signature);
      a row of ``S <= s_max`` syllables is padded with zeros (no prior).
    duration_grid: the tokenizer's duration grid (ticks); needed for ``duration_offsets``.
  """
  o = options
  out: dict[str, Any] = {}
  if o.duration_offsets:
    if duration_grid is None:
      raise ValueError('prior_rows: duration_offsets need the duration grid')
    vec = o.duration_offset_vector(duration_grid)
    if vec is not None:
      out['duration_offset'] = jnp.asarray(np.repeat(vec[None], len(rows), axis=0))
  if not any(getattr(o, f) for f in PRIORS):
    return out
  per = [o.priors(stress_, phrase) for stress_, phrase, _ in rows]
  pad = lambda a: np.pad(a, (0, s_max - len(a)))
  if o.stress_beat_bias:
    out['beat_bias'] = jnp.asarray(np.stack([pad(b) for b, _ in per]))
  if o.phrase_rest_bias:
    out['rest_bias'] = jnp.asarray(np.stack([pad(r) for _, r in per]))
  if o.stress_duration_bias:
    out['duration_bias'] = jnp.asarray(np.stack([pad(o.duration_priors(st))
                                                 for st, _, _ in rows]))
  if o.phrase_final_long_bias:
    out['long_bias'] = jnp.asarray(np.stack([pad(o.long_priors(phrase)) for _, phrase, _ in rows]))
  if o.legato_bias:
    out['legato_bias'] = jnp.asarray(np.stack([pad(o.legato_priors(len(phrase)))
                                               for _, phrase, _ in rows]))
  if o.stress_beat_bias or o.stress_duration_bias:
    out['strong_mid'] = jnp.asarray(np.array([tuple(ts) == (4, 4) for _, _, ts in rows]))
  return out


def invalid_reason(notes: np.ndarray, num_notes: int, stopped: bool, num_syllables: int,
                   bar_ticks: int, tokenizer: tk.Tokenizer, pitch_range: tuple[int, int]
                   ) -> Optional[str]:
  """Why a decoded row is not a valid song (None when it is).

  Args:
    notes: int32 [>= num_notes, 5] token ids in ``sampling.NOTE_COLUMNS`` order.
    pitch_range: (low, high) MIDI pitches allowed.
  """
  if not stopped:
    return 'no_stop'
  if num_notes == 0:
    return 'no_notes'
  n = np.asarray(notes[:num_notes], np.int64) - tk.NUM_SPECIAL
  bar, pos, dur, pitch, word = n.T
  sizes = tokenizer.field_sizes
  limits = [sizes[f] - tk.NUM_SPECIAL for f in FIELDS]
  if np.any(n < 0) or np.any(n >= np.array(limits)):
    return 'special_or_out_of_range'
  if word[0] != 0 or np.any((np.diff(word) != 0) & (np.diff(word) != 1)):
    return 'word_order'
  if word[-1] != num_syllables - 1:
    return 'missing_syllables'
  pos_t = tokenizer.position_grid[pos]
  if np.any(pos_t >= bar_ticks):
    return 'position_outside_bar'
  onset = bar * bar_ticks + pos_t
  end = onset + tokenizer.duration_grid[dur]
  if np.any(onset[1:] < onset[:-1]):
    return 'onset_back'
  if np.any(onset[1:] < end[:-1]):
    return 'overlap'
  if np.any(pitch < pitch_range[0]) or np.any(pitch > pitch_range[1]):
    return 'pitch_range'
  return None
