"""Songs/s of everything ``prepare`` does in one run, one process, and of each stage.

    .venv/bin/python benchmarks/prepare_bench.py

``songs_per_s``: ``prepare.prepare_dataset`` (one worker: in this process, no lexicon) over the
1000 shared pre-training songs into a temporary folder, timed from the call to its return in a
fresh process: the CMU dictionary load, reading, stress, phrase segmentation, windowing,
``fit_vocab``, tokenization and writing the records, vocab and report. Only the interpreter
start and the imports are left out.

``ms_per_song``: the same stages timed one by one (the per-process caches of ``music.stress``
and ``music.syllabify`` cleared first, so the dictionary is loaded again and no word is cached)
so a regression points at its cause; ``stages_songs_per_s`` is their sum (writing excluded).

Target (issue 2): >= 500 songs/s.
"""

import tempfile
import time

import common  # noqa: F401  (sets sys.path)
from songglm_jax.data import prepare, tokenizer
from songglm_jax.music import midi, phrases, stress, syllabify


def _clear_caches():
  """Empty every per-process cache of the stress lookup (the dictionary included)."""
  for mod in (stress, syllabify):
    for value in vars(mod).values():
      if callable(getattr(value, 'cache_clear', None)):
        value.cache_clear()


def main():
  root = common.sample_dir('pretrain', 'prepare_bench')
  files = sorted(root.glob('*.mid'))
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    report = prepare.prepare_dataset(str(root), f'{tmp}/out', workers=1)
    whole = time.perf_counter() - t0
  _clear_caches()
  t = {}
  t0 = time.perf_counter()
  stress.load_cmudict()  # loaded once per process in prepare too
  t['dictionary'] = time.perf_counter() - t0
  t0 = time.perf_counter()
  songs = [midi.read_midi(f)[0] for f in files]
  t['parse'] = time.perf_counter() - t0
  t0 = time.perf_counter()
  songs = [s.replace(syllable_stress=stress.syllable_stress(s.syllables)) for s in songs]
  t['stress'] = time.perf_counter() - t0
  t0 = time.perf_counter()
  windows = [w for s in songs for w in phrases.split_windows(phrases.segment_phrases(s))]
  t['segment'] = time.perf_counter() - t0
  t0 = time.perf_counter()
  vocab = tokenizer.fit_vocab(windows)
  t['fit_vocab'] = time.perf_counter() - t0
  tok = tokenizer.Tokenizer(vocab)
  t0 = time.perf_counter()
  for w in windows:
    tok.tokenize(w)
  t['tokenize'] = time.perf_counter() - t0
  stages = sum(t.values())
  print(f'prepare_dataset: {len(files) / whole:.0f} songs/s ({whole:.2f} s); stages '
        + ', '.join(f'{k} {v:.3f} s' for k, v in t.items()), flush=True)
  common.finish('prepare_bench', {
      'songs': len(files), 'songs_per_s': len(files) / whole, 'seconds': whole,
      'stages_songs_per_s': len(files) / stages,
      'ms_per_song': {k: 1e3 * v / len(files) for k, v in t.items()},
      'prepare_files': report['files'], 'prepare_windows': report['songs'],
      'target_songs_per_s': 500})


if __name__ == '__main__':
  main()
