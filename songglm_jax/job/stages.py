"""The stages of the main job, run in the order of ``config.stages``.

Each stage writes under the workdir and is skipped when its output is already complete for the
same config, so re-running the same command resumes. Layout::

    W/config.json          the resolved config
    W/data/pretrain/       prepared pre-training dataset (report.json marks it complete)
    W/data/finetune/       prepared fine-tuning dataset (when config.data.finetune_source is set)
    W/pretrain/, W/finetune/   checkpoints, metrics.jsonl, TensorBoard events (train/loop.py)
    W/samples/             songs for config.generate's lyrics (inference/generate_run.py)
    W/eval/                the validation songs sung again and the metrics (job/eval_stage.py)

A stage is a function ``(config, workdir) -> None`` registered in :data:`RUNNERS`. With several
processes, ``prepare``, ``generate`` and ``evaluate`` run on process 0 while the others wait;
training stages run on every process.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import ml_collections
from absl import logging
from jax.experimental import multihost_utils

from songglm_jax import atomic
from songglm_jax import config as config_lib
from songglm_jax.data import prepare
from songglm_jax.inference import generate_run
from songglm_jax.job import eval_stage
from songglm_jax.train import loop


def _prepared(out: pathlib.Path, source: str, opts: prepare.PrepareOptions) -> dict | None:
  """The report of an existing complete dataset made from the same input with the same options.

  The same input: the same resolved source whose files have the same names, sizes and
  modification times (and the same reused lexicon), as report.json's ``source_path`` and
  ``source_fingerprint`` record them; for a report written before those existed, the same
  source folder name and number of files. Options the report predates are read with the value
  that reproduces its dataset (``prepare.LATER_OPTIONS``: one record file per split).
  """
  try:
    report = json.loads((out / 'report.json').read_text())
  except (OSError, ValueError):
    return None
  if not isinstance(report, dict) or not isinstance(report.get('options'), dict) or (
      {**prepare.LATER_OPTIONS, **report['options']} != dataclasses.asdict(opts)):
    return None
  try:
    now = prepare.source_identity(source, opts)
  except ValueError:  # the source is gone: preparing again says so
    return None
  if 'source_fingerprint' in report:
    same = (report.get('source_path') == now['source_path'] and
            report['source_fingerprint'] == now['source_fingerprint'])
  else:
    same = report.get('source') in (source, pathlib.Path(source).name) and (
        report.get('files') == now['files'])
  return report if same else None


def run_prepare(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict[str, dict]:
  """Prepare the pre-training (and fine-tuning) datasets; returns their reports."""
  fit = bool(config.data.fit_lexicon)
  options = prepare.PrepareOptions.from_config
  jobs = [('pretrain', config.data.pretrain_source, options(config.data, fit_lexicon=fit))]
  if config.data.finetune_source:
    lexicon = str((workdir / 'data' / 'pretrain' / 'lexicon.json').resolve()) if fit else ''
    jobs.append(('finetune', config.data.finetune_source, options(config.data, lexicon=lexicon)))
  reports = {}
  for name, source, opts in jobs:
    out = workdir / 'data' / name
    report = _prepared(out, source, opts)
    if opts.lexicon and not pathlib.Path(opts.lexicon).is_file():
      raise ValueError(f'fine-tuning data needs the pre-training lexicon {opts.lexicon}')
    if report is not None:
      print(f'[prepare] {name}: already prepared in {out} ({report["songs"]} songs), kept')
    else:
      if (out / 'report.json').is_file():
        print(f'[prepare] {name}: {out} was prepared from other input or with other options; '
              'preparing again', flush=True)
      report = prepare.prepare_dataset(source, out, opts, workers=config.data.workers)
    reports[name] = report
    skipped = sum(report['skipped'].values())
    lex = report.get('lexicon')
    lex_text = (f'; lexicon coverage smr {lex["coverage"]["smr"]:.1%} srr '
                f'{lex["coverage"]["srr"]:.1%}, stress oov {lex["oov_rate"]:.2%}' if lex else '')
    print(f'[prepare] {name}: {report["songs"]} songs {report["splits"]} from '
          f'{report["files"]} files ({skipped} skipped){lex_text} -> {out}')
  return reports


def run_prepare_once(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """``run_prepare`` on process 0 only; every process returns once the data is on disk."""
  if jax.process_index() == 0:
    run_prepare(config, workdir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('prepare done')


def run_generate(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """The ``generate`` stage: ``config.generate.lyrics`` (or the songs under
  ``config.generate.lyrics_from``) sung by the workdir's checkpoint into ``W/samples/``; kept
  when already done with the same checkpoint and settings. Runs on process 0."""
  g = config.generate
  if jax.process_index() == 0:
    source = {'songs_from': str(g.lyrics_from)} if g.lyrics_from else {'text': str(g.lyrics)}
    generate_run.run(str(workdir), pathlib.Path(workdir) / 'samples', stage=str(g.stage) or None,
                     plot=bool(g.plot), resume=True, config=config, **source)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('generate done')


# The stages this version runs, by name (their order is config.STAGE_ORDER).
RUNNERS = {
    'prepare': run_prepare_once,
    'pretrain': lambda config, workdir: loop.run_stage(config, workdir, 'pretrain'),
    'finetune': lambda config, workdir: loop.run_stage(config, workdir, 'finetune'),
    'generate': run_generate,
    'evaluate': lambda config, workdir: eval_stage.run_stage(config, workdir),
}


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Run the configured stages in ``workdir`` (created when missing)."""
  stages = config_lib.parse_stages(config, tuple(RUNNERS))
  for stage in stages:  # a bad training setting fails now, not after the stages before it
    if stage in loop.STAGES:
      loop.check_stage_config(config, stage)
  work = atomic.check_output_folder(workdir, '--workdir')
  if jax.process_index() == 0:
    work.mkdir(parents=True, exist_ok=True)
    atomic.write_text(work / 'config.json', config.to_json(indent=1, sort_keys=True) + '\n')
  logging.info('stages %s in %s', stages, work)
  for stage in stages:
    RUNNERS[stage](config, work)
