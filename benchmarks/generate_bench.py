"""Melody decoding: notes/s with the KV cache vs full recomputation, and invalid-song fractions.

    .venv/bin/python benchmarks/generate_bench.py [--only default,peer_size,paper_small]
        [--workdir=W] [--plain_malloc] [--repeats 3] [--full_repeats 2]

Speed (random weights, float32): each row generates exactly N notes after a 100-syllable lyric
part (Part A of 104 tokens, then SEP). To force exactly N notes the constraint rows claim N
syllables with at most one note each (the prompt still holds 100 syllables); the timing model
therefore has a 512-entry word-id table and head so that N = 400 fits. Timed: the whole jitted
``decode`` call (prompt encoding + N steps, every field sampled with temperature 0.9 / top-k 10
under the constraints), fastest of ``--repeats`` runs after a compiling run (best case; the
median run is in ``notes_per_s_median``).

* ``notes_per_s.<setting>_b1`` / ``_b10``: KV cache, N = 200, batch 1 / 10.
* ``..._full_recompute``: the public SongGLM approach: at every step the model re-runs the whole
  sequence so far (Part A + SEP + notes, padded up to a multiple of 32 tokens so a few shapes
  compile) and all output heads, then samples the same way (same keys, so the same notes up to
  float rounding: ``same_notes_fraction``); fastest of ``--full_repeats`` whole runs after a
  compiling pass (median in ``notes_per_s_median``). Batch 10 of paper_small would take ~6
  minutes a run on one core, so it is only estimated, from one timed forward per 32-token bucket:
  ``..._full_recompute_estimated`` (also listed in ``estimated``).
* ``kv_speedup_200_measured.<setting>_b<batch>``: KV vs full recomputation, both measured and
  both best-of-N (``..._median``: median over median); the headline is ``peer_size_b10`` (ten
  samples per lyric, the public setting) and ``paper_small_b1``, where one decoding step reads
  all 34M float32 weights (136 MB) and runs at this machine's memory bandwidth (~21 GB/s for a
  matrix-vector product, ~6.5 ms a step), while the recomputation is compute-bound.
* ``kv_speedup_200_estimated.paper_small_b10``: the same against the estimated recomputation.
* ``time_per_note_ms.<setting>``: batch 1, N = 50 / 100 / 200 / 400 (flat: a step costs the
  same whatever the position, the cache being a fixed buffer of Part A + N slots).

Validity: ``invalid_fraction_{unconstrained,constrained}``: 10 samples for each of 20 lyrics
(the first 20 songs of the shared fine-tuning sample when present, else built-in texts) from an
untrained default-size model whose tokenizer is fitted on those lyrics; with ``--workdir`` also
``trained.*`` with that workdir's checkpoint. A song is invalid for the reasons of
``generation.invalid_reason`` (counts in ``invalid_reasons``).
"""

from __future__ import annotations

import argparse
import collections
import os
import time

import common
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from songglm_jax.inference import generation
from songglm_jax.inference import lyrics as lyrics_lib
from songglm_jax.data import tokenizer as tk
from songglm_jax.model import ModelConfig, synthetic
from songglm_jax.model import decode as decode_lib
from songglm_jax.model import sampling
from songglm_jax.model.random_weights import random_params

SETTINGS = {
    'default': dict(d_model=128, num_layers=2, num_heads=4, d_ff=512),
    'peer_size': dict(d_model=256, num_layers=4, num_heads=8, d_ff=512),
    'paper_small': dict(d_model=1024, num_layers=4, num_heads=8, d_ff=2048),
}
SYLLABLES, NOTES, BUCKET = 100, 200, 32
TEXTS = ('Twinkle, twinkle, little star, how I wonder what you are! Up above the world so high, '
         'like a diamond in the sky.',
         'Row, row, row your boat, gently down the stream; merrily, merrily, merrily, merrily, '
         'life is but a dream.',
         'Amazing grace, how sweet the sound that saved a wretch like me. I once was lost, but '
         'now am found, was blind, but now I see.',
         'Hush, little baby, don\'t say a word, mama\'s gonna buy you a mockingbird.')


