"""One decoding step's sampling: per-field temperature / top-k / top-p and the alignment and time
constraints as logit masks (pure jnp, traced inside the decoder's loop).

A new note row is sampled field by field in :data:`SAMPLE_ORDER`: word id first (it decides the
syllable, hence the phrase, and whether the song ends), then bar, position, duration, pitch, each
field's mask depending on the fields drawn before it. Every field is drawn from its own head's
logits; masks are applied *before* top-k/top-p, so the k best tokens are the k best allowed ones.

Stopping rule (one, for both modes): a row ends at the first sampled token whose ``word_id``
field is SEP -- the row that closes a span in fine-tuning (its target is SEP in every field); that
token is not a note. A row that reaches ``max_notes`` notes without it is cut there
(``stopped`` stays False). Unconstrained decoding applies this rule to freely sampled fields.

Constraints (``constrained=True``), with ``w`` the previous note's syllable (-1 before the first
note), ``S`` the row's syllable count, ``L`` its bar length in ticks and ``cap = max_bars * L``:

* word id: ``w`` (stay on the syllable) or ``w + 1`` (move on), or SEP once ``w == S - 1``; the
  first note therefore takes 0, every syllable gets a note and the song ends only after the
  last syllable's notes. Staying is refused when the syllable already has
  ``max_notes_per_syllable`` notes, when the note budget would not leave one slot per remaining
  syllable, or when the time left before ``cap`` would not (see below) -- so the move (or the
  stop) is forced, never a dead end.
* phrase id: the phrase of the chosen syllable (not sampled; the model has no phrase head).
* bar: not before the bar in which the previous note ends, at most ``max_bar_advance`` bars after
  it, and holding a grid point at or after the previous note's end (onsets never go back and a
  note never starts before the previous one ends).
* position: a grid point inside the bar (``< L``), at or after the previous note's end.
* duration: a real grid value (``>= 30`` ticks, positive) no longer than the bar.
* pitch: within ``[pitch_low, pitch_high]``.
* room: every choice keeps ``end + STEP * R <= cap`` where ``R`` is the number of syllables still
  without a note and ``STEP`` (50 ticks) bounds what a forced note costs (shortest duration 30 +
  the widest gap from a tick to the next grid point, 20). Hence a valid choice exists at every
  step and bars never run out. (Needs ``L`` a multiple of the 120-tick grid period.)

Infilling one span (``inference/infill.py``; ``Rows.first_word`` / ``start_tick`` /
``end_tick`` set): the same rules with ``w`` starting at ``first_word - 1``, the previous end at ``start_tick`` and
``cap`` replaced by ``end_tick``, so the span sings exactly syllables ``first_word .. S - 1``
between the kept notes around it.

Special ids (PAD, BOS, MASK, ...) are never allowed in a constrained note.

Without an alignment head (a model whose ``target_fields`` lack ``word_id``: the "- 2D alignment"
ablation, ``configs/ablations.py:no_alignment``) the word id is not sampled but forced
(:func:`next_syllable`): one note per syllable in order, and SEP -- the stop -- after the last
syllable's note. The other fields are drawn as above (constrained or not), so such a row is a
valid song whenever the constraints are on.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from songglm_jax.data import tokenizer as tk

NOTE_COLUMNS = ('bar', 'position', 'duration', 'pitch', 'word_id')
"""Columns of a sampled note (token ids, as in the token rows)."""
SAMPLE_ORDER = ('word_id', 'bar', 'position', 'duration', 'pitch')
GRID_PERIOD = 120  # ticks: the token time grid repeats every 120 ticks (tokenizer.time_grid)
NS = tk.NUM_SPECIAL


class Grids(NamedTuple):
  """The token time grid (ticks), from the tokenizer."""
  position: jax.Array     # int32 [V_position - NS]: value of each position id
  duration: jax.Array     # int32 [V_duration - NS]: value of each duration id
  next_point: jax.Array   # int32 [GRID_PERIOD + 1]: next grid point >= r for r in 0..120
  step: jax.Array         # int32 []: ticks a forced note may cost (see module docstring)


def make_grids(position_grid, duration_grid) -> Grids:
  """Grids from ``tokenizer.position_grid`` / ``duration_grid`` (NumPy int arrays of ticks)."""
  pos, dur = np.asarray(position_grid, np.int64), np.asarray(duration_grid, np.int64)
  period = pos[pos < GRID_PERIOD]
  ext = (np.arange(0, pos.max() + GRID_PERIOD, GRID_PERIOD)[:, None] + period[None]).ravel()
  if (len(period) == 0 or period[0] != 0 or not np.array_equal(ext[ext <= pos.max()], pos)
      or np.any(pos % tk.GRID_UNIT)):
    raise ValueError(f'decode: the position grid must start at 0, hold multiples of '
                     f'{tk.GRID_UNIT} ticks and repeat every {GRID_PERIOD} ticks '
                     '(tokenizer.time_grid)')
  if len(dur) == 0 or dur[0] <= 0 or np.any(dur % tk.GRID_UNIT):
    raise ValueError(f'decode: the duration grid must hold positive multiples of {tk.GRID_UNIT} '
                     'ticks')
  points = np.append(period, GRID_PERIOD)
  nxt = points[np.searchsorted(points, np.arange(GRID_PERIOD + 1))]
  max_gap = int(np.diff(points).max())
  step = int(dur[0]) + max_gap - tk.GRID_UNIT
  return Grids(jnp.asarray(pos, jnp.int32), jnp.asarray(dur, jnp.int32),
               jnp.asarray(nxt, jnp.int32), jnp.asarray(step, jnp.int32))


class Settings(NamedTuple):
  """Per-field sampling settings, one entry per field in :data:`NOTE_COLUMNS` order.

  Plain Python numbers: a static (hashable) argument of the jitted decoder, so each setting
  compiles its own cheapest path (top-k selects with ``lax.top_k``, ~25x faster on CPU than the
  full sort that top-p alone needs).
  """
  temperature: tuple[float, ...]  # <= 0 means greedy (argmax of the allowed tokens)
  top_k: tuple[int, ...]          # 0 = off
  top_p: tuple[float, ...]        # 1.0 = off


class ChainLogits(NamedTuple):
  """Logits computed on demand: ``fn(field, given) -> float32 [B, V_field]``, where ``given``
  maps the fields already drawn for this note to their token ids [B]."""
  fn: Callable
  sizes: Mapping[str, int]  # vocabulary size of every field in NOTE_COLUMNS

  def __call__(self, field: str, given: Mapping[str, jax.Array]) -> jax.Array:
    return self.fn(field, given)


class Rows(NamedTuple):
  """What the constraints know about each row, all [B] int32 unless said."""
  num_syllables: jax.Array
  syllable_phrase: jax.Array      # int32 [B, S_max] (raw phrase ids, padding repeats the last)
  bar_ticks: jax.Array
  pitch_low: jax.Array
  pitch_high: jax.Array
  max_per_syllable: jax.Array
  max_bar_advance: jax.Array
  # Infilling one span (``inference/infill.py``); None: a whole song. The row sings syllables
  # ``first_word .. num_syllables - 1``, its first onset at or after ``start_tick`` and every end
  # at or before ``end_tick`` (both multiples of tk.GRID_UNIT) instead of 0 and ``cap``.
  first_word: Optional[jax.Array] = None
  start_tick: Optional[jax.Array] = None
  end_tick: Optional[jax.Array] = None
  # Lyric-melody priors (:func:`position_prior`); None: none. Added to the position logits of a
  # syllable's first note: ``beat_bias[b, w]`` on strong beats (beat 1; also the middle of the
  # bar where ``strong_mid``, a 4/4 bar) and ``rest_bias[b, w]`` on onsets at least
  # ``REST_TICKS`` after the previous note's end, for syllable ``w``.
  beat_bias: Optional[jax.Array] = None  # float32 [B, S_max]
  strong_mid: Optional[jax.Array] = None  # bool [B]
  rest_bias: Optional[jax.Array] = None  # float32 [B, S_max]
  # ``duration_bias[b, w + 1]`` is added to the duration logits of a note of syllable ``w`` where
  # the note would end on a strong beat (:func:`duration_prior`); None: none.
  duration_bias: Optional[jax.Array] = None  # float32 [B, S_max]
  # ``long_bias[b, w]`` is added to the duration logits of the notes of syllable ``w`` that last
  # at least ``LONG_TICKS`` (:func:`duration_prior`); None: none.
  long_bias: Optional[jax.Array] = None  # float32 [B, S_max]
  # ``legato_bias[b, w]`` is added, for a note of syllable ``w``, to the bar that holds the
  # previous note's end and to the position that starts exactly there (:func:`legato_weight`;
  # not the first note of a song or of a phrase); None: none.
  legato_bias: Optional[jax.Array] = None  # float32 [B, S_max]
  # ``duration_offset[b, i]`` is added to the logit of duration grid value ``i`` (token
  # ``NS + i``) of every note (:func:`duration_prior`); None: none.
  duration_offset: Optional[jax.Array] = None  # float32 [B, V_duration - NS]


class State(NamedTuple):
  """Per-row decoding state, all [B]."""
  word: jax.Array       # int32: raw word id of the previous note (-1 before the first)
  count: jax.Array      # int32: notes on that syllable so far
  end: jax.Array        # int32: tick at which the previous note ends (0 before the first)
  num_notes: jax.Array  # int32
  done: jax.Array       # bool: the row has ended
  stopped: jax.Array    # bool: it ended by the stopping rule (not by the note budget)


def initial_state(batch: int, rows: Optional[Rows] = None) -> State:
  """Before the first note: word ``first_word - 1`` (-1 for a whole song), end ``start_tick``
  (0)."""
  z = jnp.zeros((batch,), jnp.int32)
  f = jnp.zeros((batch,), bool)
  word = z - 1 if rows is None or rows.first_word is None else rows.first_word - 1
  end = z if rows is None or rows.start_tick is None else rows.start_tick
  return State(word=word, count=z, end=end, num_notes=z, done=f, stopped=f)


def sample_width(size: int, top_k: int, top_p: float) -> int:
  """How many Gumbel draws :func:`sample_field` needs for a field of ``size`` ids."""
  return top_k if 0 < top_k < size else size


def sample_field(noise: jax.Array, logits: jax.Array, allowed: jax.Array, temperature: float,
                 top_k: int, top_p: float) -> jax.Array:
  """One token id per row: int32 [B] from logits [B, V] restricted to ``allowed`` [B, V].

  The allowed logits are divided by ``temperature``, cut to the ``top_k`` best (0: all), then to
  the smallest set of best tokens whose probability reaches ``top_p`` (the best one always
  stays), and sampled by the Gumbel-max trick with ``noise`` [B, >= sample_width] (standard
  Gumbel draws). Every row needs an allowed token.
  """
  x = jnp.where(allowed, logits, -jnp.inf)
  if temperature <= 0:
    return jnp.argmax(x, axis=-1).astype(jnp.int32)
  x = x / temperature
  v = x.shape[-1]
  if 0 < top_k < v:
    vals, idx = jax.lax.top_k(x, top_k)
  elif top_p < 1.0:
    idx = jnp.argsort(-x, axis=-1)
    vals = jnp.take_along_axis(x, idx, axis=-1)
  else:
    return jnp.argmax(x + noise[:, :v], axis=-1).astype(jnp.int32)
  if top_p < 1.0:  # vals are sorted, best first
    probs = jax.nn.softmax(vals, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs
    vals = jnp.where((before < top_p) | (jnp.arange(vals.shape[-1]) == 0), vals, -jnp.inf)
  pick = jnp.argmax(vals + noise[:, :vals.shape[-1]], axis=-1)
  return jnp.take_along_axis(idx, pick[:, None], axis=-1)[:, 0].astype(jnp.int32)


def _onset_floor(end: jax.Array, grids: Grids) -> jax.Array:
  """The first grid tick at or after ``end`` [B]."""
  base = (end // GRID_PERIOD) * GRID_PERIOD
  return base + grids.next_point[end - base]


def constrained_masks(st: State, rows: Rows, grids: Grids, t, max_notes: int, sizes):
  """Closures giving each field's allowed ids [B, V] from the fields drawn before it."""
  s, big_l = rows.num_syllables, rows.bar_ticks
  cap = (sizes['bar'] - NS) * big_l if rows.end_tick is None else rows.end_tick
  w = st.word

  def word():
    raw = jnp.arange(sizes['word_id'])[None] - NS
    left = s - 1 - w  # syllables still without a note if this note stays on w
    stay = ((st.num_notes > 0) & (st.count < rows.max_per_syllable) & (max_notes - t - 1 >= left)
            & (st.end + grids.step * (left + 1) <= cap))
    move = (w + 1 <= s - 1) & (t < max_notes)
    sep = (w == s - 1)
    return (((raw == w[:, None]) & stay[:, None]) | ((raw == (w + 1)[:, None]) & move[:, None])
            | ((raw + NS == tk.SEP) & sep[:, None]))

  def after(new_word):
    room = grids.step * (s - 1 - new_word)  # ticks kept for the syllables after this one
    floor = _onset_floor(st.end, grids)
    lim = (cap - room)[:, None]

    def bar():
      b = jnp.arange(sizes['bar'])[None] - NS
      lo = jnp.maximum(b * big_l[:, None], floor[:, None])
      return ((b >= 0) & (lo < (b + 1) * big_l[:, None]) & (lo + grids.duration[0] <= lim)
              & (b <= (st.end // big_l + rows.max_bar_advance)[:, None]))

    def position(b):
      p = jnp.arange(sizes['position'])[None] - NS
      g = grids.position[jnp.clip(p, 0, grids.position.shape[0] - 1)]
      onset = (b * big_l)[:, None] + g
      return ((p >= 0) & (g < big_l[:, None]) & (onset >= st.end[:, None])
              & (onset + grids.duration[0] <= lim))

    def duration(onset):
      d = jnp.arange(sizes['duration'])[None] - NS
      g = grids.duration[jnp.clip(d, 0, grids.duration.shape[0] - 1)]
      return (d >= 0) & (g <= big_l[:, None]) & (onset[:, None] + g <= lim)

    def pitch():
      p = jnp.arange(sizes['pitch'])[None] - NS
      return (p >= rows.pitch_low[:, None]) & (p <= rows.pitch_high[:, None])

    return bar, position, duration, pitch

  return word, after


def _strong(at: jax.Array, rows: Rows) -> jax.Array:
  """bool, same shape as ``at`` [B, V] (ticks from the start of a bar): a strong beat (beat 1;
  the middle of a 4/4 bar)."""
  big_l = rows.bar_ticks[:, None]
  mid = jnp.zeros_like(big_l, bool) if rows.strong_mid is None else rows.strong_mid[:, None]
  return (at == 0) | (mid & (2 * at == big_l))


REST_TICKS = 240  # an eighth note: the rest the phrase-ending metric (PEA) counts
LONG_TICKS = 480  # a quarter note: the final note the phrase-ending metric counts as long


def legato_weight(st: State, rows: Rows, word_id: jax.Array) -> Optional[jax.Array]:
  """float32 [B]: the legato prior of this note -- ``legato_bias`` of its syllable -- or 0 where
  a rest is natural: the first note of a song, and the first note of a syllable that starts a
  phrase (where ``rest_bias`` acts). A span's first note when infilling counts as any other
  note (its previous note is the kept one before the span). None without ``legato_bias``."""
  if rows.legato_bias is None:
    return None
  w = word_id - NS
  size = rows.legato_bias.shape[1]

  def take(a, i):
    return jnp.take_along_axis(a, jnp.clip(i, 0, a.shape[1] - 1)[:, None], axis=1)[:, 0]

  phrase_start = (w <= 0) | (take(rows.syllable_phrase, w) != take(rows.syllable_phrase, w - 1))
  on = (w >= 0) & (w < size) & (st.word >= 0) & ~((w != st.word) & phrase_start)
  return jnp.where(on, take(rows.legato_bias, w), 0.0)


def bar_prior(st: State, rows: Rows, word_id: jax.Array, num_bars: int) -> Optional[jax.Array]:
  """float32 [B, V_bar] added to the bar logits (None without ``legato_bias``): the note's
  :func:`legato_weight` on the bar that holds the previous note's end, the only bar where the
  note can start without a rest."""
  lw = legato_weight(st, rows, word_id)
  if lw is None:
    return None
  b = jnp.arange(num_bars)[None] - NS
  return lw[:, None] * (b == (st.end // rows.bar_ticks)[:, None])


def position_prior(st: State, rows: Rows, grids: Grids, word_id: jax.Array, bar: jax.Array,
                   num_positions: int) -> Optional[jax.Array]:
  """float32 [B, V_position] added to the position logits (None when ``rows`` has no priors).

  A note that starts a syllable (its word id differs from the previous note's) is moved by
  ``beat_bias`` of that syllable where the position is a strong beat, and by ``rest_bias``
  where the onset leaves a rest of at least :data:`REST_TICKS` after the previous note (zero
  before the first note of a song). Every note gets its :func:`legato_weight` on the position
  that starts where the previous note ends. Positive values draw the note there, negative ones
  push it away. Unused positions get 0 (they are masked anyway).
  """
  if rows.beat_bias is None and rows.rest_bias is None and rows.legato_bias is None:
    return None
  w = word_id - NS
  starts = (w != st.word) & (w >= 0)
  at = jnp.clip(w, 0, None)[:, None]
  p = jnp.arange(num_positions)[None] - NS
  g = grids.position[jnp.clip(p, 0, grids.position.shape[0] - 1)]
  real = p >= 0
  onset = ((bar - NS) * rows.bar_ticks)[:, None] + g
  out = jnp.zeros((word_id.shape[0], num_positions), jnp.float32)
  if rows.beat_bias is not None:
    out += jnp.take_along_axis(rows.beat_bias, at, axis=1) * (real & _strong(g, rows))
  if rows.rest_bias is not None:
    rest = real & (onset - st.end[:, None] >= REST_TICKS) & (st.word >= 0)[:, None]
    out += jnp.take_along_axis(rows.rest_bias, at, axis=1) * rest
  out = jnp.where(starts[:, None], out, 0.0)
  lw = legato_weight(st, rows, word_id)
  if lw is not None:
    out += lw[:, None] * (real & (onset == st.end[:, None]))
  return out


def duration_prior(rows: Rows, grids: Grids, word_id: jax.Array, onset: jax.Array,
                   num_durations: int) -> Optional[jax.Array]:
  """float32 [B, V_duration] added to the duration logits (None without ``duration_bias``,
  ``long_bias`` and ``duration_offset``).

  ``duration_bias``: a note of syllable ``w`` that lasts until a strong beat lets a legato next
  note start on it; when the next syllable ``w + 1`` is stressed (positive bias) those durations
  are favoured, when it is unstressed (negative) avoided. The prior looks one syllable ahead
  because the position prior can only move a note later, opening a rest; this one shapes the
  note before. ``long_bias``: ``long_bias[b, w]`` on durations of at least :data:`LONG_TICKS`
  for every note of syllable ``w`` (set on phrase-final syllables: a phrase ends on a long note).
  ``duration_offset``: a fixed offset per duration value, for every note.
  """
  if rows.duration_bias is None and rows.long_bias is None and rows.duration_offset is None:
    return None
  w = word_id - NS
  d = jnp.arange(num_durations)[None] - NS
  g = grids.duration[jnp.clip(d, 0, grids.duration.shape[0] - 1)]
  out = jnp.zeros((word_id.shape[0], num_durations), jnp.float32)
  if rows.duration_bias is not None:
    nxt = w + 1
    has_next = (w >= 0) & (nxt < rows.num_syllables) & (nxt < rows.duration_bias.shape[1])
    at = jnp.clip(nxt, 0, rows.duration_bias.shape[1] - 1)[:, None]
    bias = jnp.where(has_next, jnp.take_along_axis(rows.duration_bias, at, axis=1)[:, 0], 0.0)
    ends = _strong((onset[:, None] + g) % rows.bar_ticks[:, None], rows) & (d >= 0)
    out += bias[:, None] * ends
  if rows.long_bias is not None:
    has = (w >= 0) & (w < rows.long_bias.shape[1])
    at = jnp.clip(w, 0, rows.long_bias.shape[1] - 1)[:, None]
    bias = jnp.where(has, jnp.take_along_axis(rows.long_bias, at, axis=1)[:, 0], 0.0)
    out += bias[:, None] * ((g >= LONG_TICKS) & (d >= 0))
  if rows.duration_offset is not None:
    at = jnp.clip(d, 0, rows.duration_offset.shape[1] - 1)
    out += jnp.where(d >= 0, jnp.take(rows.duration_offset, at[0], axis=1), 0.0)
  return out


def next_syllable(st: State, rows: Rows) -> jax.Array:
  """The forced word id token [B] of a model without an alignment head: the syllable after the
  previous note's (0 for the first note), SEP once the last syllable has its note."""
  nxt = st.word + 1
  return jnp.where(nxt <= rows.num_syllables - 1, nxt + NS, tk.SEP).astype(jnp.int32)


def sample_note(keys: jax.Array, logits: Mapping[str, jax.Array] | ChainLogits, st: State,
                rows: Rows, grids: Grids, settings: Settings, t, *, max_notes: int,
                constrained: bool, record: Optional[dict] = None, forced_words: bool = False
                ) -> tuple[jax.Array, jax.Array, State]:
  """Sample note ``t`` of every row.

  Args:
    keys: one PRNG key per row [B] (this step's).
    logits: {field: float32 [B, V_field]} at the position that predicts note ``t``, or a
      :class:`ChainLogits` called in :data:`SAMPLE_ORDER` with the token
      ids [B] drawn so far for this note (``given``: {field: ids}), for a model whose later
      fields are conditioned on earlier ones (``model/chain.py``).
    record: if given, filled with the logits each field was drawn from.
    st: the state before note ``t``.
    t: int32 scalar, index of the note being sampled (0 .. max_notes; at ``max_notes`` only the
      stop is possible).
    forced_words: the model has no ``word_id`` head (``logits`` holds none): the word id is
      :func:`next_syllable`, not sampled (module docstring).

  Returns:
    (note int32 [B, 5] token ids in :data:`NOTE_COLUMNS` order, is_note bool [B] -- the row
    gained a note -- and the new state).
  """
  given: dict[str, jax.Array] = {}

  def field_logits(field):
    lg = logits(field, dict(given)) if isinstance(logits, ChainLogits) else logits[field]
    if record is not None:
      record[field] = lg
    return lg

  drawn = tuple(f for f in NOTE_COLUMNS if not (forced_words and f == 'word_id'))
  sizes = {f: (int(logits.sizes[f]) if isinstance(logits, ChainLogits) else logits[f].shape[-1])
           for f in drawn}
  col = {f: NOTE_COLUMNS.index(f) for f in NOTE_COLUMNS}
  width = max(sample_width(sizes[f], settings.top_k[col[f]], settings.top_p[col[f]])
              for f in drawn)
  # One Gumbel draw for all fields of a row (one threefry call per step instead of one per field).
  noise = jax.vmap(lambda k: jax.random.gumbel(k, (len(NOTE_COLUMNS), width)))(keys)

  def draw(field, allowed, live, prior=None):
    allowed = allowed | ~live[:, None]  # ended/stopping rows: anything (never used)
    c = col[field]
    lg = field_logits(field)
    if prior is not None:
      lg = lg + prior
    given[field] = sample_field(noise[:, c], lg, allowed,
                                settings.temperature[c], settings.top_k[c], settings.top_p[c])
    return given[field]

  prior = lambda word_id, bar: position_prior(st, rows, grids, word_id, bar, sizes['position'])
  bprior = lambda word_id: bar_prior(st, rows, word_id, sizes['bar'])
  dprior = lambda word_id, onset: duration_prior(rows, grids, word_id, onset, sizes['duration'])

  live = ~st.done
  everything = lambda f: jnp.ones((1, sizes[f]), bool)
  big_l = rows.bar_ticks
  if forced_words:
    given['word_id'] = next_syllable(st, rows)
  if constrained:
    word_mask, after = constrained_masks(st, rows, grids, t, max_notes, sizes)
    word_id = given['word_id'] if forced_words else draw('word_id', word_mask(), live)
    note_live = live & (word_id != tk.SEP)
    bar_m, pos_m, dur_m, pitch_m = after(word_id - NS)
    bar = draw('bar', bar_m(), note_live, bprior(word_id))
    pos = draw('position', pos_m(bar - NS), note_live, prior(word_id, bar))
    onset = (bar - NS) * big_l + grids.position[jnp.clip(pos - NS, 0, None)]
    dur = draw('duration', dur_m(onset), note_live, dprior(word_id, onset))
    pitch = draw('pitch', pitch_m(), note_live)
  else:
    word_id = given['word_id'] if forced_words else draw('word_id', everything('word_id'), live)
    note_live = live & (word_id != tk.SEP)
    bar = draw('bar', everything('bar'), note_live, bprior(word_id))
    pos = draw('position', everything('position'), note_live, prior(word_id, bar))
    onset = (bar - NS) * big_l + grids.position[
        jnp.clip(pos - NS, 0, grids.position.shape[0] - 1)]
    dur = draw('duration', everything('duration'), note_live, dprior(word_id, onset))
    pitch = draw('pitch', everything('pitch'), note_live)
  dur_ticks = grids.duration[jnp.clip(dur - NS, 0, grids.duration.shape[0] - 1)]
  is_note = note_live & (t < max_notes)
  new_word = word_id - NS
  new = State(
      word=jnp.where(is_note, new_word, st.word),
      count=jnp.where(is_note, jnp.where(new_word == st.word, st.count + 1, 1), st.count),
      end=jnp.where(is_note, onset + dur_ticks, st.end),
      num_notes=st.num_notes + is_note.astype(jnp.int32),
      done=st.done | (live & ~is_note),
      stopped=st.stopped | (live & (word_id == tk.SEP)))
  note = jnp.stack([bar, pos, dur, pitch, word_id], axis=-1)
  return jnp.where(is_note[:, None], note, tk.PAD), is_note, new
