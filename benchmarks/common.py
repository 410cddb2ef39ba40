"""Shared by the benchmark scripts: paths, the JSON result line, skipping without ../shared."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))
SHARED = pathlib.Path(os.environ.get('SONGGLM_SHARED', REPO.parent / 'shared'))
SAMPLE = SHARED / 'data' / 'songglm_sample'
RESULTS = REPO / 'benchmarks' / 'results'


def sample_dir(subdir: str, bench: str) -> pathlib.Path:
  """The shared corpus folder, or print a skip result and exit 0 when it is absent."""
  path = SAMPLE / subdir
  if not path.is_dir():
    finish(bench, {'skipped': f'shared sample corpus not found at {path}'})
  return path


def finish(bench: str, result: dict) -> None:
  """Write ``benchmarks/results/<bench>.json`` and print the result as the last line."""
  RESULTS.mkdir(parents=True, exist_ok=True)
  result = {'benchmark': bench, 'time': time.strftime('%Y-%m-%dT%H:%M:%S'), **result}
  (RESULTS / f'{bench}.json').write_text(json.dumps(result, indent=1) + '\n')
  print(json.dumps(result))
  sys.exit(0)
