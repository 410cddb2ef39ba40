"""``generate --song --regenerate`` (inference/infill_run.py) with a trained workdir."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from songglm_jax.inference import infill_run, infill_spec
from songglm_jax.music import io as song_io


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A workdir pre-trained for 2 steps on the training tests' tiny corpus."""
  from tests.train import helpers
  return helpers.pretrained_workdir(tmp_path_factory.mktemp('trained'))


@pytest.fixture(scope='module')
def song_file():
  """A corpus song with at least three phrases."""
  from tests.train import helpers
  for path in sorted((helpers.prepared_corpus() / 'songs').glob('*.mid')):
    if infill_spec.read_song(path)[0].num_phrases >= 3:
      return path
  raise AssertionError('no corpus song with three phrases')


def _cli(*args, timeout=300):
  from tests.conftest import REPO
  from tests.train import helpers
  return subprocess.run([sys.executable, '-m', 'songglm_jax.generate', *args], cwd=REPO,
                        env=helpers.subprocess_env(), capture_output=True, text=True,
                        timeout=timeout)


def _kept(song, regenerated):
  return {k: getattr(song, k)[~regenerated].tobytes()
          for k in ('pitch', 'onset', 'offset', 'velocity', 'note_syllable')}


def test_infill_writes_samples_with_kept_notes_unchanged(workdir, song_file, tmp_path):
  report = infill_run.run(str(workdir), str(song_file), 'phrase:2,syllables:1-1', tmp_path,
                          num_samples=2, seed=3, plot=True)
  assert report['num_invalid'] == 0 and report['stage'] == 'pretrain' and report['step'] == 2
  assert [s['items'] for s in report['spans']] == [['syllables:1-1'], ['phrase:2']]
  assert report['spans'][0]['syllables'] == [1, 1] and report['spans'][1]['phrases'] == [2, 2]
  assert json.loads((tmp_path / 'generate.json').read_text())['regenerate'] == (
      'phrase:2,syllables:1-1')
  song, _ = infill_spec.read_song(song_file)
  spans = infill_spec.parse_spec(song, 'phrase:2,syllables:1-1')
  regen_in = np.zeros(song.num_notes, bool)
  for sp in spans:
    regen_in |= (song.note_syllable >= sp.first) & (song.note_syllable < sp.end)
  for k in range(2):
    base = tmp_path / f'sample_{k}' / song_file.stem
    assert base.with_suffix('.png').stat().st_size > 1000
    assert base.with_suffix('.musicxml').stat().st_size > 1000
    (out,), _ = song_io.read_songs(base.with_suffix('.mid'))  # read back from the written file
    assert out.syllables == song.syllables
    regen_out = (out.note_syllable < spans[0].end) | (
        (out.note_syllable >= spans[1].first) & (out.note_syllable < spans[1].end))
    assert report['songs'][k]['regenerated_notes'] == int(regen_out.sum())
    kept_in = {k: v for k, v in _kept(song, regen_in).items()}
    assert _kept(out, regen_out) == kept_in  # byte-identical, through MIDI


def test_cli_regenerates_a_phrase(workdir, song_file, tmp_path):
  r = _cli(f'--workdir={workdir}', f'--song={song_file}', '--regenerate=phrases:1-2',
           f'--output={tmp_path}', '--num_samples=1', '--checkpoint=latest', '--allow_shift')
  assert r.returncode == 0, r.stderr[-2000:]
  assert f'{song_file.stem} sample 0: ' in r.stdout
  report = json.loads((tmp_path / 'generate.json').read_text())
  assert report['num_invalid'] == 0 and report['spans'][0]['phrases'] == [1, 2]
  assert report['allow_shift'] and report['songs'][0]['shift_bars'][0] >= 0
  assert (tmp_path / 'sample_0' / f'{song_file.stem}.musicxml').is_file()


@pytest.mark.parametrize('flags, message', [
    (['--regenerate=phrase:99'], "--regenerate: 'phrase:99': phrase 99 does not exist; the song "
                                 'has '),
    (['--allow_shift'], '--song and --regenerate go together'),
    (['--regenerate=phrase:1', '--lyrics=la la'], '--song takes its lyrics from the song; drop '
                                                  '--lyrics'),
    ([], '--song and --regenerate go together'),
])
def test_cli_one_line_errors(workdir, song_file, tmp_path, flags, message):
  r = _cli(f'--workdir={workdir}', f'--song={song_file}', f'--output={tmp_path / "out"}', *flags,
           timeout=120)
  lines = [x for x in r.stderr.strip().splitlines() if not x[:1] in 'IW' or ': error: ' in x]
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
  assert len(lines) == 1 and lines[0].startswith('songglm_jax.generate: error: ' + message), lines
  assert not (tmp_path / 'out').exists()
