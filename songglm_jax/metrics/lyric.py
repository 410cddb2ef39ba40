"""Metrics that see the lyrics (after ReLyMe's lyric-melody relationships): AA, SBA, SPA, PEA.

Per (generated, reference) pair:

- **AA** (alignment accuracy): when both songs have the same syllables (texts, in order), the
  fraction of syllables sung on as many notes in the generated song as in the reference, and the
  mean absolute difference of notes per syllable (``AA_notes_abs_diff``). Otherwise the pair is
  *misaligned*: both values are NaN and the pair is listed.
- **SBA** (stress on strong beats), per song: among syllables with primary stress, the fraction
  whose first note starts exactly on a strong beat -- beats 1 and 3 of a 4/4 bar, beat 1 of any
  other bar (bars and beats from the song's time signatures, ``music/meter.py``).
- **SPA** (stress on melodic peaks), per song: among the same primary-stress syllables, the
  fraction with at least one melodic peak among their notes (``music/skeleton.melodic_peaks``).
- **PEA** (phrase endings), per song: among phrase-final syllables, the fraction whose last note
  is followed by a rest of at least an eighth (240 ticks) or lasts at least a quarter (480
  ticks); the song's last note counts as followed by a rest.

Which syllables are stressed: ``song.syllable_stress`` when set, else the stress module's lookup
(``music/stress.syllable_stress``, word mode); primary stress is ``stress.is_primary``. Which
syllables end a phrase: the phrases of the *reference* song -- its ``syllable_phrase`` when it has
more than one phrase, else ``music/phrases.phrase_ends`` (punctuation, or melodic boundaries when
the lyrics have too little punctuation) -- for both songs of an aligned pair, so the generated
melody is judged on the lyrics' phrases, not on phrases cut from its own rests. A misaligned
generated song uses its own phrases.

A fraction with an empty denominator (no stressed or no phrase-final syllable) is NaN. Set values
are means over the pairs where the value is defined (:func:`set_means`). The functions that do the
counting take the stress flags, peaks and phrase ends as arrays, so they can be used (and tested)
without the lexicon modules.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

from songglm_jax.music import meter
from songglm_jax.music.song import Song

EIGHTH = meter.TPQ // 2
QUARTER = meter.TPQ
KEYS = ('AA', 'AA_notes_abs_diff', 'SBA_generated', 'SBA_reference', 'SPA_generated',
        'SPA_reference', 'PEA_generated', 'PEA_reference')


def _fraction(hits: int, total: int) -> float:
  return hits / total if total else float('nan')


# ---- counting, on explicit arrays --------------------------------------------------------
def strong_beat_notes(song: Song) -> np.ndarray:
  """bool ``[N]``: the note starts exactly on beat 1 of its bar, or on beat 3 of a 4/4 bar."""
  ts = song.time_signatures
  _, pos = meter.bar_and_position(song.onset, ts)
  k = meter.segment_of(song.onset, ts)
  beat = meter.beat_lengths(ts)[k]
  four_four = (ts[k, 1] == 4) & (ts[k, 2] == 4)
  return (pos == 0) | (four_four & (pos == 2 * beat))


def alignment_accuracy(generated: Song, reference: Song) -> tuple[float, float]:
  """(AA, mean |notes per syllable difference|); (NaN, NaN) when the syllables differ."""
  if generated.syllables != reference.syllables:
    return float('nan'), float('nan')
  g, r = generated.notes_per_syllable, reference.notes_per_syllable
  return float(np.mean(g == r)), float(np.mean(np.abs(g - r)))


def stress_on_strong_beats(song: Song, primary: np.ndarray) -> float:
  """SBA of one song given bool ``[S]`` primary-stress flags."""
  primary = _flags(primary, song.num_syllables, 'primary')
  strong = strong_beat_notes(song)[song.syllable_first_note]
  return _fraction(int(np.sum(primary & strong)), int(np.sum(primary)))


def stress_on_peaks(song: Song, primary: np.ndarray, peaks: np.ndarray) -> float:
  """SPA of one song given bool ``[S]`` primary-stress flags and bool ``[N]`` peak flags."""
  primary = _flags(primary, song.num_syllables, 'primary')
  peaks = _flags(peaks, song.num_notes, 'peaks')
  has_peak = np.bincount(song.note_syllable, weights=peaks, minlength=song.num_syllables) > 0
  return _fraction(int(np.sum(primary & has_peak)), int(np.sum(primary)))


def phrase_endings(song: Song, phrase_final: np.ndarray) -> float:
  """PEA of one song given bool ``[S]`` phrase-final flags."""
  phrase_final = _flags(phrase_final, song.num_syllables, 'phrase_final')
  first = song.syllable_first_note
  last = np.append(first[1:] - 1, song.num_notes - 1)
  rest = np.full(song.num_syllables, np.iinfo(np.int64).max)
  inner = last < song.num_notes - 1
  rest[inner] = song.onset[last[inner] + 1] - song.offset[last[inner]]
  good = (rest >= EIGHTH) | (song.duration[last] >= QUARTER)
  return _fraction(int(np.sum(phrase_final & good)), int(np.sum(phrase_final)))


def _flags(values, size: int, what: str) -> np.ndarray:
  arr = np.asarray(values, dtype=bool)
  if arr.shape != (size,):
    raise ValueError(f'{what}: expected shape ({size},), got {arr.shape}')
  return arr


# ---- what the flags come from -------------------------------------------------------------
def primary_stress(song: Song) -> np.ndarray:
  """bool ``[S]``: syllables with primary stress (``song.syllable_stress`` or the lookup)."""
  from songglm_jax.music import stress  # lazily: the stress module loads a dictionary
  patterns = song.syllable_stress
  if patterns is None:
    patterns = stress.syllable_stress(song.syllables, mode='word')
  return np.fromiter((stress.is_primary(p) for p in patterns), dtype=bool,
                     count=song.num_syllables)


def melodic_peaks(song: Song) -> np.ndarray:
  from songglm_jax.music import skeleton
  return np.asarray(skeleton.melodic_peaks(song.pitch), dtype=bool)


def phrase_final(song: Song) -> np.ndarray:
  """bool ``[S]``: the last syllable of each of the song's phrases (segmented when it has one)."""
  if song.num_phrases > 1:
    ends = np.ones(song.num_syllables, dtype=bool)
    ends[:-1] = song.syllable_phrase[1:] != song.syllable_phrase[:-1]
    return ends
  from songglm_jax.music import phrases
  return np.asarray(phrases.phrase_ends(song), dtype=bool)


