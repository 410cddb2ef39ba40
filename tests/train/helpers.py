"""Shared by the training tests: the shrink-the-config helper, a tiny prepared corpus, runners.

The corpus is made once per test process (random hand-made songs written as MIDI, prepared by
the real ``prepare`` stage) and copied into each test's workdir as ``W/data/<name>``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from typing import Sequence

import jax
import ml_collections
import numpy as np
from absl import flags

from songglm_jax import config as config_lib
from songglm_jax.job import stages
from songglm_jax.music import midi
from tests.conftest import REPO
from tests.songs import make_song

# Grain's iterators read absl flags; under pytest nobody parses them.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

# One persistent compilation cache for this test session and the subprocesses it starts: every
# run of the same tiny model would otherwise spend ~8 s compiling the same initialiser. Loaded
# executables are the compiled ones, so results are unchanged.
COMPILE_CACHE = os.environ.get('JAX_COMPILATION_CACHE_DIR') or tempfile.mkdtemp(
    prefix='songglm_jax_cache_')
jax.config.update('jax_compilation_cache_dir', COMPILE_CACHE)

WORDS = ('la', 'da', 'love', 'my', 'heart', 'sing', 'the', 'night', 'sun', 'is', 'sweet', 'oh')


def shrink(config: ml_collections.ConfigDict, **stage_overrides) -> ml_collections.ConfigDict:
  """Make any config tiny: d_model 32, 1 layer, rows of 128, batch 8, a few steps.

  ``stage_overrides`` update both training sections (e.g. ``num_train_steps=4``).
  """
  c = config
  c.data.update(workers=1, min_count=1, valid_fraction=0.25, limit=0)
  c.pipeline.update(seq_len=128, chunk_records=16, read_threads=0, workers=0)
  c.model.update(d_model=32, num_layers=1, num_heads=4, d_ff=64, compute_dtype='float32')
  for name in ('pretrain', 'finetune'):
    c[name].update(num_train_steps=6, batch_size=8, learning_rate=3e-3, warmup_fraction=0.2,
                   checkpoint_every_steps=3, log_every_steps=1, eval_every_steps=3,
                   eval_batches=2, keep_checkpoints=2)
    c[name].update(stage_overrides)
  return c


def tiny_config(**stage_overrides) -> ml_collections.ConfigDict:
  """The base config shrunk (see :func:`shrink`)."""
  return shrink(config_lib.base_config(), **stage_overrides)


def random_song(rng: np.random.Generator, name: str):
  s = int(rng.integers(6, 20))
  nps = rng.integers(1, 3, s)
  n = int(nps.sum())
  dur = rng.choice([240, 480, 960], n)
  onset = np.concatenate([[0], np.cumsum(dur)[:-1]])
  pitch = np.clip(64 + np.cumsum(rng.integers(-3, 4, n)), 50, 80)
  syl = [WORDS[int(rng.integers(len(WORDS)))] + (',' if i % 5 == 4 else '') for i in range(s)]
  return make_song(pitch.tolist(), onset.tolist(), dur.tolist(),
                   np.repeat(np.arange(s), nps).tolist(), syl, name=name)


def prepared_corpus(seed: int = 0) -> pathlib.Path:
  """A workdir-shaped folder ``<root>/data/pretrain`` prepared from 28 random songs (made once
  per seed and test process)."""
  return _prepared_corpus(seed)


@functools.lru_cache(maxsize=None)
def _prepared_corpus(seed: int, songs: int = 28) -> pathlib.Path:
  root = pathlib.Path(tempfile.mkdtemp(prefix=f'songglm_train_{seed}_'))
  src = root / 'songs'
  src.mkdir()
  rng = np.random.default_rng(seed)
  for i in range(songs):
    midi.write_midi(random_song(rng, f'song{i}'), src / f'song{i:02d}.mid')
  config = tiny_config()
  config.data.pretrain_source = str(src)
  stages.run_prepare(config, root)
  return root


def workdir_with_data(tmp_path: pathlib.Path, seed: int = 0, name: str = 'pretrain'
                      ) -> pathlib.Path:
  """``tmp_path/work`` holding a copy of the tiny prepared corpus as ``data/<name>``."""
  work = tmp_path / 'work'
  shutil.copytree(prepared_corpus(seed) / 'data' / 'pretrain', work / 'data' / name)
  return work


def pretrained_workdir(tmp_path: pathlib.Path) -> pathlib.Path:
  """A workdir pre-trained for 2 steps on the tiny corpus (generation and infilling tests)."""
  from songglm_jax.job import stages  # pylint: disable=import-outside-toplevel
  work = workdir_with_data(tmp_path)
  config = tiny_config(num_train_steps=2, checkpoint_every_steps=2, eval_every_steps=0)
  config.stages = 'pretrain'
  stages.run(config, str(work))
  return work


def default_config() -> ml_collections.ConfigDict:
  """``configs/default.py``'s config (what :func:`main_command` starts from)."""
  spec = importlib.util.spec_from_file_location('default_config', REPO / 'configs' / 'default.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def overrides(config: ml_collections.ConfigDict) -> list[str]:
  """``--config.a.b=v`` flags that turn ``configs/default.py`` into ``config``."""
  base = _leaves(default_config().to_dict())
  return [f'--config.{k}={v}' for k, v in _leaves(config.to_dict()).items() if base.get(k) != v]


def _leaves(tree: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in tree.items():
    out.update(_leaves(v, f'{prefix}{k}.') if isinstance(v, dict) else {prefix + k: v})
  return out


def main_command(workdir: pathlib.Path, config: ml_collections.ConfigDict,
                 extra: Sequence[str] = ()) -> list[str]:
  return [sys.executable, '-m', 'songglm_jax.main', '--config=configs/default.py',
          f'--workdir={workdir}', *overrides(config), *extra]


def subprocess_env(devices: int = 1) -> dict[str, str]:
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join([str(REPO), env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
  flags_ = [f for f in env.get('XLA_FLAGS', '').split()
            if not f.startswith('--xla_force_host_platform_device_count')]
  if devices > 1:
    flags_.append(f'--xla_force_host_platform_device_count={devices}')
  env['XLA_FLAGS'] = ' '.join(flags_)
  env['JAX_COMPILATION_CACHE_DIR'] = COMPILE_CACHE
  return env


def run_main(workdir: pathlib.Path, config: ml_collections.ConfigDict, extra: Sequence[str] = (),
             devices: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
  return subprocess.run(main_command(workdir, config, extra), cwd=REPO, env=subprocess_env(devices),
                        capture_output=True, text=True, timeout=timeout)


def losses(workdir: pathlib.Path, stage: str = 'pretrain', key: str = 'loss') -> dict[int, float]:
  """step -> value of ``key`` from W/<stage>/metrics.jsonl."""
  from songglm_jax.train import logger
  return {r['step']: r[key] for r in logger.read_metrics(workdir / stage / 'metrics.jsonl')
          if key in r}


def reference_config() -> ml_collections.ConfigDict:
  """The run several tests compare against: 12 pre-training steps, saves every 3."""
  config = tiny_config(num_train_steps=12, checkpoint_every_steps=3, eval_every_steps=4)
  config.stages = 'pretrain'
  return config


@functools.lru_cache(maxsize=None)
def reference_run() -> pathlib.Path:
  """The workdir of :func:`reference_config` trained uninterrupted in this process (cached;
  copy it before changing anything in it)."""
  work = workdir_with_data(pathlib.Path(tempfile.mkdtemp(prefix='songglm_reference_')))
  config = reference_config()
  stages.run(config, str(work))
  return work