def timing_setup(model_kw: dict, batch: int, notes: int):
  """Model, prompts and constraint rows that decode exactly ``notes`` notes per row."""
  sizes = synthetic.synthetic_field_sizes(num_syllables=5000, num_stress=40, max_bars=512)
  sizes['word_id'] = tk.NUM_SPECIAL + 512
  cfg = ModelConfig(**model_kw, dropout_rate=0.0, max_len=1024, num_word_ids=512)
  graphdef, params = random_params(cfg, sizes)
  rng = np.random.default_rng(0)
  rows_l = []
  for _ in range(batch):
    r = np.full((SYLLABLES + 2, len(tk.FIELDS)), tk.NA, np.int32)
    r[0], r[-1] = tk.BOS, tk.EOS
    r[1:-1, tk.F.type] = tk.LYRIC
    r[1:-1, tk.F.syllable] = rng.integers(tk.NUM_SPECIAL, sizes['syllable'], SYLLABLES)
    r[1:-1, tk.F.stress] = rng.integers(tk.NUM_SPECIAL, sizes['stress'], SYLLABLES)
    r[1:-1, tk.F.word_id] = tk.NUM_SPECIAL + np.arange(SYLLABLES)
    r[1:-1, tk.F.phrase_id] = tk.NUM_SPECIAL + np.arange(SYLLABLES) // 8
    rows_l.append(r)
  prompts = decode_lib.build_prompts(rows_l, SYLLABLES + 4)
  col = lambda v: jnp.asarray(np.asarray(v, np.int32))
  rows = sampling.Rows(col([notes] * batch), col(np.tile(np.arange(notes) // 8, (batch, 1))),
                       col([1920] * batch), col([36] * batch), col([96] * batch),
                       col([1] * batch), col([2] * batch))
  grids = sampling.make_grids(tk.time_grid(3840), tk.time_grid(3840)[1:])
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(batch))
  settings = generation.GenerateOptions().settings()
  return cfg, graphdef, params, prompts, rows, grids, settings, keys


def time_kv(setup, notes: int, repeats: int):
  """(best seconds, median seconds, Decoded) of the KV-cache decoder."""
  _, graphdef, params, prompts, rows, grids, settings, keys = setup
  run = lambda: jax.block_until_ready(decode_lib.decode(
      graphdef, params, prompts, rows, grids, settings, keys, max_notes=notes))
  out = run()
  if not (np.asarray(out.num_notes) == notes).all():
    raise RuntimeError(f'expected {notes} notes per row, got {np.asarray(out.num_notes)}')
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    run()
    times.append(time.perf_counter() - t)
  return min(times), float(np.median(times)), out


def _full_step_fn(cfg, graphdef, settings, notes: int, p: int):
  """One step of full recomputation: the model over the first ``length`` positions, the logits
  at the last filled one, sampling, and the new note written at position ``p + t``."""

  def step(params, seq, st, rows, grids, keys, t, length):
    logits = nnx.merge(graphdef, params)({k: v[:, :length] for k, v in seq.items()})
    lg = {f: jax.lax.dynamic_index_in_dim(v, p - 1 + t, axis=1, keepdims=False)
          for f, v in logits.items()}
    kt = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
    note, _, st = sampling.sample_note(kt, lg, st, rows, grids, settings, t, max_notes=notes,
                                       constrained=True)
    new = decode_lib.note_inputs(note, {'position_ids': seq['position_ids'][:, p - 1:p]}, rows,
                                 t, cfg)
    new['segment_ids'] = jnp.ones((note.shape[0], 1), jnp.int32)
    pos = p + jnp.minimum(t, notes - 1)
    upd = lambda a, x: jax.lax.dynamic_update_slice_in_dim(a, x.astype(a.dtype), pos, axis=1)
    return dict(seq, **{k: upd(seq[k], v) for k, v in new.items()}), st, note

  return jax.jit(step, static_argnames=('length',))


def time_full(setup, notes: int, *, repeats: int = 1, estimate: bool = False):
  """(best seconds, median seconds, notes int32 [B, notes, 5] or None) of full recomputation at
  every step, over ``repeats`` whole runs after a pass that compiles every length bucket.

  ``estimate``: time one step per length bucket once and sum over the steps instead.
  """
  cfg, graphdef, params, prompts, rows, grids, settings, keys = setup
  b, p = prompts['segment_ids'].shape
  step = _full_step_fn(cfg, graphdef, settings, notes, p)
  bucket = lambda t: min(-(-(p + t) // BUCKET) * BUCKET, p + notes)
  pad = lambda a: np.pad(a, [(0, 0), (0, notes)] + [(0, 0)] * (a.ndim - 2))

  def run(steps):
    seq = {k: jnp.asarray(pad(np.asarray(v))) for k, v in prompts.items()}
    st = sampling.initial_state(b)
    out = []
    t0 = time.perf_counter()
    for t in steps:
      seq, st, note = step(params, seq, st, rows, grids, keys, jnp.int32(t), length=bucket(t))
      out.append(note)
      if not estimate and bool(jnp.all(st.done)):  # the host checks every step, as the public
        break                                      # code does
    jax.block_until_ready(out)
    return time.perf_counter() - t0, out

  lengths = sorted({bucket(t) for t in range(notes + 1)})
  firsts = [min(t for t in range(notes + 1) if bucket(t) == n) for n in lengths]
  run(firsts)  # compile every bucket
  if estimate:
    total = 0.0
    for n, t in zip(lengths, firsts):
      secs, _ = run([t])
      total += secs * sum(1 for s in range(notes + 1) if bucket(s) == n)
    return total, total, None
  times = []
  for _ in range(repeats):
    secs, out = run(range(notes + 1))
    times.append(secs)
  return min(times), float(np.median(times)), np.stack([np.asarray(o) for o in out[:notes]], axis=1)


def speed(names, repeats: int, full_repeats: int) -> dict:
  res = {'notes_per_s': {}, 'notes_per_s_median': {}, 'time_per_note_ms': {},
         'same_notes_fraction': {}, 'estimated': [], 'kv_speedup_200_measured': {},
         'kv_speedup_200_measured_median': {}, 'kv_speedup_200_estimated': {}}
  nps, med = res['notes_per_s'], res['notes_per_s_median']
  for name in names:
    for batch in (1, 10):
      setup = timing_setup(SETTINGS[name], batch, NOTES)
      secs, msecs, out = time_kv(setup, NOTES, repeats)
      key = f'{name}_b{batch}'
      nps[key], med[key] = batch * NOTES / secs, batch * NOTES / msecs
      estimate = name == 'paper_small' and batch == 10
      fsecs, fmsecs, fnotes = time_full(setup, NOTES, repeats=full_repeats, estimate=estimate)
      if estimate:
        full = key + '_full_recompute_estimated'
        nps[full] = batch * NOTES / fsecs
        res['estimated'].append(full)
        res['kv_speedup_200_estimated'][key] = nps[key] / nps[full]
      else:
        full = key + '_full_recompute'
        nps[full], med[full] = batch * NOTES / fsecs, batch * NOTES / fmsecs
        res['kv_speedup_200_measured'][key] = nps[key] / nps[full]
        res['kv_speedup_200_measured_median'][key] = med[key] / med[full]
        res['same_notes_fraction'][key] = float(np.mean(np.all(
            fnotes == np.asarray(out.notes), axis=-1)))
      print(f'{key}: KV {nps[key]:,.0f} notes/s (best of {repeats}; median {med[key]:,.0f}), '
            f'full recomputation {nps[full]:,.1f} notes/s '
            + ('(estimated)' if estimate else f'(best of {full_repeats}; median {med[full]:,.1f})'),
            flush=True)
    per = {}
    for n in (50, 100, 200, 400):
      secs, _, _ = time_kv(timing_setup(SETTINGS[name], 1, n), n, repeats)
      per[str(n)] = 1000 * secs / n
    res['time_per_note_ms'][name] = per
    print(f'{name}: ms per note at 50/100/200/400 notes: '
          + ' / '.join(f'{v:.3f}' for v in per.values()), flush=True)
  return res


def bench_lyrics(stress_lookup: str = 'word') -> tuple[list, str]:
  """Twenty lyrics: the first fine-tuning sample songs when present, else built-in texts."""
  folder = common.SAMPLE / 'finetune'
  if folder.is_dir():
    found, _ = lyrics_lib.read_dir(folder, stress_lookup=stress_lookup)
    found = [x for x in found if x.num_syllables <= 256][:20]
    if len(found) == 20:
      return found, str(folder)
  texts = [t for t in TEXTS for _ in range(5)]
  return [lyrics_lib.from_text(t, f'text{i}') for i, t in enumerate(texts)], 'built-in texts'


def validity(model_cfg, sizes, tok, graphdef, params, lyrics) -> dict:
  out = {}
  for constrained in (False, True):
    opts = generation.GenerateOptions(num_samples=10, batch_size=20, constrained=constrained)
    gen = generation.Generator(model_cfg, sizes, tok, graphdef, params, opts)
    samples = [s for per in gen.generate(lyrics) for s in per]
    reasons = collections.Counter(s.reason for s in samples if s.song is None)
    name = 'constrained' if constrained else 'unconstrained'
    out[f'invalid_fraction_{name}'] = sum(reasons.values()) / len(samples)
    out[f'invalid_reasons_{name}'] = dict(reasons)
    print(f'{name}: {sum(reasons.values())} / {len(samples)} invalid {dict(reasons)}', flush=True)
  return out


def untrained_validity(lyrics) -> dict:
  songs = [generation.Song(pitch=np.full(x.num_syllables, 60), onset=np.arange(x.num_syllables)
                           * 480, offset=np.arange(x.num_syllables) * 480 + 240,
                           velocity=np.full(x.num_syllables, 80),
                           note_syllable=np.arange(x.num_syllables), syllables=x.syllables,
                           syllable_phrase=x.syllable_phrase, syllable_stress=x.syllable_stress)
           for x in lyrics]
  tok = tk.Tokenizer(tk.fit_vocab(songs, min_count=1))
  cfg = ModelConfig(**SETTINGS['default'], dropout_rate=0.0, max_len=1024)
  graphdef, params = random_params(cfg, tok.field_sizes)
  return validity(cfg, tok.field_sizes, tok, graphdef, params, lyrics)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--only', default=','.join(SETTINGS), help='settings to time')
  ap.add_argument('--repeats', type=int, default=3, help='timed KV-cache runs per measurement')
  ap.add_argument('--full_repeats', type=int, default=2,
                  help='timed full-recomputation runs per measurement')
  ap.add_argument('--workdir', default='', help='trained workdir: also its invalid fractions')
  ap.add_argument('--plain_malloc', action='store_true', help='keep the default glibc malloc')
  args = ap.parse_args()
  common.tuned_malloc(plain=args.plain_malloc)
  names = [n for n in args.only.split(',') if n]
  unknown = set(names) - set(SETTINGS)
  if unknown:
    ap.error(f'unknown settings {sorted(unknown)}; expected some of {list(SETTINGS)}')
  res = speed(names, args.repeats, args.full_repeats)
  lyrics, source = bench_lyrics()
  valid = untrained_validity(lyrics)
  trained = {}
  if args.workdir:
    from songglm_jax.train import inference
    inf = inference.load_for_inference(args.workdir)
    lyr, _ = bench_lyrics(str(inf.config.data.stress_lookup))
    trained = validity(inf.model_cfg, inf.field_sizes, inf.tokenizer, inf.graphdef, inf.params,
                       lyr)
    trained.update(workdir=args.workdir, step=inf.step, stage=inf.stage)
  common.finish('generate_bench', {
      'notes_per_s': res['notes_per_s'],
      'kv_speedup_200_measured': res['kv_speedup_200_measured'],
      'kv_speedup_200_estimated': res['kv_speedup_200_estimated'],
      'invalid_fraction_unconstrained': valid['invalid_fraction_unconstrained'],
      'invalid_fraction_constrained': valid['invalid_fraction_constrained'],
      'notes_per_s_median': res['notes_per_s_median'],
      'kv_speedup_200_measured_median': res['kv_speedup_200_measured_median'],
      'best_of': {'kv': args.repeats, 'full_recompute': args.full_repeats},
      'time_per_note_ms': res['time_per_note_ms'],
      'same_notes_fraction': res['same_notes_fraction'],
      'estimated': res['estimated'],
      'invalid_reasons': {k: v for k, v in valid.items() if k.startswith('invalid_reasons')},
      'validity_lyrics': source, 'trained': trained,
      'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''),
      'setup': {'syllables': SYLLABLES, 'notes': NOTES, 'bucket': BUCKET,
                'settings': SETTINGS, 'sampling': 'temperature 0.9, top-k 10, constrained'},
  })


if __name__ == '__main__':
  main()