@dataclasses.dataclass
class PairLyricMetrics:
  aligned: bool
  AA: float
  AA_notes_abs_diff: float
  SBA_generated: float
  SBA_reference: float
  SPA_generated: float
  SPA_reference: float
  PEA_generated: float
  PEA_reference: float

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ReferenceLyrics:
  """What a reference song contributes to every pair it is in (computed once per song)."""
  primary: np.ndarray  # bool [S]
  final: np.ndarray  # bool [S]
  sba: float
  spa: float
  pea: float


def reference_lyrics(reference: Song) -> ReferenceLyrics:
  primary, final = primary_stress(reference), phrase_final(reference)
  return ReferenceLyrics(primary, final, stress_on_strong_beats(reference, primary),
                         stress_on_peaks(reference, primary, melodic_peaks(reference)),
                         phrase_endings(reference, final))


def pair_metrics(generated: Song, reference: Song,
                 ref: Optional[ReferenceLyrics] = None) -> PairLyricMetrics:
  """All lyric-aware metrics of one pair (see the module docstring); ``ref`` may carry the
  reference's part, precomputed by :func:`reference_lyrics`."""
  ref = ref or reference_lyrics(reference)
  aa, aa_diff = alignment_accuracy(generated, reference)
  aligned = not math.isnan(aa)
  primary = ref.primary if aligned else primary_stress(generated)  # stress is the lyrics'
  final = ref.final if aligned else phrase_final(generated)
  return PairLyricMetrics(
      aligned=aligned, AA=aa, AA_notes_abs_diff=aa_diff,
      SBA_generated=stress_on_strong_beats(generated, primary), SBA_reference=ref.sba,
      SPA_generated=stress_on_peaks(generated, primary, melodic_peaks(generated)),
      SPA_reference=ref.spa,
      PEA_generated=phrase_endings(generated, final), PEA_reference=ref.pea)


def set_means(pairs: Sequence[PairLyricMetrics]) -> dict[str, float]:
  """Mean of each metric over the pairs where it is defined (NaN when it is nowhere), plus the
  generated-minus-reference differences ``SBA_diff``, ``SPA_diff``, ``PEA_diff``."""
  out: dict[str, float] = {}
  for key in KEYS:
    vals = np.array([getattr(p, key) for p in pairs], dtype=np.float64)
    ok = ~np.isnan(vals)
    out[key] = float(vals[ok].mean()) if ok.any() else float('nan')
  for name in ('SBA', 'SPA', 'PEA'):
    out[f'{name}_diff'] = out[f'{name}_generated'] - out[f'{name}_reference']
  return out


def misaligned(pairs: Sequence[PairLyricMetrics], names: Sequence[str]) -> list[str]:
  return [n for n, p in zip(names, pairs) if not p.aligned]
