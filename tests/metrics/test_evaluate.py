"""evaluate_dirs / evaluate_sets / the CLI: pairing, reporting, identical and transposed sets,
agreement with the oracle."""

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import symusic

from songglm_jax.metrics import evaluation, oracle, report
from songglm_jax.music import midi
from tests.conftest import REPO, require_sample
from tests.metrics.helpers import random_set, transposed

KEYS = ('OA_A', 'OA_PCH', 'OA_IOI', 'OA_DD', 'MD', 'AA', 'AA_notes_abs_diff', 'SBA_generated',
        'SBA_reference', 'SPA_generated', 'SPA_reference', 'PEA_generated', 'PEA_reference')


def _write(folder: pathlib.Path, songs):
  folder.mkdir(parents=True, exist_ok=True)
  for name, s in songs.items():
    midi.write_midi(s, folder / f'{name}.mid')


def _no_lyrics_midi(path):
  score = symusic.Score(480)
  track = symusic.Track('Lead', 0, False)
  track.notes.append(symusic.Note(0, 480, 60, 100))
  score.tracks.append(track)
  score.dump_midi(str(path))


@pytest.fixture(scope='module')
def layout(tmp_path_factory):
  """reference/ (20 songs), gen/sample_0 (other songs), gen/sample_1 (copies), and bad files."""
  root = tmp_path_factory.mktemp('eval')
  rng = np.random.default_rng(0)
  ref = random_set(rng, 20)
  other = {n: s.replace(name=n) for n, s in zip(ref, random_set(rng, 20, 'o').values())}
  _write(root / 'reference', ref)
  _write(root / 'gen' / 'sample_0', other)
  _write(root / 'gen' / 'sample_1', ref)
  (root / 'gen' / 'sample_0' / 's0.mid').write_bytes(b'not a midi file')  # replaces a pair
  _no_lyrics_midi(root / 'gen' / 'sample_1' / 'extra.mid')
  midi.write_midi(ref['s1'], root / 'gen' / 'sample_1' / 'nobody.mid')
  return root, ref, other


def test_evaluate_dirs_pairs_by_name_per_sample_set(layout):
  root, _, _ = layout
  r = evaluation.evaluate_dirs(root / 'gen', root / 'reference')
  assert [e['name'] for e in r['per_sample']] == ['sample_0', 'sample_1']
  assert [e['num_pairs'] for e in r['per_sample']] == [19, 20]
  assert r['num_pairs'] == 39 and r['num_sample_sets'] == 2
  for key in KEYS:
    assert f'{key}_std' in r and key in r['per_sample'][1]


def test_bad_files_are_reported_and_counted(layout):
  root, _, _ = layout
  r = evaluation.evaluate_dirs(root / 'gen', root / 'reference')
  assert r['skipped'] == {'no_lyrics': 1, 'not_midi': 1}
  assert {f['file'] for f in r['skipped_files']} == {'generated/sample_0/s0.mid',
                                                     'generated/sample_1/extra.mid'}
  assert r['unpaired'] == {'generated': ['sample_1/nobody'], 'reference': ['s0']}


def test_identical_sets_give_oa_close_to_one_and_md_zero(layout):
  root, _, _ = layout
  r = evaluation.evaluate_dirs(root / 'gen', root / 'reference')
  same = r['per_sample'][1]
  for key in ('OA_A', 'OA_PCH', 'OA_IOI', 'OA_DD'):
    assert 0.85 < same[key] <= 1.0
  assert same['MD'] == 0.0 and same['AA'] == 1.0
  assert same['SBA_generated'] == same['SBA_reference']


def test_one_song_in_two_formats_is_read_once_from_midi(tmp_path):
  from songglm_jax.metrics import files
  from songglm_jax.music import io as song_io
  rng = np.random.default_rng(4)
  songs = random_set(rng, 2)
  _write(tmp_path / 'reference', songs)
  _write(tmp_path / 'gen', songs)
  for name, s in songs.items():  # generate writes NAME.mid and NAME.musicxml side by side
    song_io.write_song(s, tmp_path / 'gen' / f'{name}.musicxml')
  assert [p.suffix for p in files.song_files(tmp_path / 'gen')] == ['.mid', '.mid']
  r = evaluation.evaluate_dirs(tmp_path / 'gen', tmp_path / 'reference')
  assert r['num_pairs'] == 2 and r['skipped'] == {} and r['per_sample'][0]['MD'] == 0.0


