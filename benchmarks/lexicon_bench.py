"""Fit time of both harmonized n-gram lexicons (SMR + SRR) from prepared records, one core.

    .venv/bin/python benchmarks/lexicon_bench.py

The shared pre-training corpus is prepared into a temporary folder (not timed), its records are
read back into songs (stress from the records' stress field), and both lexicons are fitted on the
first 250, 500 and 1000 songs in one thread. Target (issue 3): <= 20 s for 1000 songs, near-linear
growth. The public pipeline took about 470 s per lexicon (40 s with its dictionary reload fixed).
"""

import tempfile
import time

import common
from songglm_jax.data import lexicon_build, prepare, records, tokenizer


def main():
  root = common.sample_dir('pretrain', 'lexicon_bench')
  with tempfile.TemporaryDirectory() as tmp:
    prepare.prepare_dataset(str(root), tmp, prepare.PrepareOptions(valid_fraction=0.0), workers=2)
    tok = tokenizer.Tokenizer(tokenizer.Vocab.from_json(open(f'{tmp}/vocab.json').read()))
    src = records.open_split(tmp, 'train')
    t0 = time.perf_counter()
    songs = []
    for i in range(len(src)):
      r = src[i]
      songs.append(tok.detokenize(r.tokens, time_signatures=r.time_signatures, tempo=r.tempo))
    read_s = time.perf_counter() - t0
  fit, coverage = {}, {}
  for n in (250, 500, 1000):
    t0 = time.perf_counter()
    lex = lexicon_build.fit_lexicon(songs[:n], workers=1, min_span_n=2)
    fit[str(n)] = time.perf_counter() - t0
    coverage[str(n)] = {k: v.stats.get('coverage') for k, v in lex.kinds.items()}
  common.finish('lexicon_bench', {
      'fit_seconds': fit, 'songs_read_seconds': read_s, 'records': len(songs),
      'growth_1000_over_250': fit['1000'] / fit['250'], 'coverage': coverage,
      'target_fit_seconds_1000': 20})


if __name__ == '__main__':
  main()
