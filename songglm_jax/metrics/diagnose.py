"""Why generated melodies differ from human ones: descriptive figures of a set of songs.

The objective metrics (OA of PCH, IOI, DD; MD; SBA, SPA, PEA) say *how far* generated songs are
from the reference songs; the figures here say *where*. Each is a plain float of a set of songs
(notes of all songs pooled, or a statistic over songs), so the reference set and the generated
songs can be put side by side (:func:`diagnose`). NumPy only; ticks at 480 per quarter note
(``music.meter.TPQ``). Keys are ``<group>.<figure>``; :func:`unit_of` gives each one's unit.

- **timing**: ``legato`` -- fraction of notes (after a song's first) that start exactly where the
  previous note ends; ``overlap`` -- that start before it ends. ``rest_*`` -- the rest before a
  note (``onset - previous offset``, an overlap counts as 0) in the classes 0, (0, 240],
  (240, 480], (480, 960], (960, 1920), >= 1920 ticks. ``ioi_song_{mean,median,p90}`` -- the mean
  inter-onset interval of each song (ticks; songs of >= 2 notes), summarised over songs.
  ``rest_across_barline`` -- fraction of rests (> 0 ticks) with a bar start strictly inside them.
  ``bar_step_{0,1,2,3up}_{legato,gap}`` -- the bar index difference between consecutive notes
  (3up = 3 or more) jointly with whether the note starts at the previous note's end (legato) or
  not (gap: a rest or an overlap); the eight cells sum to 1.
- **durations**: ``share_<ticks>`` -- fraction of notes of that exact duration, for the values
  given (:func:`top_durations`); ``share_other`` the rest. ``entropy_bits_{mean,std}`` -- the
  entropy (bits) of each song's duration values, over songs. ``sixteenth`` (120), ``eighth``
  (240), ``dotted`` (360 or 720), ``quarter`` (480), ``half_up`` (>= 960), ``other_value``.
- **pitch**: ``pc_entropy_bits_{mean,std}`` -- entropy of each song's pitch-class histogram.
  ``in_key_{mean,std}`` -- the largest fraction of a song's notes inside one of the 12 major
  (diatonic) scales. ``pc_top1_{mean,std}`` / ``pc_top3_{mean,std}`` -- the share of a song's
  notes on its most frequent pitch class / on its three most frequent (how strongly it centres
  on a few tones, whatever the key). ``key_same_halves`` -- fraction of songs (>= 2 notes)
  whose first half of notes (by index; the first ``ceil(n/2)``) and second half share a
  best-fitting major scale (ties count: the sets of best scales intersect).
  ``range_{mean,std}`` -- max - min pitch (semitones). ``abs_interval_mean`` -- mean |pitch
  difference| of consecutive notes (semitones), and the shares of ``interval_repeat`` (0),
  ``interval_step`` (1-2), ``interval_third`` (3-4), ``interval_leap`` (>= 5).
  ``distinct_{mean,std}`` -- distinct pitches per song.
- **phrase** (PEA's rule, ``metrics/lyric.py``): over phrase-final syllables, the fraction whose
  last note is followed by a rest >= 240 ticks (``final_rest``; the song's last note counts as
  followed by a rest), lasts >= 480 ticks (``final_long``), either (``final_either``, PEA pooled
  over syllables) and PEA as the metric averages it (``pea_song_mean``, over songs).
  ``rest_after_other`` -- the same rest condition for non-final syllables (not the song's last
  note). ``final_note_duration_mean`` / ``other_note_duration_mean`` -- mean duration (ticks) of
  the last notes of phrase-final syllables / of every other note.
- **stress** (SBA's beats, SPA's peaks): for syllables with primary stress and for unstressed
  syllables (pattern of only ``0`` digits; secondary and unknown stress are in neither), the
  fraction whose first note starts on beat 1 (``*_beat1``), on beat 3 of a 4/4 bar
  (``*_beat3``), on another beat (``*_other_beat``, beats by the denominator as in
  ``music/meter.py``), off the beats (``*_offbeat``); ``*_peak`` -- fraction holding a melodic
  peak (``music/skeleton.melodic_peaks``).
- **position**: each song cut in thirds by note index (note ``i`` of ``n`` is in third
  ``3 i // n``); ``legato_third_{1,2,3}`` and ``duration_third_{1,2,3}`` (mean, ticks).
- **spread** (what OA weighs): ``<f>_distance_{median,mean}`` -- the Euclidean distance between
  the OA feature vectors (``metrics/features.py``: ``a``, ``pch``, ``ioi`` in ticks, ``dd``) of
  two different songs of the set, over all pairs. OA compares the distances *among* generated
  songs with those from generated to reference songs; when the generated songs are distributed
  as the reference songs, both equal the reference set's own distances, so a generated set
  whose songs are more alike than the reference's (a smaller figure here) loses OA even when
  its mean is right.

A figure with an empty denominator is NaN. Which syllables are stressed or end a phrase comes
from :class:`SyllableFlags` (the lyrics'); for a generated song with the same syllables as its
reference, :func:`diagnose` uses the reference's flags, as ``metrics/lyric.py`` does.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Optional, Sequence

import numpy as np

from songglm_jax.metrics import features
from songglm_jax.music import meter
from songglm_jax.music.song import Song

EIGHTH = meter.TPQ // 2  # 240 ticks
QUARTER = meter.TPQ  # 480 ticks
REST_KEYS = ('rest_0', 'rest_0_240', 'rest_240_480', 'rest_480_960', 'rest_960_1920',
             'rest_1920_up')
_REST_EDGES = np.array([0, 240, 480, 960])  # right-inclusive; >= 1920 split off after
MAJOR = (0, 2, 4, 5, 7, 9, 11)
# SCALES[k, pc]: pitch class pc belongs to the major scale on tonic k.
SCALES = np.isin((np.arange(12)[None, :] - np.arange(12)[:, None]) % 12, MAJOR).astype(np.int64)
BEAT_CLASSES = ('beat1', 'beat3', 'other_beat', 'offbeat')
GROUPS = (('timing', 'Timing'), ('durations', 'Durations'), ('pitch', 'Pitch'),
          ('phrase', 'Phrase ends (PEA)'), ('stress', 'Stress (SBA, SPA)'),
          ('position', 'Position in song'), ('spread', 'Spread between songs (OA)'))
TOP_DURATIONS = 8


def unit_of(key: str) -> str:
  """Unit of a figure: ``'bits'``, ``'semitones'``, ``'count'``, ``'ticks'``, ``'distance'`` (of
  feature vectors) or ``'fraction'``."""
  if 'bits' in key:
    return 'bits'
  if re.match(r'pitch\.(range|abs_interval)', key):
    return 'semitones'
  if 'distinct' in key or key.startswith('count.'):
    return 'count'
  if key.startswith('spread.'):
    return 'ticks' if '.ioi_' in key else 'distance'
  if 'ioi' in key or 'duration_' in key:
    return 'ticks'
  return 'fraction'


# ---- the notes of a set of songs, concatenated ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class SyllableFlags:
  """What the lyrics say about a song's syllables: bool ``[S]`` each."""
  primary: np.ndarray  # primary stress (``stress.is_primary``)
  unstressed: np.ndarray  # pattern of only '0' digits
  final: np.ndarray  # last syllable of a phrase (``lyric.phrase_final``)


