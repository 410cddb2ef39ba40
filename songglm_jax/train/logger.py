"""Metrics of a training stage: ``W/<stage>/metrics.jsonl``, TensorBoard events, console lines.

Only process 0 writes files and prints; other processes log the same lines through absl (so a
multi-process run can be checked for agreement) and write nothing.

Resuming from step s rewrites ``metrics.jsonl`` without the records after s (a killed run may
have logged steps the resumed run repeats) and starts TensorBoard with ``purge_step=s + 1`` so
the repeated steps replace the old ones there too. A record is one JSON object per line::

    {"step": 40, "loss": 3.21, "loss_pitch": ..., "accuracy_pitch": ..., "learning_rate": ...,
     "grad_norm": ..., "tokens_per_s": 8120.5, "target_tokens": ..., "tokens": ...}
    {"step": 100, "eval_loss": 2.9, "eval_loss_pitch": ..., "eval_accuracy_pitch": ...}
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Mapping, Optional

from absl import logging

from songglm_jax import atomic

SHORT = {'bar': 'bar', 'position': 'pos', 'duration': 'dur', 'pitch': 'pitch', 'word_id': 'word',
         'phrase_id': 'phrase', 'type': 'type', 'syllable': 'syl', 'stress': 'stress'}


def read_metrics(path: str | pathlib.Path) -> list[dict]:
  """The records of a metrics.jsonl ([] when it is missing).

  A crash mid-write can tear only the last line, which is skipped; any other line that is not
  a JSON object means the file was damaged otherwise.

  Raises:
    ValueError: such a line (naming the file and line number).
  """
  out = []
  try:
    lines = pathlib.Path(path).read_text(encoding='utf-8', errors='replace').splitlines()
  except FileNotFoundError:
    return out
  for number, line in enumerate(lines, 1):
    try:
      record = json.loads(line)
    except ValueError:
      record = None
    if isinstance(record, dict):
      out.append(record)
    elif number < len(lines):
      raise ValueError(f'{path}:{number}: not a metrics record ({line[:40]!r}); only the last '
                       'line may be torn by a crash. Repair or delete the file to go on')
  return out


def _clean(v) -> Optional[float]:
  v = float(v)
  return v if math.isfinite(v) else None


class MetricsLog:
  """Writer of one stage's metrics (module docstring)."""

  def __init__(self, stage_dir: pathlib.Path, stage: str, resume_step: int, primary: bool):
    self.stage = stage
    self.primary = primary
    self.path = stage_dir / 'metrics.jsonl'
    self._file = None
    self._tb = None
    if not primary:
      return
    kept = [r for r in read_metrics(self.path) if r.get('step', 0) <= resume_step]
    atomic.write_text(self.path, ''.join(json.dumps(r, sort_keys=True) + '\n' for r in kept))
    self._file = open(self.path, 'a', encoding='utf-8')
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(str(stage_dir), purge_step=resume_step + 1 if resume_step else None,
                             flush_secs=30)

  def write(self, step: int, values: Mapping[str, float], tb_prefix: str) -> None:
    """Append a record ``{'step': step, **values}``; TensorBoard tags ``<tb_prefix>/<name>``."""
    if not self.primary:
      return
    record = {'step': int(step), **{k: _clean(v) for k, v in values.items()}}
    self._file.write(json.dumps(record, sort_keys=True) + '\n')
    self._file.flush()
    for k, v in values.items():
      if record[k] is not None:
        name = k[len('eval_'):] if k.startswith('eval_') else k
        self._tb.add_scalar(f'{tb_prefix}/{name}', record[k], int(step))

  def say(self, line: str) -> None:
    """A console line: printed by process 0, absl-logged by the others."""
    if self.primary:
      print(f'[{self.stage}] {line}', flush=True)
    else:
      logging.info('[%s] %s', self.stage, line)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def field_text(metrics: Mapping[str, float], fields, prefix: str = 'loss_') -> str:
  """'bar 1.23 pos 2.10 ...' for the per-field values ``<prefix><field>``."""
  return ' '.join(f'{SHORT.get(f, f)} {metrics[prefix + f]:.3f}' for f in fields
                  if prefix + f in metrics)


def duration_text(seconds: float) -> str:
  seconds = max(0, int(round(seconds)))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s' if m else f'{s}s'
