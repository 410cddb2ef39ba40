"""Shared test fixtures. ``../shared`` is optional: tests that need it skip with a reason."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('SONGGLM_SHARED', REPO.parent / 'shared'))
SAMPLE = SHARED / 'data' / 'songglm_sample'


def require_sample(subdir: str = '') -> pathlib.Path:
  """The shared sample corpus folder, or skip the calling test with a clear reason."""
  path = SAMPLE / subdir if subdir else SAMPLE
  if not path.is_dir():
    pytest.skip(f'shared sample corpus not found at {path} (clone the project beside ../shared '
                'or set SONGGLM_SHARED)')
  return path