def syllable_flags(song: Song) -> SyllableFlags:
  """The flags of a song from its own lyrics (``song.syllable_stress`` or the stress lookup in
  word mode, as ``lyric.primary_stress``; phrases as ``lyric.phrase_final``)."""
  from songglm_jax.metrics import lyric
  from songglm_jax.music import stress  # lazily: the stress module loads a dictionary
  patterns = song.syllable_stress
  if patterns is None:
    patterns = stress.syllable_stress(song.syllables, mode='word')
  primary = np.array([stress.is_primary(p) for p in patterns], dtype=bool)
  unstressed = np.array([bool(p) and set(p) == {'0'} for p in patterns], dtype=bool)
  return SyllableFlags(primary, unstressed, lyric.phrase_final(song))


@dataclasses.dataclass(frozen=True)
class _Table:
  """Notes ``[N]`` and syllables ``[S]`` of ``G`` songs, concatenated (all int64 / bool)."""
  count: np.ndarray  # [G] notes per song
  first: np.ndarray  # [G] index of each song's first note
  song: np.ndarray  # [N] song of each note
  index: np.ndarray  # [N] index of the note in its song
  pitch: np.ndarray
  onset: np.ndarray
  offset: np.ndarray
  bar: np.ndarray  # [N] bar of the onset
  beat_class: np.ndarray  # [N] index into BEAT_CLASSES
  rest_across_bar: np.ndarray  # [N] a bar starts strictly inside the rest before the note
  syl_song: np.ndarray  # [S]
  syl_first: np.ndarray  # [S] first note of each syllable
  syl_last: np.ndarray  # [S] last note of each syllable
  note_syl: np.ndarray  # [N] syllable of each note (index into [S])

  @property
  def duration(self) -> np.ndarray:
    return self.offset - self.onset

  @property
  def has_prev(self) -> np.ndarray:
    return self.index > 0

  @property
  def rest(self) -> np.ndarray:
    """``[N]`` onset minus the previous note's offset (ticks); 0 at each song's first note."""
    prev_off = np.concatenate([[0], self.offset[:-1]])
    return np.where(self.has_prev, self.onset - prev_off, 0)


