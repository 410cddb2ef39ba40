"""benchmarks/scale_bench.py at a tiny size (30 songs, one worker): every figure is in its JSON,
and its synthetic copies keep the original's lyrics, transposed and re-timed."""

import json
import subprocess
import sys

import numpy as np

from songglm_jax.music import midi
from tests.conftest import REPO, SHARED, require_sample
from tests.train import helpers


def test_scale_bench_at_a_tiny_size_reports_every_figure(tmp_path):
  require_sample('pretrain')
  env = dict(helpers.subprocess_env(), SONGGLM_BENCH_RESULTS=str(tmp_path / 'results'),
             SONGGLM_SHARED=str(SHARED))
  r = subprocess.run([sys.executable, 'benchmarks/scale_bench.py', '--sizes=30', '--workers=1',
                      f'--corpora={tmp_path / "corpora"}', '--pipeline_seconds=0.3'],
                     cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  last = json.loads(r.stdout.strip().splitlines()[-1])
  assert json.loads((tmp_path / 'results' / 'scale_bench.json').read_text()) == last
  assert last['sizes'] == [30] and last['workers'] == [1]
  prep = last['prepare']['30']['1']
  assert prep['files'] == 30 and prep['songs'] >= 28
  assert prep['seconds'] > 0 and prep['tree_rss_mb'] > 10 and prep['max_rss_mb'] > 10
  lex = last['lexicon']['30']
  assert lex['fit_seconds'] > 0 and lex['seconds'] > lex['fit_seconds'] and lex['tree_rss_mb'] > 10
  assert last['pipeline']['30']['examples_per_s'] > 0 and last['disk_mb']['30'] > 0
  extra = last['extrapolation']
  assert extra['songs'] == 206884 and extra['prepare']['1']['seconds'] > prep['seconds']
  assert {'lexicon', 'disk_mb'} <= set(extra) and 'met_time' in last['targets']
  assert len(list((tmp_path / 'corpora' / 'n30').glob('synthetic-*.mid'))) == 30


def test_synthetic_copies_keep_the_lyrics_transposed_and_retimed(tmp_path):
  source = require_sample('pretrain')
  sys.path.insert(0, str(REPO / 'benchmarks'))
  try:
    import scale_corpora
  finally:
    sys.path.remove(str(REPO / 'benchmarks'))
  folder, note = scale_corpora.corpus(source, tmp_path, 1006)  # variant 1 of the first 6
  assert not note['reused'] and scale_corpora.corpus(source, tmp_path, 1006)[1]['reused']
  original = sorted(source.glob('*.mid'))[5]
  t, x = scale_corpora.variant(1)
  assert (t, x) == (2, 1.0)
  for v in (0, 1):
    name = scale_corpora.copy_name(v, original.name)
    copy, stats = midi.read_midi(folder / name)
    song, _ = midi.read_midi(original)
    assert copy.syllables == song.syllables and not stats
    assert np.array_equal(copy.pitch, song.pitch + scale_corpora.variant(v)[0])
  assert scale_corpora.variant(12) == (-5, 1.1)
  variant_12 = scale_corpora.copy_name(12, original.name)
  scale_corpora._write_copies([original], [(12, 0)], tmp_path)
  copy, _ = midi.read_midi(tmp_path / variant_12)
  assert copy.syllables == song.syllables and np.array_equal(copy.pitch, song.pitch - 5)
  assert np.allclose(copy.onset, song.onset * 1.1, atol=1)  # ticks 1.1x apart, tempo 1.1x
  assert abs(copy.tempo / (song.tempo * 1.1) - 1) < 1e-5  # (MIDI stores microseconds a beat)
