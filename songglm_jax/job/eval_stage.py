"""The main job's ``evaluate`` stage: the model sings the validation songs' lyrics, the offline
evaluation compares the results with the songs.

Layout (``W/eval/``)::

    reference/NAME.mid        the validation songs (the fine-tuning corpus' valid split when it
                              was prepared, else the pre-training corpus'), re-read from their
                              source files exactly as ``prepare`` read them (same windows, same
                              syllable texts: the records hold vocabulary ids, and rare syllables
                              would come back as <unk>)
    generated/sample_K/       ``generate`` with ``--lyrics_from=reference`` and config.generate's
                              settings, ``config.evaluate.num_samples`` sample sets
    result.json, plots/       ``songglm_jax.evaluate`` of generated against reference

NAME is the record's name made file-safe (``bach/bwv1.6.mxl|v2#0`` -> ``bach_bwv1.6.mxl_v2_0``).
Re-running keeps what is done: the reference songs when the same records are chosen, the samples
when ``generate.json`` records the same checkpoint and options, the result when it records the
same samples.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import time
from typing import Any

from absl import logging

from songglm_jax import atomic
from songglm_jax.data import prepare, reading, records
from songglm_jax.music import io as song_io
from songglm_jax.music.song import Song

_UNSAFE = re.compile(r'[^A-Za-z0-9._-]+')


def file_name(record_name: str) -> str:
  """A file stem for a record name: characters other than letters, digits and ``._-`` become
  ``_``; no leading dot (song finders skip hidden files)."""
  return _UNSAFE.sub('_', record_name).strip('._-') or 'song'


def valid_records(data_dir: pathlib.Path, num_songs: int) -> list[records.SongRecord]:
  """The validation records of a prepared dataset, sorted by name (the first ``num_songs``;
  0 = all).

  Raises:
    ValueError: the dataset has no validation split or it is empty.
  """
  path = records.split_path(data_dir, 'valid')
  files = records.split_files(data_dir, 'valid')
  if not files:
    raise ValueError(f'evaluate: no validation split at {path} (nor valid shards); prepare with '
                     'config.data.valid_fraction > 0')
  source = records.RecordSource(files)
  recs = sorted((source[i] for i in range(len(source))), key=lambda r: r.name)
  if not recs:
    raise ValueError(f'evaluate: the validation split in {data_dir} is empty; raise '
                     'config.data.valid_fraction')
  return recs[:num_songs] if num_songs > 0 else recs


def reference_songs(recs: list[records.SongRecord], source: str,
                    opts: prepare.PrepareOptions) -> tuple[dict[str, Song], list[str]]:
  """The songs the records were made from, read again from their source files with ``opts``.

  Returns:
    ({file name: song}, names of records whose song could not be found again).
  """
  paths, names = prepare._input_files(source, 0)  # pylint: disable=protected-access
  path_of = dict(zip(names, paths))  # a record's source is its file's name under the source root
  wanted: dict[str, list[str]] = {}
  for r in recs:
    wanted.setdefault(r.source, []).append(r.name)
  songs, missing = {}, []
  for rel, rec_names in wanted.items():
    # (datasets prepared before names were made root-relative name files by their path)
    path = path_of.get(rel) or (rel if os.path.isfile(rel) else None)
    found = {}
    if path is not None:
      result = reading.read_one((path, rel, opts))
      found = {s.name: s for s in result.songs}
    for name in rec_names:
      if name in found:
        songs[file_name(name)] = found[name]
      else:
        missing.append(name)
  return songs, missing


def write_reference(songs: dict[str, Song], folder: pathlib.Path) -> None:
  """``folder/NAME.mid`` for every song; a folder holding exactly these names is kept."""
  have = {p.stem for p in folder.glob('*.mid')} if folder.is_dir() else set()
  if have == set(songs):
    return
  tmp = folder.with_name(folder.name + '.tmp')
  if tmp.exists():
    shutil.rmtree(tmp)
  tmp.mkdir(parents=True)
  for name, song in songs.items():
    song_io.write_song(song.replace(name=name), tmp / f'{name}.mid')
  if folder.exists():
    shutil.rmtree(folder)
  os.replace(tmp, folder)


def _prepared_with(data_dir: pathlib.Path, config: Any) -> prepare.PrepareOptions:
  """The options the dataset was prepared with (its report), else the config's."""
  try:
    return prepare.PrepareOptions(**json.loads((data_dir / 'report.json').read_text())['options'])
  except (OSError, ValueError, KeyError, TypeError):
    return prepare.PrepareOptions.from_config(config.data)


