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
RESULTS = pathlib.Path(os.environ.get('SONGGLM_BENCH_RESULTS',  # tests point it elsewhere
                                      REPO / 'benchmarks' / 'results'))
# glibc malloc that keeps freed memory (transparent huge pages for malloc, no mmap for large
# blocks, no trimming): XLA:CPU steps run 1.3-1.4x faster. The one definition, also read by the
# Makefile and launch/local.sh.
GLIBC_TUNABLES_FILE = REPO / 'launch' / 'glibc_tunables'


def glibc_tunables() -> str:
  """The GLIBC_TUNABLES value of ``launch/glibc_tunables`` (one line)."""
  value = GLIBC_TUNABLES_FILE.read_text().strip()
  if not value or '\n' in value:
    raise ValueError(f'{GLIBC_TUNABLES_FILE}: expected one line, got {value!r}')
  return value


def tuned_malloc(plain: bool = False) -> None:
  """Re-execute this script with :func:`glibc_tunables` in the environment (glibc reads it only
  at start-up), unless ``plain`` (``--plain_malloc``) or GLIBC_TUNABLES is already set."""
  if not plain and 'GLIBC_TUNABLES' not in os.environ:
    os.execve(sys.executable, [sys.executable] + sys.argv,
              dict(os.environ, GLIBC_TUNABLES=glibc_tunables()))


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
