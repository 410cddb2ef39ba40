"""Songs/s of parse + stress + phrase segmentation + windowing + tokenization, one process.

    .venv/bin/python benchmarks/prepare_bench.py

Target (issue 2): >= 500 songs/s on the 1000 shared pre-training songs. Each stage is also
timed on its own so a regression points at its cause.
"""

import time

import common  # noqa: F401  (sets sys.path)
from songglm_jax.data import tokenizer
from songglm_jax.music import midi, phrases, stress


def main():
  root = common.sample_dir('pretrain', 'prepare_bench')
  files = sorted(root.glob('*.mid'))
  stress.load_cmudict()  # loaded once per process in prepare too; timed separately
  t = {}
  t0 = time.perf_counter()
  songs = [midi.read_midi(f)[0] for f in files]
  t['parse'] = time.perf_counter() - t0
  t0 = time.perf_counter()
  songs = [s.replace(syllable_stress=stress.syllable_stress(s.syllables)) for s in songs]
  t['stress'] = time.perf_counter() - t0
  t0 = time.perf_counter()
  windows = [w for s in songs for w in phrases.split_windows(phrases.segment_phrases(s))]
  t['segment'] = time.perf_counter() - t0
  vocab = tokenizer.fit_vocab(windows)
  tok = tokenizer.Tokenizer(vocab)
  t0 = time.perf_counter()
  for w in windows:
    tok.tokenize(w)
  t['tokenize'] = time.perf_counter() - t0
  total = sum(t.values())
  common.finish('prepare_bench', {
      'songs': len(files), 'songs_per_s': len(files) / total,
      'ms_per_song': {k: 1e3 * v / len(files) for k, v in t.items()}, 'target_songs_per_s': 500})


if __name__ == '__main__':
  main()
