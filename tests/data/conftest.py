"""Helpers for the masking, packing and pipeline tests: tiny records and datasets."""

from __future__ import annotations

import pathlib
from typing import Optional, Sequence

import numpy as np
from absl import flags

from songglm_jax.data import records
from songglm_jax.data import tokenizer as tok
from tests.songs import scale_song

# Grain's iterators read absl flags; under pytest nobody parses them.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()


def song_record(notes_per_syllable: Sequence[int], phrase_starts: Sequence[bool] = (),
                smr: Sequence[tuple[int, int]] = (), srr: Sequence[tuple[int, int]] = (),
                name: str = 'song') -> records.SongRecord:
  """A record of a scale song: syllable i has ``notes_per_syllable[i]`` notes; a phrase starts at
  every syllable i > 0 with ``phrase_starts[i]`` True."""
  s = len(notes_per_syllable)
  song = scale_song(s, list(notes_per_syllable), name=name)
  starts = np.array([i > 0 and i < len(phrase_starts) and bool(phrase_starts[i])
                     for i in range(s)], bool)
  song = song.replace(syllable_phrase=np.cumsum(starts))
  vocab = tok.fit_vocab([song], min_count=1)
  tokens = tok.Tokenizer(vocab).tokenize(song)
  as_spans = lambda x: np.asarray(list(x), np.int32).reshape(-1, 2)
  return records.SongRecord(tokens=tokens, time_signatures=song.time_signatures,
                            spans_smr=as_spans(smr), spans_srr=as_spans(srr), name=name)


def random_record(rng: np.random.Generator, max_syllables: int = 24, phrase_p: float = 0.25,
                  max_spans: int = 8, name: str = 'song') -> records.SongRecord:
  s = int(rng.integers(1, max_syllables + 1))
  nps = rng.integers(1, 4, s).tolist()
  n = int(sum(nps))
  breaks = (rng.random(s) < phrase_p).tolist()
  spans = []
  for _ in range(int(rng.integers(0, max_spans + 1))):
    a = int(rng.integers(0, n))
    spans.append((a, min(n, a + int(rng.integers(1, 5)))))
  return song_record(nps, breaks, spans, spans[::2], name=name)


def write_dataset(folder: pathlib.Path, train: Sequence[records.SongRecord],
                  valid: Optional[Sequence[records.SongRecord]] = None,
                  records_per_shard: int = 0) -> pathlib.Path:
  """A dataset folder of the splits; one file per split unless ``records_per_shard`` > 0."""
  folder.mkdir(parents=True, exist_ok=True)
  records.write_split(folder, 'train', list(train), records_per_shard)
  records.write_split(folder, 'valid', list(valid if valid is not None else train),
                      records_per_shard)
  return folder
