"""A damaged Orbax metadata file (JSON) of a saved step: the error names the file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import jax.numpy as jnp
import pytest

from songglm_jax.train import checkpoint as ckpt_lib
from tests.conftest import REPO
from tests.train import helpers

PARAMS = {'w': jnp.ones((3, 4)), 'b': jnp.zeros(4)}


@pytest.mark.parametrize('damaged', ['model/_METADATA', 'model/array_metadatas/process_0'])
def test_restore_names_the_metadata_file_that_does_not_parse(tmp_path, damaged):
  folder = tmp_path / 'best'
  ck = ckpt_lib.Checkpoints(folder, keep=None, items=ckpt_lib.BEST_ITEMS)
  ck.save_params(1, PARAMS)
  ck.close()
  path = folder / '1' / damaged
  path.write_text('\n')  # json: "Expecting value: line 2 column 1"
  ck = ckpt_lib.Checkpoints(folder, read_only=True, items=ckpt_lib.BEST_ITEMS)
  try:
    with pytest.raises(ValueError) as e:
      ck.restore_params(1, PARAMS)
  finally:
    ck.close()
  assert f'{path}: not valid JSON (Expecting value: line 2 column 1' in str(e.value)
  assert len(str(e.value).splitlines()) == 1


def test_generate_with_a_damaged_metadata_file_is_one_line_naming_it(tmp_path):
  work = tmp_path / 'work'
  shutil.copytree(helpers.reference_run(), work)
  (work / 'pretrain' / 'best.json').unlink(missing_ok=True)  # the newest step is loaded
  meta = work / 'pretrain' / 'checkpoints' / '12' / 'model' / '_METADATA'
  meta.write_text('\n')
  r = subprocess.run([sys.executable, '-m', 'songglm_jax.generate', f'--workdir={work}',
                      f'--output={tmp_path / "out"}', '--lyrics=la la la'], cwd=REPO,
                     env=helpers.subprocess_env(), capture_output=True, text=True, timeout=300)
  problems = [x for x in r.stderr.strip().splitlines() if not re.match(r'[IW]\d{4} ', x)]
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
  assert len(problems) == 1 and f'{meta}: not valid JSON' in problems[0], problems
  assert not (tmp_path / 'out').exists()
