"""Infilling (issue 15): regenerated notes against the hidden originals, and speed.

    .venv/bin/python benchmarks/infill_bench.py --workdir=W [--songs 4] [--samples 10]
        [--stages pretrain,finetune] [--modes phrase,song] [--batch_size 10]

On the first ``--songs`` fine-tuning validation songs of a trained workdir (read only; the songs
re-read from their source files as the evaluate stage does), with each stage's checkpoint
(``best`` when it has one) and the workdir's ``config.generate`` sampling settings:

* ``phrase``: every phrase of every song hidden in turn (one span, MASK) and regenerated
  ``--samples`` times;
* ``song``: one run of whole syllables holding at least half of the song's notes, at a random
  syllable (seeded), hidden and regenerated (the song-level span: LMASK).

For the regenerated notes against the hidden originals (both cut out as ``Song.window`` of the
span's syllables; sample k of every span forms sample set k): the paper's OA metrics
(``OA_A/PCH/IOI/DD``), ``MD`` and ``AA`` (``metrics.evaluation.evaluate_sets``), the share of
span boundaries where the notes join the kept neighbour without a rest (``join``: the first new
onset equals the previous note's end, the last new end equals the next note's onset; the same
rate of the human originals is ``join_human``; overlaps cannot happen under the constraints),
the invalid fraction and regenerated notes per second (all decoding time, compilation
included). Baseline ``whole_song``: the same stage generating the whole melody from the lyrics
(``Generator.generate``), cut to the same syllables: does the kept context help?

Writes ``benchmarks/results/infill_bench.json`` (last line printed).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import common
import numpy as np

from songglm_jax.inference import generation, infill, sample_files
from songglm_jax.inference import lyrics as lyrics_lib
from songglm_jax.metrics import evaluation


def _songs(work: pathlib.Path, count: int):
  """(name, song) of the first validation songs that infilling takes, with >= 2 phrases."""
  from songglm_jax.job import eval_stage
  from songglm_jax.train import inference
  config = inference.read_config(work / 'config.json')
  config.evaluate.num_songs = 0
  songs, _, _ = eval_stage.split_songs(config, work)
  tok = inference.read_tokenizer(work / 'data' / 'finetune' / 'vocab.json')
  out = []
  for name in sorted(songs):
    song = songs[name]
    try:
      infill._bar_ticks(song, tok)  # pylint: disable=protected-access
    except ValueError:
      continue
    if song.num_phrases >= 2:
      out.append((name, song))
    if len(out) == count:
      break
  return out


def _song_span(song, rng) -> tuple[int, int]:
  """Whole syllables holding >= half of the notes, starting at a random syllable."""
  need = (song.num_notes + 1) // 2
  cum = np.concatenate([[0], np.cumsum(song.notes_per_syllable)])
  starts = [a for a in range(song.num_syllables) if cum[-1] - cum[a] >= need]
  a = int(rng.choice(starts))
  b = int(np.searchsorted(cum, cum[a] + need)) if cum[a] + need < cum[-1] else song.num_syllables
  return a, max(b, a + 1)


def _joins(out, orig, a: int, b: int) -> tuple[list[bool], list[bool]]:
  """(generated, human) join flags of the span's boundaries that have a neighbour."""
  def flags(song):
    first = song.syllable_first_note
    n0 = int(first[a])
    n1 = int(first[b]) if b < song.num_syllables else song.num_notes
    f = []
    if n0 > 0:
      f.append(bool(song.onset[n0] == song.offset[n0 - 1]))
    if n1 < song.num_notes:
      f.append(bool(song.offset[n1 - 1] == song.onset[n1]))
    return f
  return flags(out), flags(orig)


def _metrics(sets: list[dict], reference: dict) -> dict:
  keys = evaluation.OA_KEYS + ('MD', 'AA')
  if not any(sets):
    return {'pairs': 0}
  r = evaluation.evaluate_sets([(f'sample_{k}', s) for k, s in enumerate(sets)], reference)
  out = {k: r.get(k) for k in keys}
  out['pairs'] = r['num_pairs']
  return out