def test_transposition_lowers_oa_pch_and_partial_transposition_raises_md():
  rng = np.random.default_rng(1)
  ref = random_set(rng, 20)
  up = {n: transposed(s, 1) for n, s in ref.items()}
  half = {n: transposed(s, 1, every=2) for n, s in ref.items()}
  r = evaluation.evaluate_sets([('same', ref), ('up', up), ('half', half)], ref)
  same, moved, partly = r['per_sample']
  assert moved['OA_PCH'] < same['OA_PCH'] - 0.03
  assert moved['OA_A'] == same['OA_A'] and moved['OA_DD'] == same['OA_DD']
  assert moved['MD'] == 0.0  # the MD series is mean-subtracted: a uniform shift cancels
  assert partly['MD'] > same['MD'] + 0.1


def test_vectorized_and_oracle_agree():
  rng = np.random.default_rng(2)
  ref = random_set(rng, 15)
  sets = [('a', {n: s.replace(name=n) for n, s in zip(ref, random_set(rng, 15, 'x').values())}),
          ('b', {n: transposed(s, 2, every=3) for n, s in ref.items()})]
  fast = evaluation.evaluate_sets(sets, ref)
  slow = oracle.evaluate_sets(sets, ref)
  for key in KEYS + tuple(f'{k}_std' for k in KEYS):
    f, s = fast[key], slow[key]
    if key.startswith('OA_'):
      assert f == pytest.approx(s, abs=1e-6), key
    else:
      assert (math.isnan(f) and math.isnan(s)) or f == pytest.approx(s, rel=1e-9, abs=1e-12), key


def test_std_is_the_sample_std_over_sets_and_zero_for_one_set():
  import statistics
  rng = np.random.default_rng(6)
  ref = random_set(rng, 8)
  sets = [(f's{k}', {n: transposed(s, k, every=2) for n, s in ref.items()}) for k in range(3)]
  r = evaluation.evaluate_sets(sets, ref)
  assert r['std_ddof'] == 1
  for key in ('OA_PCH', 'MD', 'SPA_generated'):
    vals = [e[key] for e in r['per_sample']]
    assert len(set(vals)) > 1, key  # a spread to measure
    assert r[f'{key}_std'] == pytest.approx(statistics.stdev(vals), rel=1e-12), key
    assert r[f'{key}_std'] > float(np.std(vals)), key  # not the population std
  one = evaluation.evaluate_sets(sets[1:2], ref)
  assert all(one[f'{k}_std'] == 0.0 for k in KEYS if not math.isnan(one[k]))
  assert evaluation.set_std([]) != evaluation.set_std([])  # NaN: nothing to measure


def test_no_pair_at_all_is_one_clear_error():
  rng = np.random.default_rng(3)
  with pytest.raises(ValueError, match='no generated song has a reference song'):
    evaluation.evaluate_sets([('s', random_set(rng, 3, 'g'))], random_set(rng, 3, 'r'))


def test_flat_generated_folder_is_one_sample_set(layout, tmp_path):
  root, ref, _ = layout
  _write(tmp_path / 'flat', {n: ref[n] for n in list(ref)[:5]})
  r = evaluation.evaluate_dirs(tmp_path / 'flat', root / 'reference')
  assert r['num_sample_sets'] == 1 and r['num_pairs'] == 5
  assert r['per_sample'][0]['name'] == 'flat'


def test_degenerate_set_reports_nan_with_reason():
  rng = np.random.default_rng(4)
  one = random_set(rng, 1)
  r = evaluation.evaluate_sets([('s', one)], one)
  assert math.isnan(r['OA_A']) and 'fewer than 2' in r['nan_reasons']['OA_A']
  assert r['MD'] == 0.0