def run_stage(config: Any, workdir: str | os.PathLike, out: str | os.PathLike | None = None,
              num_samples: int | None = None) -> dict:
  """Generate for the validation songs' lyrics and evaluate; returns the result (process 0).

  ``out`` (default ``W/eval``) and ``num_samples`` (default ``config.evaluate.num_samples``) let
  a benchmark keep several decoding settings of one workdir side by side.
  """
  import jax  # pylint: disable=import-outside-toplevel
  result = {}
  if jax.process_index() == 0:
    result = _run(config, pathlib.Path(workdir), None if out is None else pathlib.Path(out),
                  num_samples)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices('evaluate done')
  return result


def split_songs(config: Any, work: pathlib.Path, split: str = 'valid'
                ) -> tuple[dict[str, Song], pathlib.Path, str]:
  """The songs of a split of the workdir's evaluation dataset (the fine-tuning data when it was
  prepared, else the pre-training data), re-read from their source files.

  Returns:
    ({file name: song}, the dataset folder, the source).
  """
  from songglm_jax.train import loop  # pylint: disable=import-outside-toplevel
  data_dir = loop.data_dir_for(work, 'finetune')
  source = str(config.data.finetune_source if data_dir.name == 'finetune'
               else config.data.pretrain_source)
  if split == 'valid':
    recs = valid_records(data_dir, int(config.evaluate.num_songs))
  else:
    rs = records.open_split(data_dir, split)
    recs = sorted((rs[i] for i in range(len(rs))), key=lambda r: r.name)
  songs, missing = reference_songs(recs, source, _prepared_with(data_dir, config))
  if missing:
    logging.warning('evaluate: %d %s songs not found again in %s (changed files?): %s',
                    len(missing), split, source, missing[:5])
  if not songs:
    raise ValueError(f'evaluate: none of the {len(recs)} {split} songs could be read again '
                     f'from {source}')
  return songs, data_dir, source


def _run(config: Any, work: pathlib.Path, out: pathlib.Path | None = None,
         num_samples: int | None = None) -> dict:
  """Sing the validation lyrics into ``out/generated`` (default ``W/eval``) and evaluate them
  against ``out/reference`` into ``out/result.json``."""
  from songglm_jax.inference import generate_run  # pylint: disable=import-outside-toplevel
  from songglm_jax.metrics import evaluation, report  # pylint: disable=import-outside-toplevel
  e = config.evaluate
  num_samples = int(e.num_samples) if num_samples is None else int(num_samples)
  if num_samples < 1 or int(e.num_songs) < 0 or int(e.workers) < 1:
    raise ValueError(f'config.evaluate: num_samples and workers must be >= 1 and num_songs >= 0, '
                     f'got {num_samples}, {e.workers}, {e.num_songs}')
  out = work / 'eval' if out is None else pathlib.Path(out)
  t0 = time.perf_counter()
  songs, data_dir, _ = split_songs(config, work, 'valid')
  write_reference(songs, out / 'reference')
  print(f'[evaluate] {len(songs)} validation songs of {data_dir.name} in '
        f'{out / "reference"}', flush=True)
  g = config.generate
  gen = generate_run.run(str(work), out / 'generated', stage=str(g.stage) or None,
                     songs_from=str(out / 'reference'), resume=True, config=config,
                     num_samples=num_samples)
  stamp = {'stage': gen.get('stage'), 'step': gen.get('step'), 'options': gen.get('options'),
           'songs': sorted(songs), 'std_ddof': evaluation.STD_DDOF}  # (older: population std)
  done = out / 'result.json'
  old = atomic.keep_finished(
      done, {'evaluate_stage': stamp},
      f'[evaluate] {done}: already evaluated with step {stamp["step"]}, kept')
  if old is not None:
    return old
  result = evaluation.evaluate_dirs(out / 'generated', out / 'reference', workers=int(e.workers),
                                    plots=(out / 'plots') if e.plots else None)
  result['evaluate_stage'] = stamp
  written = report.write_json(result, done)
  print(report.table(result), flush=True)
  print(f'[evaluate] {result["num_pairs"]} pairs x {result["num_sample_sets"]} sample '
        f'sets in {time.perf_counter() - t0:.1f} s -> {done}', flush=True)
  return written  # the value written (NaN as None), as a resumed run returns
