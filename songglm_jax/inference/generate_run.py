"""Lyrics -> ``sample_K/`` folders with a trained workdir: the whole-song run of
``python -m songglm_jax.generate`` (the program's flags and output: ``songglm_jax/generate.py``)
and of the main job's ``generate`` and ``evaluate`` stages.

:func:`read_lyrics` reads the lyrics from exactly one source, :func:`run` loads the workdir's
checkpoint (or keeps an earlier run's output with ``resume``), :func:`generate_to_dir` decodes and
writes the samples and ``generate.json``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from typing import Any, Optional, Sequence

from absl import logging

from songglm_jax import atomic
from songglm_jax.inference import generation
from songglm_jax.inference import lyrics as lyrics_lib
from songglm_jax.inference.sample_files import (
    checkpoint_choice, clear_samples, earlier_samples, options, options_dict, parse_formats,
    write_samples)
from songglm_jax.music import syllabify


def _check_one_source(text, text_file, songs_from) -> None:
  given = [n for n, v in (('--lyrics', text), ('--lyrics_file', text_file),
                          ('--lyrics_from', songs_from)) if v]
  if len(given) != 1:
    raise ValueError(f'give exactly one of --lyrics, --lyrics_file, --lyrics_from (got '
                     f'{given or "none"})')


def read_lyrics(*, text: Optional[str] = None, text_file: Optional[str] = None,
                songs_from: Optional[str] = None, stress_lookup: str = 'word',
                max_bar_ticks: int = 3840, language: str = 'en',
                title: Optional[str] = None) -> list[lyrics_lib.Lyrics]:
  """Lyrics from exactly one source (see the module docstring); ``language`` for text,
  ``title`` (when given) for every song.

  Raises:
    ValueError: not exactly one source, an unreadable file, no lyrics, an unknown language.
  """
  _check_one_source(text, text_file, songs_from)
  if title:
    found = read_lyrics(text=text, text_file=text_file, songs_from=songs_from,
                        stress_lookup=stress_lookup, max_bar_ticks=max_bar_ticks,
                        language=language)
    return [dataclasses.replace(x, title=title) for x in found]
  if text:
    songs = [t for t in text.split('|') if t.strip()]
    if not songs:
      raise ValueError('--lyrics: empty')
    out = [lyrics_lib.from_text(t, stress_lookup=stress_lookup, language=language)
           for t in songs]
    names = [x.name for x in out]
    return [x if names.count(x.name) == 1 else dataclasses.replace(x, name=f'{x.name}_{i}')
            for i, x in enumerate(out)]
  if text_file:
    path = pathlib.Path(text_file)
    try:
      content = path.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as e:
      raise ValueError(f'--lyrics_file {path}: cannot read ({e})') from None
    return [lyrics_lib.from_text(content, path.stem, stress_lookup=stress_lookup,
                                 language=language)]
  found, skipped = lyrics_lib.read_dir(songs_from, stress_lookup=stress_lookup,
                                       max_bar_ticks=max_bar_ticks)
  for name, reason in skipped.items():
    logging.warning('generate: skipped %s (%s)', name, reason)
  if not found:
    raise ValueError(f'--lyrics_from {songs_from}: no readable song with lyrics')
  return found


def generate_to_dir(model_cfg, field_sizes, tokenizer, graphdef, params,
                    lyrics: Sequence[lyrics_lib.Lyrics], output: str | os.PathLike,
                    opts: generation.GenerateOptions, *, plot: bool = False,
                    formats: Optional[Sequence[str]] = None, extra: Optional[dict] = None,
                    prompt_mask: str = 'MASK') -> dict:
  """Generate and write every sample of ``lyrics`` under ``output`` (``formats``, ``plot``: as
  :func:`write_samples`); also writes
  ``output/generate.json`` and returns its content. ``prompt_mask``: the model's fine-tuning
  cue (``Inference.prompt_mask``). An earlier run's samples in ``output`` are replaced
  (:func:`clear_samples`).

  Raises:
    ValueError: ``output`` is not a folder that can be written (checked before decoding), or
      holds ``sample_K/`` folders with files of another program.
  """
  atomic.check_output_folder(output, 'output folder')
  earlier_samples(output)  # refused now rather than after decoding
  formats = parse_formats(formats, plot if formats is None else None)
  gen = generation.Generator(model_cfg, field_sizes, tokenizer, graphdef, params, opts,
                             prompt_mask=prompt_mask)
  t0 = time.perf_counter()
  rows = [0]

  def progress(done, total):
    rows[0] = total
    logging.info('generate: %d / %d rows decoded (%.1f s)', done, total, time.perf_counter() - t0)

  results = gen.generate(lyrics, progress=progress)
  seconds = time.perf_counter() - t0
  for folder in clear_samples(output):
    logging.info('generate: removed %s of an earlier run', folder)
  report = write_samples(results, lyrics, output, formats=formats)
  notes = sum(e.get('notes', 0) for e in report['songs'])
  report.update(seconds=seconds, notes_per_s=notes / seconds if seconds else 0.0,
                options=options_dict(opts), **(extra or {}))
  atomic.write_json(pathlib.Path(output) / 'generate.json', report)
  print(f'generate: {report["num_samples"] - report["num_invalid"]} / {report["num_samples"]} '
        f'songs written to {output} in {seconds:.1f} s', flush=True)
  return report


def run(workdir: str, output: str | os.PathLike, *, stage: Optional[str] = None,
        text: Optional[str] = None, text_file: Optional[str] = None,
        songs_from: Optional[str] = None, plot: Optional[bool] = None,
        formats: Optional[str | Sequence[str]] = None, resume: bool = False,
        config: Any = None, checkpoint: Optional[str] = None, language: str = 'en',
        title: Optional[str] = None, **overrides) -> dict:
  """Load the workdir's checkpoint and generate (the CLI and the main job's stage call this).

  Args:
    stage: checkpoint stage ('pretrain' / 'finetune'; None: finetune when it has one).
    text, text_file, songs_from: the lyrics source (exactly one).
    formats, plot: the files to write (:func:`parse_formats`: None = mid, musicxml, and png when
      ``plot``; given, ``plot`` True/False adds/drops png).
    resume: keep ``output`` as it is when its ``generate.json`` records the same checkpoint
      (kind and step), lyrics source and options (otherwise, and without ``resume``, an earlier
      run's ``sample_K/`` folders are replaced: :func:`clear_samples`).
    config: the config whose ``generate`` section and ``seed`` to use (default: the workdir's
      ``config.json``).
    checkpoint: 'best', 'latest' or a step (None: from the config; :func:`checkpoint_choice`).
    language, title: see :func:`read_lyrics`.
    overrides: GenerateOptions fields (None = from the config; see :func:`options`).
  """
  from songglm_jax.train import inference as inference_lib  # pylint: disable=import-outside-toplevel
  _check_one_source(text, text_file, songs_from)  # before the (slower) checkpoint load
  formats = parse_formats(formats, plot)
  atomic.check_output_folder(output, 'output folder')
  earlier_samples(output)
  syllabify.language_dictionary(language)  # an unknown language fails before the load too
  source = config
  if source is None:  # the workdir's (when missing, the load says so)
    path = pathlib.Path(workdir) / 'config.json'
    source = inference_lib.read_config(path) if path.is_file() else None
  which = checkpoint_choice(source, checkpoint)
  options(source, **dict(overrides))  # bad sampling settings fail before the load too
  inf = inference_lib.load_for_inference(workdir, stage, which=which)
  config = inf.config if config is None else config
  stress_lookup = str(config.data.stress_lookup) if 'data' in config else 'word'
  lyrics = read_lyrics(text=text, text_file=text_file, songs_from=songs_from,
                       stress_lookup=stress_lookup,
                       max_bar_ticks=inf.tokenizer.vocab.max_bar_ticks, language=language,
                       title=title)
  opts = options(config, **overrides)
  extra = {'workdir': str(workdir), 'stage': str(getattr(inf, 'stage', stage)),
           'checkpoint': str(inf.checkpoint), 'step': int(inf.step), 'plot': 'png' in formats,
           'prompt_mask': inf.prompt_mask,
           'lyrics_source': {'text': text, 'text_file': text_file, 'songs_from': songs_from}}
  if language != 'en' or title:  # only then: a resumed run of an older generate.json matches
    extra['lyrics_source'].update(language=language, title=title)
  if resume:
    old = atomic.keep_finished(
        pathlib.Path(output) / 'generate.json',
        {**extra, 'options': options_dict(opts), 'formats': formats},
        f'[generate] {output}: already generated with the {inf.checkpoint} checkpoint of step '
        f'{inf.step}, kept',
        # Older generate.json files have no 'formats': they wrote mid, musicxml (png with plot).
        older=lambda old: {'formats': ['mid', 'musicxml'] + ['png'] * bool(old.get('plot'))})
    if old is not None:
      return old
  logging.info('generate: %d lyrics x %d samples with the %s %s checkpoint of step %d',
               len(lyrics), opts.num_samples, extra['stage'], inf.checkpoint, inf.step)
  return generate_to_dir(inf.model_cfg, inf.field_sizes, inf.tokenizer, inf.graphdef,
                         inf.params, lyrics, output, opts, formats=formats, extra=extra,
                         prompt_mask=inf.prompt_mask)
