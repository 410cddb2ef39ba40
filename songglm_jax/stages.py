"""The stages of the main job, run in the order of ``config.stages``.

Each stage writes under the workdir and is skipped when its output is already complete for the
same config, so re-running the same command resumes. Layout::

    W/config.json          the resolved config
    W/data/pretrain/       prepared pre-training dataset (report.json marks it complete)
    W/data/finetune/       prepared fine-tuning dataset (when config.data.finetune_source is set)
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import ml_collections
from absl import logging

from songglm_jax import config as config_lib
from songglm_jax import prepare
from songglm_jax.music import midi


def prepare_options(config: ml_collections.ConfigDict, **overrides) -> prepare.PrepareOptions:
  d = config.data
  opts = prepare.PrepareOptions(
      valid_fraction=d.valid_fraction, min_count=d.min_count, stress_lookup=d.stress_lookup,
      limit=d.limit, max_syllables=d.max_syllables, max_phrases=d.max_phrases,
      max_bars=d.max_bars, max_bar_ticks=d.max_bar_ticks)
  return dataclasses.replace(opts, **overrides)


def _prepared(out: pathlib.Path, source: str, opts: prepare.PrepareOptions) -> dict | None:
  """The report of an existing complete dataset made from the same source and options."""
  try:
    report = json.loads((out / 'report.json').read_text())
  except (OSError, ValueError):
    return None
  same = report.get('options') == dataclasses.asdict(opts) and report.get('source') in (
      source, pathlib.Path(source).name)
  return report if same else None


def run_prepare(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, dict]:
  """Prepare the pre-training (and fine-tuning) datasets; returns their reports."""
  jobs = [('pretrain', config.data.pretrain_source, prepare_options(config))]
  if config.data.finetune_source:
    jobs.append(('finetune', config.data.finetune_source, prepare_options(config)))
  reports = {}
  for name, source, opts in jobs:
    out = workdir / 'data' / name
    report = _prepared(out, source, opts)
    if report is not None:
      print(f'[prepare] {name}: already prepared in {out} ({report["songs"]} songs), kept')
    else:
      report = prepare.prepare_dataset(source, out, opts, workers=config.data.workers)
    reports[name] = report
    skipped = sum(report['skipped'].values())
    print(f'[prepare] {name}: {report["songs"]} songs {report["splits"]} from '
          f'{report["files"]} files ({skipped} skipped) -> {out}')
  return reports


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Run the configured stages in ``workdir`` (created when missing)."""
  stages = config_lib.parse_stages(config)
  work = pathlib.Path(workdir)
  work.mkdir(parents=True, exist_ok=True)
  midi.atomic_write(work / 'config.json', (config.to_json(indent=1, sort_keys=True) + '\n')
                    .encode('utf-8'))
  logging.info('stages %s in %s', stages, work)
  for stage in stages:
    if stage == 'prepare':
      run_prepare(config, work)