def _meter_of(song: Song) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Bar ``[N]``, beat class ``[N]`` and rest-across-a-barline ``[N]`` of one song's notes."""
  ts = song.time_signatures
  bar, pos = meter.bar_and_position(song.onset, ts)
  k = meter.segment_of(song.onset, ts)
  beat = meter.beat_lengths(ts)[k]
  four_four = (ts[k, 1] == 4) & (ts[k, 2] == 4)
  cls = np.where(pos == 0, 0, np.where(four_four & (pos == 2 * beat), 1,
                                       np.where(pos % beat == 0, 2, 3)))
  across = np.zeros(song.num_notes, dtype=bool)
  if song.num_notes > 1:
    prev_off = song.offset[:-1]
    later = song.onset[1:] - 1  # >= 1: onsets strictly increase from >= 0
    gap = later > prev_off
    if gap.any():
      b_end, _ = meter.bar_and_position(later[gap], ts)
      b_start, _ = meter.bar_and_position(prev_off[gap], ts)
      across[1:][gap] = b_end > b_start
  return bar, cls, across


def _table(songs: Sequence[Song]) -> _Table:
  if not songs:
    raise ValueError('diagnose: an empty set of songs')
  count = np.array([s.num_notes for s in songs], dtype=np.int64)
  syls = np.array([s.num_syllables for s in songs], dtype=np.int64)
  first = np.concatenate([[0], np.cumsum(count)[:-1]])
  syl_base = np.concatenate([[0], np.cumsum(syls)[:-1]])
  song = np.repeat(np.arange(len(songs)), count)
  meters = [_meter_of(s) for s in songs]
  syl_first = np.concatenate([s.syllable_first_note + f for s, f in zip(songs, first)])
  syl_last = np.concatenate([np.append(s.syllable_first_note[1:], s.num_notes) - 1 + f
                             for s, f in zip(songs, first)])
  return _Table(
      count=count, first=first, song=song, index=np.arange(len(song)) - first[song],
      pitch=np.concatenate([s.pitch for s in songs]).astype(np.int64),
      onset=np.concatenate([s.onset for s in songs]),
      offset=np.concatenate([s.offset for s in songs]),
      bar=np.concatenate([m[0] for m in meters]),
      beat_class=np.concatenate([m[1] for m in meters]),
      rest_across_bar=np.concatenate([m[2] for m in meters]),
      syl_song=np.repeat(np.arange(len(songs)), syls), syl_first=syl_first, syl_last=syl_last,
      note_syl=np.concatenate([s.note_syllable for s in songs]).astype(np.int64) + syl_base[song])


