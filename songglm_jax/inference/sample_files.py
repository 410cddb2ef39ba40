"""Generation's settings and files, shared by whole-song generation (``generate_run.py``) and
infilling (``infill_run.py``): sampling options from a config and ``--temperature``-style
flags, the checkpoint choice, ``--formats``, writing ``sample_K/`` folders, and clearing an
earlier run's.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Mapping, Optional, Sequence

from songglm_jax.inference import generation
from songglm_jax.inference import lyrics as lyrics_lib


def parse_field_values(text: Optional[str], cast, base: dict) -> Optional[dict]:
  """``'0.9'`` -> every field 0.9; ``'pitch=1,bar=0.5'`` -> those fields changed in ``base``.

  Raises:
    ValueError: an unknown field, a field given twice, or a value that does not parse.
  """
  if text is None:
    return None
  text = text.strip()
  out = dict(base)
  seen = set()
  try:
    if '=' not in text:
      return {f: cast(text) for f in generation.FIELDS}
    for item in filter(None, (s.strip() for s in text.split(','))):
      field, value = (s.strip() for s in item.split('=', 1))
      if field not in generation.FIELDS:
        raise ValueError(f'unknown field {field!r}; expected one of {generation.FIELDS}')
      if field in seen:
        raise ValueError(f'field {field!r} given twice')
      seen.add(field)
      out[field] = cast(value)
  except ValueError as e:
    raise ValueError(f'bad sampling setting {text!r}: {e}') from None
  return out


def options(config: Any, **overrides) -> generation.GenerateOptions:
  """Options from ``config.generate`` and ``config.seed`` (when the config has a generate
  section), then ``overrides`` (None: keep; ``temperature`` / ``top_k`` / ``top_p`` may be
  strings for :func:`parse_field_values`)."""
  knobs = {'temperature': float, 'top_k': int, 'top_p': float}
  text = {k: overrides.pop(k) for k in knobs if isinstance(overrides.get(k), str)}
  if config is not None and 'generate' in config:
    opts = generation.GenerateOptions.from_config(config, **overrides)
  else:
    opts = generation.GenerateOptions(**{k: v for k, v in overrides.items() if v is not None})
  changed = {k: parse_field_values(v, knobs[k], dict(getattr(opts, k))) for k, v in text.items()}
  opts = dataclasses.replace(opts, **changed)
  opts.validate()
  return opts


def checkpoint_choice(config: Any, flag: Optional[str] = None) -> str:
  """'best', 'latest' or a step number: ``flag`` (``--checkpoint``) when given, else
  ``config.generate.checkpoint``, else 'best' (a config without the field, e.g. an older
  workdir's ``config.json``).

  Raises:
    ValueError: any other value.
  """
  from songglm_jax.train import inference as inference_lib  # pylint: disable=import-outside-toplevel
  if flag is not None:
    value, where = flag, '--checkpoint'
  else:
    section = config.generate if config is not None and 'generate' in config else {}
    value, where = section.get('checkpoint', 'best'), 'config.generate.checkpoint'
  return inference_lib.check_kind(value, where)


def summary(sample: generation.Sample, name: str) -> str:
  """One line: notes, pitch range, duration (or why the sample is invalid)."""
  from songglm_jax.inference.pianoroll import pitch_name  # pylint: disable=import-outside-toplevel
  head = f'{name} sample {sample.sample}:'
  if sample.song is None:
    return f'{head} INVALID ({sample.reason})'
  s = sample.song
  seconds = float(s.offset.max()) / 480 * 60 / s.tempo
  lo, hi = int(s.pitch.min()), int(s.pitch.max())
  return (f'{head} {s.num_notes} notes on {s.num_syllables} syllables, range '
          f'{pitch_name(lo)}-{pitch_name(hi)} ({hi - lo} semitones), {seconds:.1f} s')


FORMATS = ('mid', 'musicxml', 'png')  # the files generate can write per song


def parse_formats(value: str | Sequence[str] | None,
                  plot: Optional[bool] = None) -> tuple[str, ...]:
  """The formats to write, in :data:`FORMATS` order, from ``'mid,png'`` or a sequence (None: mid,
  musicxml); then ``plot`` True adds png, False drops it. ValueError: an unknown format, or
  neither mid nor musicxml (no song file)."""
  items = value.split(',') if isinstance(value, str) else value or ('mid', 'musicxml')
  chosen = {x.strip() for x in items}
  if chosen - set(FORMATS):
    raise ValueError(f'--formats: unknown format {sorted(chosen - set(FORMATS))[0]!r}; '
                     f'expected a comma-separated subset of {",".join(FORMATS)}')
  if plot is not None:
    chosen = chosen | {'png'} if plot else chosen - {'png'}
  if not chosen & {'mid', 'musicxml'}:
    raise ValueError(f'--formats: no song file among {",".join(sorted(chosen)) or "none"}; '
                     'give mid or musicxml or both')
  return tuple(f for f in FORMATS if f in chosen)


def write_samples(results: Sequence[Sequence[generation.Sample]],
                  lyrics: Sequence[lyrics_lib.Lyrics], output: str | os.PathLike, *,
                  plot: bool = False, formats: Optional[Sequence[str]] = None) -> dict:
  """Write every valid sample (module docstring layout) in ``formats`` (default: mid, musicxml,
  and png when ``plot``); returns the per-song summary dict."""
  from songglm_jax.music import io as song_io  # pylint: disable=import-outside-toplevel
  formats = parse_formats(formats, plot if formats is None else None)
  out = pathlib.Path(output)
  songs, invalid = [], 0
  for lyr, samples in zip(lyrics, results):
    for smp in samples:
      print(summary(smp, lyr.name), flush=True)
      entry = {'name': lyr.name, 'sample': smp.sample, 'valid': smp.song is not None}
      if smp.song is None:
        invalid += 1
        entry['reason'] = smp.reason
      else:
        base = out / f'sample_{smp.sample}' / lyr.name
        if 'mid' in formats:
          song_io.write_song(smp.song, base.with_name(base.name + '.mid'))
        if 'musicxml' in formats:
          song_io.write_song(smp.song, base.with_name(base.name + '.musicxml'),
                             title=lyr.title or None)
        if 'png' in formats:
          from songglm_jax.inference import pianoroll  # pylint: disable=import-outside-toplevel
          pianoroll.plot_song(smp.song, base.with_name(base.name + '.png'),
                              title=f'{lyr.name} (sample {smp.sample})')
        entry.update(notes=smp.song.num_notes, syllables=smp.song.num_syllables,
                     pitch_min=int(smp.song.pitch.min()), pitch_max=int(smp.song.pitch.max()),
                     ticks=int(smp.song.offset.max()))
      songs.append(entry)
  total = len(songs)
  return {'songs': songs, 'num_samples': total, 'num_invalid': invalid,
          'invalid_fraction': invalid / total if total else 0.0, 'formats': list(formats)}


SAMPLE_FILES = ('.mid', '.musicxml', '.png')  # what write_samples puts in a sample_K/ folder


def earlier_samples(output: str | os.PathLike) -> list[pathlib.Path]:
  """The ``sample_K/`` folders of an earlier run in ``output`` (:func:`clear_samples` removes
  them).

  Raises:
    ValueError: one holds something ``generate`` does not write (a file that is not
      .mid/.musicxml/.png or a hidden temporary, a link).
  """
  from songglm_jax.metrics import files as files_lib  # pylint: disable=import-outside-toplevel
  out = pathlib.Path(output)
  if not out.is_dir():
    return []
  owned = sorted(p for p in out.iterdir() if p.is_dir() and files_lib.SAMPLE_DIR.match(p.name))
  for folder in owned:
    for entry in folder.rglob('*'):  # (songs named by a path under --lyrics_from: subfolders)
      ours = entry.is_dir() and not entry.is_symlink() or entry.is_file() and (
          entry.suffix.lower() in SAMPLE_FILES or
          entry.name.startswith('.') and entry.name.endswith('.tmp'))
      if not ours:
        raise ValueError(f'{entry}: not written by generate; move it out of {folder}, or '
                         'write to another output folder (generate replaces the sample_K/ '
                         'folders of an earlier run)')
  return owned


def clear_samples(output: str | os.PathLike) -> list[pathlib.Path]:
  """Remove an earlier run's output from ``output`` before this run writes its own:
  ``generate.json`` first (it marks a finished run), then every ``sample_K/`` folder, so that no
  song of another run (a sample this run does not draw, lyrics it does not sing) stays beside
  the new ones for ``evaluate`` to count. Returns the removed folders.

  Raises:
    ValueError: as :func:`earlier_samples` (nothing is removed then).
  """
  import shutil  # pylint: disable=import-outside-toplevel
  owned = earlier_samples(output)
  (pathlib.Path(output) / 'generate.json').unlink(missing_ok=True)
  for folder in owned:
    shutil.rmtree(folder)
  return owned


def options_dict(opts: generation.GenerateOptions) -> dict:
  return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in vars(opts).items()}