def _run_cli(*args):
  return subprocess.run([sys.executable, '-m', 'songglm_jax.evaluate', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_cli_writes_result_json_table_and_plots(layout, tmp_path):
  root, _, _ = layout
  out = tmp_path / 'result.json'
  proc = _run_cli(f'--generated={root / "gen"}', f'--reference={root / "reference"}',
                  f'--output={out}', f'--plots={tmp_path / "plots"}', '--workers=2')
  assert proc.returncode == 0, proc.stderr
  result = json.loads(out.read_text())  # strict JSON: NaN would have been written as null
  assert result['num_pairs'] == 39 and 'OA(PCH)' in proc.stdout
  assert sorted(p.name for p in (tmp_path / 'plots').iterdir()) == [
      'alignment.png', 'durations.png', 'ioi.png', 'pitch_classes.png']


def test_cli_empty_pairing_is_one_line_error(tmp_path):
  rng = np.random.default_rng(5)
  _write(tmp_path / 'g', random_set(rng, 2, 'a'))
  _write(tmp_path / 'r', random_set(rng, 2, 'b'))
  proc = _run_cli(f'--generated={tmp_path / "g"}', f'--reference={tmp_path / "r"}',
                  f'--output={tmp_path / "o.json"}', '--workers=1')
  assert proc.returncode == 1
  assert proc.stderr.strip().count('\n') == 0 and 'no generated song' in proc.stderr


def test_shared_corpus_pairs_agree_with_oracle(tmp_path):
  root = require_sample('finetune')
  files = sorted(root.glob('*.mid'))[:12]
  for f in files[:6]:
    (tmp_path / 'ref').mkdir(exist_ok=True)
    (tmp_path / 'ref' / f.name).write_bytes(f.read_bytes())
  for f, g in zip(files[:6], files[6:]):
    (tmp_path / 'gen').mkdir(exist_ok=True)
    (tmp_path / 'gen' / f.name).write_bytes(g.read_bytes())
  fast = evaluation.evaluate_dirs(tmp_path / 'gen', tmp_path / 'ref')
  from songglm_jax.music import io as song_io
  ref = {f.stem: song_io.read_songs(f)[0][0] for f in (tmp_path / 'ref').iterdir()}
  gen = {f.stem: song_io.read_songs(f)[0][0] for f in (tmp_path / 'gen').iterdir()}
  slow = oracle.evaluate_sets([('gen', gen)], ref)
  assert fast['MD'] == pytest.approx(slow['MD'], rel=1e-9)
  for key in ('OA_A', 'OA_PCH', 'OA_IOI', 'OA_DD'):
    assert fast[key] == pytest.approx(slow[key], abs=1e-6)
  assert fast['misaligned_pairs'] == 6  # other songs' lyrics


def test_score_files_past_the_size_bound_are_skipped_unread(tmp_path):
  """The bound prepare applies (midi.MAX_FILE_BYTES) holds for every format evaluate reads."""
  rng = np.random.default_rng(5)
  songs = random_set(rng, 2)
  _write(tmp_path / 'reference', songs)
  _write(tmp_path / 'gen', songs)
  big = tmp_path / 'gen' / 'huge.musicxml'
  with open(big, 'wb') as f:  # sparse: past the bound without using the disk
    f.truncate(midi.MAX_FILE_BYTES + 1)
  r = evaluation.evaluate_dirs(tmp_path / 'gen', tmp_path / 'reference')
  assert r['num_pairs'] == 2 and r['skipped'] == {'too_long': 1}
  assert [f['file'] for f in r['skipped_files']] == ['generated/huge.musicxml']


def test_ioi_histogram_shows_each_set_as_a_share_of_its_songs():
  ref = np.array([480.0, 500.0, 520.0, 1900.0])
  h = report.ioi_histogram(np.tile(ref, 3), ref, bins=10)  # 3 sample sets of the same songs
  assert h['generated'].tolist() == h['reference'].tolist()  # counts would be 3x apart
  assert h['reference'].sum() == pytest.approx(1.0) and h['reference'][-1] == 0.25
  assert h['edges'][0] == 480.0 and h['edges'][-1] == pytest.approx(1900.0)
  assert (h['generated_median'], h['reference_median']) == (510.0, 510.0)
  assert (h['generated_songs'], h['reference_songs']) == (12, 4)
  empty = report.ioi_histogram(np.zeros(0), np.array([500.0, 500.0]), bins=4)
  assert empty['generated'].tolist() == [0.0] * 4 and math.isnan(empty['generated_median'])
  assert empty['reference'].sum() == pytest.approx(1.0)