# ---- small helpers ------------------------------------------------------------------------
def _frac(mask: np.ndarray, among: Optional[np.ndarray] = None) -> float:
  """Fraction of True in ``mask`` (restricted to ``among``); NaN when there is nothing."""
  if among is not None:
    mask = mask[among]
  return float(mask.mean()) if mask.size else float('nan')


def _stat(values: np.ndarray, how: str) -> float:
  values = np.asarray(values, dtype=np.float64)
  values = values[~np.isnan(values)]
  if not values.size:
    return float('nan')
  if how == 'p90':
    return float(np.percentile(values, 90))
  return float(getattr(np, how)(values))


def _entropy_bits(group: np.ndarray, value: np.ndarray, groups: int) -> np.ndarray:
  """Entropy (bits) of the non-negative int ``value`` within each of ``groups`` groups: ``[G]``."""
  width = int(value.max()) + 1
  keys, counts = np.unique(group * width + value, return_counts=True)
  g = keys // width
  p = counts / np.bincount(group, minlength=groups)[g]
  return 0.0 - np.bincount(g, weights=p * np.log2(p), minlength=groups)


def _mean_std(prefix: str, values: np.ndarray) -> dict[str, float]:
  return {f'{prefix}_mean': _stat(values, 'mean'), f'{prefix}_std': _stat(values, 'std')}


# ---- the groups ---------------------------------------------------------------------------
def _timing(t: _Table) -> dict[str, float]:
  prev, rest = t.has_prev, t.rest
  legato = rest == 0
  out = {'legato': _frac(legato, prev), 'overlap': _frac(rest < 0, prev)}
  cls = np.searchsorted(_REST_EDGES, np.maximum(rest, 0), side='left')
  cls[rest >= 1920] = 5
  hist = np.bincount(cls[prev], minlength=6)
  for key, c in zip(REST_KEYS, hist):
    out[key] = c / prev.sum() if prev.any() else float('nan')
  last = t.first + t.count - 1
  ioi = np.where(t.count > 1, (t.onset[last] - t.onset[t.first]) / np.maximum(t.count - 1, 1),
                 np.nan)
  for how in ('mean', 'median', 'p90'):
    out[f'ioi_song_{how}'] = _stat(ioi, how)
  out['rest_across_barline'] = _frac(t.rest_across_bar, prev & (rest > 0))
  step = np.minimum(t.bar - np.concatenate([[0], t.bar[:-1]]), 3)[prev]
  cells = np.bincount(step * 2 + (~legato[prev]), minlength=8)
  for s, name in enumerate(('0', '1', '2', '3up')):
    for j, kind in enumerate(('legato', 'gap')):
      out[f'bar_step_{name}_{kind}'] = cells[2 * s + j] / prev.sum() if prev.any() else float(
          'nan')
  return out


def top_durations(songs: Sequence[Song], k: int = TOP_DURATIONS) -> list[int]:
  """The ``k`` most common note durations (ticks) of the songs, most common first (ties: the
  shorter first)."""
  values, counts = np.unique(np.concatenate([s.duration for s in songs]), return_counts=True)
  order = np.lexsort((values, -counts))
  return [int(v) for v in values[order[:k]]]


def _durations(t: _Table, values: Sequence[int]) -> dict[str, float]:
  dur = t.duration
  out = {}
  for v in values:
    out[f'share_{int(v)}'] = _frac(dur == v)
  out['share_other'] = _frac(~np.isin(dur, np.asarray(values, dtype=np.int64)))
  out.update(_mean_std('entropy_bits', _entropy_bits(t.song, dur, len(t.count))))
  named = {'sixteenth': dur == 120, 'eighth': dur == 240, 'dotted': (dur == 360) | (dur == 720),
           'quarter': dur == 480, 'half_up': dur >= 960}
  for key, mask in named.items():
    out[key] = _frac(mask)
  out['other_value'] = _frac(~np.logical_or.reduce(list(named.values())))
  return out


