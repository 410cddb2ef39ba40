r"""``generate --song=IN --regenerate=SPEC``: infill a song on disk with a trained workdir.

    python -m songglm_jax.generate --workdir=W --song=IN.mid|.musicxml --regenerate=SPEC
        --output=OUT [--num_samples=N] [--seed=S] [--temperature=T] [--top_k=K] [--top_p=P]
        [--plot] [--stage=pretrain|finetune] [--checkpoint=best|latest|STEP] [--noconstrained]
        [--allow_shift]

SPEC: ``infill_spec`` (``phrase:3``, ``phrases:2-4``, ``syllables:10-17``, ``bars:5-8``, joined by
``,``). The song is read as ``prepare`` reads training songs (stress with the workdir's
``data.stress_lookup``, phrases segmented as in training; a score with several verses: the
first). Checkpoint: the fine-tuned stage when it has one, else the pre-trained one (``--stage``
picks). Writes, as generation does, ``OUT/sample_K/NAME.mid`` and ``NAME.musicxml`` (with
``--plot`` also ``NAME.png``, the regenerated notes in red) for K = 0 .. N-1, NAME the song file's
stem, and ``OUT/generate.json``: options, checkpoint, the spans (1-based syllables, phrases,
bars, the Part A cue, the time bounds) and one summary per sample. An earlier run's
``sample_K/`` folders in OUT are replaced. ``--allow_shift``: a span may run past the next kept
note, the rest of the song then moves later by whole bars (``infill.py``; each sample's
``shift_bars`` in ``generate.json``).
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Optional

import numpy as np
from absl import logging

from songglm_jax import atomic
from songglm_jax.inference import generation, infill, infill_spec, sample_files


def check_flags(song: Optional[str], regenerate: Optional[str], lyric_sources: dict) -> None:
  """One-line errors for flag combinations, before anything is loaded."""
  if not song or not regenerate:
    raise ValueError('--song and --regenerate go together: --song=IN.mid --regenerate=phrase:3')
  given = [k for k, v in lyric_sources.items() if v]
  if given:
    raise ValueError(f'--song takes its lyrics from the song; drop {", ".join(given)}')


def run(workdir: str, song_path: str, spec: str, output: str, *, stage: Optional[str] = None,
        checkpoint: Optional[str] = None, plot: bool = False, allow_shift: bool = False,
        mask: str = 'auto', **overrides) -> dict:
  """Load the checkpoint, infill, write the samples and ``generate.json``; returns its content.

  Raises:
    ValueError: a bad flag, song or SPEC (checked before the checkpoint load where possible).
  """
  from songglm_jax.train import inference as inference_lib  # pylint: disable=import-outside-toplevel
  check_flags(song_path, spec, {})
  atomic.check_output_folder(output, 'output folder')
  sample_files.earlier_samples(output)
  path = pathlib.Path(workdir) / 'config.json'
  source = inference_lib.read_config(path) if path.is_file() else None
  stress_lookup = str(source.data.stress_lookup) if source is not None and 'data' in source \
      else 'word'
  song, verse = infill_spec.read_song(song_path, stress_lookup=stress_lookup)
  spans = infill_spec.parse_spec(song, spec)  # bad SPECs fail before the load
  which = sample_files.checkpoint_choice(source, checkpoint)
  sample_files.options(source, **dict(overrides))
  inf = inference_lib.load_for_inference(workdir, stage, which=which)
  opts = sample_files.options(inf.config, **overrides)
  song_rate = float(inf.config.pipeline.song_rate) if 'pipeline' in inf.config else 0.5
  gen = generation.Generator(inf.model_cfg, inf.field_sizes, inf.tokenizer, inf.graphdef,
                             inf.params, opts, prompt_mask=inf.prompt_mask)
  p = infill.plan(song, spec, inf.tokenizer, inf.model_cfg, mask=mask, song_rate=song_rate,
                  step=int(gen.grids.step), allow_shift=allow_shift)
  logging.info('generate: %d x %d span(s) of %s with the %s %s checkpoint of step %d',
               opts.num_samples, len(spans), song_path, inf.stage, inf.checkpoint, inf.step)
  t0 = time.perf_counter()
  samples = gen.infill(song, spec, mask=mask, song_rate=song_rate, allow_shift=allow_shift,
                       progress=lambda d, t: (
      logging.info('generate: %d / %d span rows decoded (%.1f s)', d, t,
                   time.perf_counter() - t0)))
  seconds = time.perf_counter() - t0
  for folder in sample_files.clear_samples(output):
    logging.info('generate: removed %s of an earlier run', folder)
  name = pathlib.Path(str(song_path).split('#')[0]).stem
  report = write(samples, name, output, plot=plot)
  new_notes = sum(e.get('regenerated_notes', 0) for e in report['songs'])
  report.update(seconds=seconds, notes_per_s=new_notes / seconds if seconds else 0.0,
                options=sample_files.options_dict(opts),
                song=str(song_path), verse=verse, regenerate=spec, spans=p.describe(),
                workdir=str(workdir), stage=inf.stage, checkpoint=inf.checkpoint,
                step=int(inf.step), plot=bool(plot), mask=mask, allow_shift=bool(allow_shift))
  atomic.write_json(pathlib.Path(output) / 'generate.json', report)
  print(f'generate: {report["num_samples"] - report["num_invalid"]} / {report["num_samples"]} '
        f'infilled songs written to {output} in {seconds:.1f} s', flush=True)
  return report


def write(samples, name: str, output: str, *, plot: bool = False) -> dict:
  """Write every valid sample; returns the per-sample summaries."""
  from songglm_jax.music import io as song_io  # pylint: disable=import-outside-toplevel
  out = pathlib.Path(output)
  entries, invalid = [], 0
  for smp in samples:
    print(sample_files.summary(smp, name), flush=True)
    entry: dict[str, Any] = {'name': name, 'sample': smp.sample, 'valid': smp.song is not None}
    if smp.song is None:
      invalid += 1
      entry['reason'] = smp.reason
    else:
      base = out / f'sample_{smp.sample}' / name
      song_io.write_song(smp.song, base.with_name(base.name + '.mid'))
      song_io.write_song(smp.song, base.with_name(base.name + '.musicxml'))
      if plot:
        from songglm_jax.inference import pianoroll  # pylint: disable=import-outside-toplevel
        pianoroll.plot_song(smp.song, base.with_name(base.name + '.png'),
                            title=f'{name} (sample {smp.sample}, regenerated notes in red)',
                            highlight=smp.regenerated)
      entry.update(notes=smp.song.num_notes, regenerated_notes=int(np.sum(smp.regenerated)),
                   shift_bars=smp.shift_bars,
                   pitch_min=int(smp.song.pitch.min()), pitch_max=int(smp.song.pitch.max()),
                   ticks=int(smp.song.offset.max()))
    entries.append(entry)
  total = len(entries)
  return {'songs': entries, 'num_samples': total, 'num_invalid': invalid,
          'invalid_fraction': invalid / total if total else 0.0}
