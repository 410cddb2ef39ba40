"""The partitioned lexicon fit (data/lexicon_stream.py) gives the reference fit's file exactly."""

import collections
import random

import numpy as np
import pytest

from songglm_jax.data import lexicon as L
from songglm_jax.data import lexicon_stream
from songglm_jax.data.lexicon_build import fit_lexicon, is_unknown_stress
from songglm_jax.music import skeleton
from tests.data.test_lexicon import _melisma_songs, _random_corpus, _shared_pretrain_songs

PARTITIONS = (1, 2, 3, 7)


def _same(songs, partitions=PARTITIONS, **kw):
  ref = L.dumps_lexicon(fit_lexicon(songs, **kw))
  for k in partitions:
    got = L.dumps_lexicon(lexicon_stream.fit_lexicon_partitioned(songs, partitions=k, **kw))
    assert got == ref, (k, kw)
  return ref


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('kw', [
    dict(max_n=5),
    dict(max_n=12, min_span_n=2, max_span_n=4),
    dict(max_n=4, unknown_stress='keep', lyric_mean='weighted', score='collapsed', keep_top=3),
    dict(max_n=6, max_span_n=6, max_rank=1.0, kinds=('srr',)),
])
def test_byte_identical_to_the_reference_on_random_corpora(seed, kw):
  _same(_random_corpus(num_songs=60, seed=seed), **kw)


@pytest.mark.parametrize('chunk', [1, 5, 64])
def test_byte_identical_when_parts_are_counted_chunk_by_chunk(monkeypatch, chunk):
  monkeypatch.setattr(lexicon_stream, 'CHUNK', chunk)  # tiny chunks: every merge path is taken
  _same(_random_corpus(num_songs=50, seed=chunk), partitions=(1, 3), max_n=6, min_span_n=2)
  _same(_random_corpus(num_songs=30, seed=9), partitions=(2,), max_n=4, unknown_stress='keep',
        lyric_mean='weighted', score='collapsed')


def test_byte_identical_with_melismas_longer_than_the_integer_code():
  _same(_melisma_songs(), max_n=3, max_rank=1.0)


def test_song_order_and_iterator_source_do_not_matter():
  songs = _random_corpus(seed=4)
  ref = _same(songs, partitions=(2,), max_n=6)
  shuffled = list(songs)
  random.Random(1).shuffle(shuffled)
  got = lexicon_stream.fit_lexicon_partitioned(lambda: iter(shuffled), partitions=5, max_n=6)
  assert L.dumps_lexicon(got) == ref


def test_parts_neither_lose_nor_double_count_ngrams():
  songs = _random_corpus(num_songs=60, seed=7)
  max_n, k = 5, 7
  lex = lexicon_stream.fit_lexicon_partitioned(songs, partitions=k, max_n=max_n,
                                               keep_top=10**6)  # every n-gram stored
  for kind in skeleton.KINDS:
    want = collections.Counter()  # brute force over the counted windows
    for song in songs:
      feats = skeleton.note_features(song, kind)
      groups = [tuple(int(x) for x in feats[song.note_syllable == i])
                for i in range(song.num_syllables)]
      for n in range(1, max_n + 1):
        for a in range(song.num_syllables - n + 1):
          if not any(is_unknown_stress(p) for p in song.syllable_stress[a:a + n]):
            want[tuple(groups[a:a + n])] += 1
    got = collections.Counter()
    for g in lex.kinds[kind].ngrams:
      assert g.groups not in got, g.groups  # each n-gram once
      got[g.groups] = g.count
    assert got == want
    rows = lex.kinds[kind].lengths
    assert [r['windows'] for r in rows] == [
        sum(c for g, c in want.items() if len(g) == n) for n in range(1, max_n + 1)]
    assert [r['distinct'] for r in rows] == [
        sum(1 for g in want if len(g) == n) for n in range(1, max_n + 1)]
  # and the corpus really was spread over every part
  c = lexicon_stream._compact(songs, skeleton.KINDS)
  counted = lexicon_stream._windows(c, 2, False)
  units = c.units['srr']
  part = lexicon_stream._partitions_of(units, counted, 2, k, lexicon_stream._bits(units))
  assert set(np.unique(part[counted]).tolist()) == set(range(k))


def test_rejects_what_the_reference_rejects():
  with pytest.raises(ValueError, match='no songs'):
    lexicon_stream.fit_lexicon_partitioned([])
  with pytest.raises(ValueError, match='syllable_stress'):
    lexicon_stream.fit_lexicon_partitioned([_random_corpus()[0].replace(syllable_stress=None)])
  with pytest.raises(ValueError, match='partitions'):
    lexicon_stream.fit_lexicon_partitioned(_random_corpus(), partitions=0)


def test_byte_identical_on_the_shared_pretrain_corpus():
  _same(_shared_pretrain_songs(), partitions=(None, 1, 6), max_n=12, min_span_n=2, max_span_n=4, max_rank=0.3,
        stress_mode='word')