def _pitch(t: _Table) -> dict[str, float]:
  g = len(t.count)
  pc = t.pitch % 12
  out = _mean_std('pc_entropy_bits', _entropy_bits(t.song, pc, g))
  hist = np.bincount(t.song * 12 + pc, minlength=g * 12).reshape(g, 12)
  out.update(_mean_std('in_key', (hist @ SCALES.T).max(1) / t.count))
  ranked = -np.sort(-hist, axis=1)  # each song's pitch-class counts, largest first
  out.update(_mean_std('pc_top1', ranked[:, 0] / t.count))
  out.update(_mean_std('pc_top3', ranked[:, :3].sum(1) / t.count))
  half = (2 * t.index) // t.count[t.song]  # 0 for the first ceil(n/2) notes, 1 after
  halves = np.bincount((t.song * 2 + half) * 12 + pc, minlength=g * 24).reshape(g, 2, 12)
  fit = halves @ SCALES.T  # [G, 2, 12] notes of each half inside each scale
  best = fit == fit.max(-1, keepdims=True)
  same = (best[:, 0] & best[:, 1]).any(-1)
  out['key_same_halves'] = _frac(same, t.count >= 2)
  rng = np.maximum.reduceat(t.pitch, t.first) - np.minimum.reduceat(t.pitch, t.first)
  out.update(_mean_std('range', rng))
  step = np.abs(t.pitch - np.concatenate([[0], t.pitch[:-1]]))[t.has_prev]
  out['abs_interval_mean'] = _stat(step, 'mean')
  out['interval_repeat'] = _frac(step == 0)
  out['interval_step'] = _frac((step >= 1) & (step <= 2))
  out['interval_third'] = _frac((step >= 3) & (step <= 4))
  out['interval_leap'] = _frac(step >= 5)
  distinct = np.bincount(np.unique(t.song * 128 + t.pitch) // 128, minlength=g)
  out.update(_mean_std('distinct', distinct))
  return out


def _rest_after(t: _Table, note: np.ndarray) -> np.ndarray:
  """Rest (ticks) after each given note; the max int64 after a song's last note."""
  song_last = (t.index[note] == t.count[t.song[note]] - 1)
  nxt = np.minimum(note + 1, len(t.onset) - 1)
  return np.where(song_last, np.iinfo(np.int64).max, t.onset[nxt] - t.offset[note])


def _phrase(t: _Table, final: np.ndarray) -> dict[str, float]:
  last = t.syl_last
  rest = _rest_after(t, last)
  is_rest = rest >= EIGHTH
  is_long = t.duration[last] >= QUARTER
  either = is_rest | is_long
  out = {'final_rest': _frac(is_rest, final), 'final_long': _frac(is_long, final),
         'final_either': _frac(either, final)}
  g = len(t.count)
  finals = np.bincount(t.syl_song, weights=final, minlength=g)
  good = np.bincount(t.syl_song, weights=final & either, minlength=g)
  out['pea_song_mean'] = _stat(np.where(finals > 0, good / np.maximum(finals, 1), np.nan), 'mean')
  song_end = t.index[last] == t.count[t.syl_song] - 1
  out['rest_after_other'] = _frac(is_rest, ~final & ~song_end)
  final_note = np.zeros(len(t.onset), dtype=bool)
  final_note[last[final]] = True
  out['final_note_duration_mean'] = _stat(t.duration[final_note], 'mean')
  out['other_note_duration_mean'] = _stat(t.duration[~final_note], 'mean')
  return out


def _peaks(t: _Table) -> np.ndarray:
  """``[N]`` melodic peaks (``skeleton.melodic_peaks`` within each song): higher than the note
  before, not lower than the note after, neither first nor last of its song."""
  p = t.pitch
  before = np.concatenate([[0], p[:-1]])
  after = np.concatenate([p[1:], [0]])
  inner = t.has_prev & (t.index < t.count[t.song] - 1)
  return inner & (p > before) & (p >= after)


def _stress(t: _Table, primary: np.ndarray, unstressed: np.ndarray) -> dict[str, float]:
  cls = t.beat_class[t.syl_first]
  peak = np.bincount(t.note_syl, weights=_peaks(t), minlength=len(t.syl_first)) > 0
  out = {}
  for name, flags in (('primary', primary), ('unstressed', unstressed)):
    for c, beat in enumerate(BEAT_CLASSES):
      out[f'{name}_{beat}'] = _frac(cls == c, flags)
    out[f'{name}_peak'] = _frac(peak, flags)
  return out


def _position(t: _Table) -> dict[str, float]:
  third = (3 * t.index) // t.count[t.song]
  legato = t.rest == 0
  out = {}
  for k in range(3):
    out[f'legato_third_{k + 1}'] = _frac(legato, t.has_prev & (third == k))
  for k in range(3):
    out[f'duration_third_{k + 1}'] = _stat(t.duration[third == k], 'mean')
  return out


def _spread(songs: Sequence[Song]) -> dict[str, float]:
  out = {}
  for name, x in features.feature_matrices(songs).items():
    x = np.asarray(x, np.float64)
    g = len(x)
    if g < 2:
      d = np.zeros(0)
    else:
      sq = (x * x).sum(1)
      d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
      d = np.sqrt(np.maximum(d2[np.triu_indices(g, 1)], 0.0))
    out[f'{name.lower()}_distance_median'] = _stat(d, 'median')
    out[f'{name.lower()}_distance_mean'] = _stat(d, 'mean')
  return out


def spread(songs: Sequence[Song]) -> dict[str, float]:
  """The ``spread`` figures of a set of songs."""
  return _spread(songs)


# ---- public: one group, or every figure of a set ------------------------------------------
def timing(songs: Sequence[Song]) -> dict[str, float]:
  """The ``timing`` figures of a set of songs (keys without the group prefix)."""
  return _timing(_table(songs))


def durations(songs: Sequence[Song], values: Optional[Sequence[int]] = None
              ) -> dict[str, float]:
  """The ``durations`` figures; ``values`` (ticks) default to the set's :func:`top_durations`."""
  return _durations(_table(songs), top_durations(songs) if values is None else values)


def pitch(songs: Sequence[Song]) -> dict[str, float]:
  """The ``pitch`` figures of a set of songs."""
  return _pitch(_table(songs))


def phrase(songs: Sequence[Song], flags: Sequence[SyllableFlags]) -> dict[str, float]:
  """The ``phrase`` figures, phrase-final syllables from ``flags`` (one per song)."""
  return _phrase(_table(songs), _concat(flags, 'final', songs))


def stress(songs: Sequence[Song], flags: Sequence[SyllableFlags]) -> dict[str, float]:
  """The ``stress`` figures, stressed syllables from ``flags`` (one per song)."""
  return _stress(_table(songs), _concat(flags, 'primary', songs),
                 _concat(flags, 'unstressed', songs))


def position(songs: Sequence[Song]) -> dict[str, float]:
  """The ``position`` figures of a set of songs."""
  return _position(_table(songs))


def _concat(flags: Sequence[SyllableFlags], field: str, songs: Sequence[Song]) -> np.ndarray:
  if len(flags) != len(songs):
    raise ValueError(f'diagnose: {len(flags)} syllable flags for {len(songs)} songs')
  for f, s in zip(flags, songs):
    if len(getattr(f, field)) != s.num_syllables:
      raise ValueError(f'diagnose: song {s.name!r} has {s.num_syllables} syllables, its '
                       f'{field} flags {len(getattr(f, field))}')
  return np.concatenate([np.asarray(getattr(f, field), dtype=bool) for f in flags])


def figures(songs: Sequence[Song], flags: Optional[Sequence[SyllableFlags]] = None,
            duration_values: Optional[Sequence[int]] = None) -> dict[str, float]:
  """Every figure of a set of songs, keyed ``<group>.<figure>``, plus ``count.songs``,
  ``count.notes``, ``count.syllables``. ``flags`` default to each song's own
  (:func:`syllable_flags`), ``duration_values`` to the set's :func:`top_durations`."""
  t = _table(songs)
  flags = [syllable_flags(s) for s in songs] if flags is None else flags
  values = top_durations(songs) if duration_values is None else duration_values
  parts = {'timing': _timing(t), 'durations': _durations(t, values), 'pitch': _pitch(t),
           'phrase': _phrase(t, _concat(flags, 'final', songs)),
           'stress': _stress(t, _concat(flags, 'primary', songs),
                             _concat(flags, 'unstressed', songs)),
           'position': _position(t), 'spread': _spread(songs)}
  out = {f'{group}.{k}': float(v) for group, part in parts.items() for k, v in part.items()}
  out.update({'count.songs': float(len(songs)), 'count.notes': float(len(t.onset)),
              'count.syllables': float(len(t.syl_first))})
  return out


def diagnose(reference: Mapping[str, Song],
             sample_sets: Sequence[tuple[str, Mapping[str, Song]]]) -> dict:
  """The figures of the reference songs against the generated songs, pairing by name.

  Args:
    reference: ``{song name: Song}``, the human songs.
    sample_sets: ``[(set name, {song name: Song})]``, songs generated for the same lyrics.

  Returns:
    ``{'reference': figures, 'generated': figures, 'generated_std': ..., 'difference': ...,
    'duration_values', 'num_pairs', 'num_sample_sets', 'misaligned'}``: ``reference`` of the
    reference songs that are in at least one pair, ``generated`` of every paired generated song
    of every set pooled (the ``spread`` figures: their mean over the sets), ``generated_std``
    the sample standard deviation (``ddof=1``, 0.0 for one set: ``evaluation.set_std``, as the
    metrics' ``*_std``) of each figure over the sample sets (0 for one set; NaN where no set
    defines it), ``difference`` generated minus
    reference. The duration values are the 8 most common of the reference, then those of the
    generated songs' 8 most common that are not among them. Lyric flags: the reference's for a
    generated song with the same syllables, the song's own otherwise (``misaligned`` counts them).

  Raises:
    ValueError: no generated song has a reference song of the same name.
  """
  pairs = [(name, [(n, g[n]) for n in sorted(set(g) & set(reference))]) for name, g in sample_sets]
  names = sorted({n for _, p in pairs for n, _ in p})
  if not names:
    raise ValueError('diagnose: no generated song has a reference song of the same name')
  ref_songs = [reference[n] for n in names]
  ref_flags = {n: syllable_flags(reference[n]) for n in names}
  misaligned = 0
  gen_flags: list[list[SyllableFlags]] = []
  for _, p in pairs:
    flags = []
    for n, g in p:
      if g.syllables == reference[n].syllables:
        flags.append(ref_flags[n])
      else:
        flags.append(syllable_flags(g))
        misaligned += 1
    gen_flags.append(flags)
  gen_all = [g for _, p in pairs for _, g in p]
  values = top_durations(ref_songs)
  values += [v for v in top_durations(gen_all) if v not in values]
  ref = figures(ref_songs, [ref_flags[n] for n in names], values)
  gen = figures(gen_all, [f for fs in gen_flags for f in fs], values)
  per_set = [figures([g for _, g in p], fl, values) for (_, p), fl in zip(pairs, gen_flags) if p]
  from songglm_jax.metrics.evaluation import set_std  # pylint: disable=import-outside-toplevel
  std = {}
  for key in gen:
    vals = np.array([s[key] for s in per_set], dtype=np.float64)
    std[key] = set_std(vals[~np.isnan(vals)])
    if key.startswith('spread.') and len(per_set) > 1:
      # Between songs of one set, as OA measures it (pooled sets would pair a song's samples).
      gen[key] = float(np.mean(vals[~np.isnan(vals)])) if (~np.isnan(vals)).any() else np.nan
  return {'reference': ref, 'generated': gen, 'generated_std': std,
          'difference': {k: gen[k] - ref[k] for k in ref},
          'duration_values': values, 'num_pairs': len(gen_all),
          'num_sample_sets': len(sample_sets), 'misaligned': misaligned}