def run_stage(work: pathlib.Path, stage: str, songs, args) -> dict:
  from songglm_jax.train import inference
  inf = inference.load_for_inference(str(work), stage)
  opts = sample_files.options(inf.config, num_samples=args.samples, batch_size=args.batch_size)
  gen = generation.Generator(inf.model_cfg, inf.field_sizes, inf.tokenizer, inf.graphdef,
                             inf.params, opts, prompt_mask=inf.prompt_mask)
  rng = np.random.default_rng(0)
  song_spans = {name: _song_span(song, rng) for name, song in songs}
  result = {'stage': stage, 'step': inf.step, 'checkpoint': inf.checkpoint}
  t0 = time.perf_counter()
  whole = gen.generate([lyrics_lib.from_song(s, n, stress_lookup=str(
      inf.config.data.stress_lookup)) for n, s in songs])
  whole_s = time.perf_counter() - t0
  whole_notes = sum(x.song.num_notes for row in whole for x in row if x.song is not None)
  for mode in args.modes:
    spans = [(name, song, i, (a, b)) for i, (name, song) in enumerate(songs)
             for a, b in ([song_spans[name]] if mode == 'song' else
                          [(int(np.flatnonzero(song.syllable_phrase == j)[0]),
                            int(np.flatnonzero(song.syllable_phrase == j)[-1]) + 1)
                           for j in range(song.num_phrases)])]
    reference, sets = {}, [dict() for _ in range(args.samples)]
    base_sets = [dict() for _ in range(args.samples)]
    joins, human, base_joins = [], [], []
    invalid, notes, seconds = 0, 0, 0.0
    for name, song, i, (a, b) in spans:
      key = f'{name}|{a + 1}-{b}'
      reference[key] = song.window(a, b)
      t0 = time.perf_counter()
      samples = gen.infill(song, [(a, b)])
      seconds += time.perf_counter() - t0
      for smp in samples:
        if smp.song is None:
          invalid += 1
          continue
        notes += int(smp.regenerated.sum())
        sets[smp.sample][key] = smp.song.window(a, b)
        g, h = _joins(smp.song, song, a, b)
        joins += g
        human += h
      for k, x in enumerate(whole[i]):
        if x.song is not None and x.song.num_syllables == song.num_syllables:
          base_sets[k][key] = x.song.window(a, b)
          base_joins += _joins(x.song, song, a, b)[0]
    total = len(spans) * args.samples
    result[mode] = {
        'spans': len(spans), 'samples': total, 'invalid_fraction': invalid / total,
        'infill': _metrics(sets, reference), 'whole_song': _metrics(base_sets, reference),
        'join': float(np.mean(joins)) if joins else None,
        'join_human': float(np.mean(human)) if human else None,
        'join_whole_song': float(np.mean(base_joins)) if base_joins else None,
        'notes_per_s': notes / seconds if seconds else 0.0, 'seconds': seconds}
    print(f'[infill_bench] {stage} {mode}: {result[mode]}', file=sys.stderr, flush=True)
  result['whole_song_notes_per_s'] = whole_notes / whole_s if whole_s else 0.0
  return result


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--workdir', required=True)
  ap.add_argument('--songs', type=int, default=4)
  ap.add_argument('--samples', type=int, default=10)
  ap.add_argument('--batch_size', type=int, default=10)
  ap.add_argument('--stages', default='pretrain,finetune')
  ap.add_argument('--modes', default='phrase,song')
  args = ap.parse_args()
  args.modes = [m for m in args.modes.split(',') if m]
  if set(args.modes) - {'phrase', 'song'}:
    ap.error(f'--modes: phrase and/or song, got {args.modes}')
  work = pathlib.Path(args.workdir)
  songs = _songs(work, args.songs)
  if not songs:
    common.finish('infill_bench', {'skipped': f'{work}: no usable validation song'})
  out = {'workdir': str(work), 'songs': [n for n, _ in songs], 'samples_per_span': args.samples,
         'note': 'small run on a shared 2-core CPU; notes_per_s includes compilation'}
  for stage in [s for s in args.stages.split(',') if s]:
    out[stage] = run_stage(work, stage, songs, args)
  common.finish('infill_bench', evaluation.json_ready(out))


if __name__ == '__main__':
  main()
