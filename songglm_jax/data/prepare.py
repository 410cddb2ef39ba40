"""Songs on disk -> a prepared dataset that Grain reads by index (:func:`prepare_dataset`; the
program is ``python -m songglm_jax.prepare``, the main job's ``prepare`` stage ``job/stages.py``).

Stages: find the input files (recursively; ``music21`` = the works with lyrics in music21's
bundled corpus) -> read, stress, phrase-segment and window each file in worker processes (results
come back in input order, so the output does not depend on the number of workers) -> split
train/valid by a hash of each file's relative path -> fit the vocabularies on the train split ->
(optionally) fit or load the harmonized n-gram lexicon and find each song's spans -> tokenize ->
write ``OUT/{train,valid}-NNNNN-of-NNNNN.array_record`` (shards of ``records_per_shard`` records;
0: one ``OUT/{train,valid}.array_record`` each; ``data/records.py``), ``OUT/vocab.json``,
``OUT/lexicon.json`` and, last, ``OUT/report.json``. Every file is written through a temporary name
and a rename, so a crash never leaves a half-written file behind an old good one; a re-run first
removes the old report.json (so a run stopped half-way is never taken for a complete dataset), the
temporaries a killed run left behind, record files of another layout or shard count, and a
``lexicon.json`` of an earlier run when it fits none itself. The output folder is made only once
some song is usable. The same input gives byte-identical output, whatever the number of workers
(timings go to the console, not into report.json).

Memory does not grow with the corpus (``benchmarks/scale_bench.py``): the vocabularies are
counted while the files are read, the songs wait on disk in a temporary spill file instead of a
list (``data/song_spill.py``, in ``TMPDIR``, about 4 KB per song, gone with the process however
it ends), and are read back one at a time to be tokenized and written to shards as they come
(``records.ShardWriter``). ``--fit_lexicon`` reads the train songs back from the spill file too,
into compact arrays, and counts n-grams in hash partitions (``data/lexicon_stream.py``; the same
lexicon.json as the reference fit ``data/lexicon_build.py``, which held every train song).

report.json also records the resolved source (``source_path``) and ``source_fingerprint`` (a
digest of the input files' names, sizes and modification times, and of a reused lexicon): the
main job keeps a prepared dataset only while they match (``job/stages.py``, ``_prepared``). The
output path is checked before the work starts (a file, a path under a file or a folder that is not
writable is an error).

A file that cannot be used is skipped and counted in report.json (``skipped``: reason -> count,
``skipped_files``: [path, reason]); a bug in a reader is caught per file too and reported as
``error:<ExceptionType>``, so one bad file never stops the run.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import pathlib
import time
from typing import Sequence

import numpy as np
from absl import logging

from songglm_jax import atomic
from songglm_jax.data import (lexicon, lexicon_build, lexicon_stream, reading, records,
                              song_spill, tokenizer)
from songglm_jax.music import io as song_io
from songglm_jax.music import midi
from songglm_jax.music.song import Song, SongSkip

MUSIC21 = 'music21'
REPORT_VERSION = 1
OUTPUT_FILES = ('vocab.json', 'lexicon.json', 'report.json')  # and the records (data/records.py)
# Options added after datasets were first prepared, with the value that reproduces such a
# dataset: a report.json whose options lack one is read with this value.
LATER_OPTIONS = {'records_per_shard': 0}


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
  """Everything that determines a prepared dataset (``config.data`` mirrors these)."""
  valid_fraction: float = 0.05
  min_count: int = 2
  stress_lookup: str = 'word'
  fit_lexicon: bool = False
  lexicon: str = ''
  limit: int = 0
  max_notes: int = midi.MAX_NOTES
  max_file_bytes: int = midi.MAX_FILE_BYTES
  max_syllables: int = 256
  max_phrases: int = 128
  max_bars: int = 512
  max_bar_ticks: int = 3840
  lexicon_max_n: int = 12         # longest n-gram scored (N)
  lexicon_min_span_n: int = 2     # shortest n-gram used for spans (see data/lexicon_build.py:
  lexicon_max_span_n: int = 4     #   every unigram scores 0, so unigram ranks carry no signal)
  lexicon_max_rank: float = 0.3   # n-grams of rank <= this are selected
  records_per_shard: int = 10000  # records per shard file (0: one file per split)

  @classmethod
  def from_config(cls, data, **overrides) -> 'PrepareOptions':
    """From the config's ``data`` section (the main job's datasets), then ``overrides``."""
    return dataclasses.replace(cls(
        valid_fraction=data.valid_fraction, min_count=data.min_count,
        stress_lookup=data.stress_lookup, limit=data.limit, max_syllables=data.max_syllables,
        max_phrases=data.max_phrases, max_bars=data.max_bars, max_bar_ticks=data.max_bar_ticks,
        lexicon_max_n=data.lexicon_max_n, lexicon_min_span_n=data.lexicon_min_span_n,
        lexicon_max_span_n=data.lexicon_max_span_n, lexicon_max_rank=data.lexicon_max_rank,
        records_per_shard=data.get('records_per_shard', LATER_OPTIONS['records_per_shard'])),
        **overrides)

  def validate(self) -> None:
    if not 0 <= self.valid_fraction < 1:
      raise ValueError(f'valid_fraction must be in [0, 1), got {self.valid_fraction}')
    if self.stress_lookup not in ('word', 'syllable'):
      raise ValueError(f"stress_lookup must be 'word' or 'syllable', got {self.stress_lookup!r}")
    if self.fit_lexicon and self.lexicon:
      raise ValueError('give either fit_lexicon or lexicon=PATH, not both')
    if self.lexicon and not os.path.isfile(self.lexicon):
      raise ValueError(f'lexicon file not found: {self.lexicon}')
    if self.min_count < 1 or self.limit < 0:
      raise ValueError('min_count must be >= 1 and limit >= 0')
    records.check_records_per_shard(self.records_per_shard)


def _input_files(source: str, limit: int) -> tuple[list[str], list[str]]:
  """(absolute paths, names relative to the source root) of the inputs, sorted."""
  if source == MUSIC21:
    from songglm_jax.music import scores
    paths = [str(p) for p in scores.music21_corpus_paths()]
    root = scores.music21_corpus_root()
  else:
    root = pathlib.Path(source)
    if not root.exists():
      raise ValueError(f'--source: path does not exist: {source}')
    paths = [str(p) for p in song_io.find_song_files(root)]
    if root.is_file():
      root = root.parent
  if limit:
    paths = paths[:limit]
  # Names are relative to the source root however the root is spelled (relative or absolute):
  # they name the records and decide the train/valid split.
  names = [os.path.relpath(os.path.abspath(p), os.path.abspath(root)) for p in paths]
  return paths, [n.replace(os.sep, '/') for n in names]


def _resolved(source: str) -> str:
  return source if source == MUSIC21 else os.path.realpath(source)


def _fingerprint(paths: Sequence[str], names: Sequence[str], opts: PrepareOptions) -> str:
  """A cheap digest of the input: each file's name, size and modification time (not its
  content), and the content of the reused lexicon file."""
  h = hashlib.sha256()
  for path, name in zip(paths, names):
    try:
      st = os.stat(path if os.path.exists(path) else path.split('#')[0])
      size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
      size, mtime = -1, -1
    h.update(f'{name}\t{size}\t{mtime}\n'.encode('utf-8'))
  if opts.lexicon:
    try:
      h.update(pathlib.Path(opts.lexicon).read_bytes())
    except OSError:
      h.update(b'<unreadable lexicon>')
  return h.hexdigest()


def source_identity(source: str, opts: PrepareOptions) -> dict:
  """What report.json records of the input (``source_path``, the resolved source, and
  ``source_fingerprint``, :func:`_fingerprint` of its files), computed now: the main job keeps
  a prepared dataset only when these are unchanged.

  Raises:
    ValueError: the source does not exist.
  """
  paths, names = _input_files(source, opts.limit)
  return {'source_path': _resolved(source), 'files': len(paths),
          'source_fingerprint': _fingerprint(paths, names, opts)}


def _in_valid(name: str, fraction: float) -> bool:
  h = int.from_bytes(hashlib.sha1(name.encode('utf-8')).digest()[:8], 'big')
  return h / 2.0**64 < fraction


def prepare_dataset(source: str, output: str | os.PathLike, opts: PrepareOptions = PrepareOptions(),
                    workers: int = 1, lexicon_partitions: int = 0) -> dict:
  """Prepare ``source`` into ``output``; returns the report (also written to report.json).

  ``lexicon_partitions`` (with ``fit_lexicon``; never changes the output): the parts the lexicon
  fit counts each n-gram length in, reading the train songs back from the spill file
  (``data/lexicon_stream.py``); 0: its default (one part per 2**18 syllables); -1: the reference
  fit (``data/lexicon_build.py``), which holds every train song and every n-gram table in memory.

  Raises:
    ValueError: bad options, a missing source path, an output path that is a file (or under
      one) or not writable, or no usable song (nothing is written then: a missing output
      folder is not created).
    OSError: writing fails after all (naming the path).
  """
  opts.validate()
  if lexicon_partitions < -1:
    raise ValueError(f'prepare: lexicon_partitions must be >= -1, got {lexicon_partitions}')
  if workers < 1:
    raise ValueError(f'prepare: workers must be >= 1 (--workers, config.data.workers), got '
                     f'{workers}')
  out = atomic.check_output_folder(output, 'output folder')
  t0 = time.perf_counter()
  paths, names = _input_files(source, opts.limit)
  if not paths:
    raise ValueError(f'--source: no song files found under {source}')
  fingerprint = _fingerprint(paths, names, opts)
  logging.info('prepare: %d input files from %s, %d worker(s)', len(paths), source, workers)

  skipped: collections.Counter = collections.Counter()
  skipped_files: list[list[str]] = []
  read_stats: collections.Counter = collections.Counter()
  vocab_counter = tokenizer.VocabCounter()
  num_train = 0
  lexicon_songs: list[Song] = []  # the train songs, kept only to fit the lexicon
  with song_spill.SongSpill() as spill:
    for res in reading.read_all(paths, names, opts, workers):
      if res.skip:
        skipped[res.skip[0]] += 1
        skipped_files.append([res.path, res.skip[0]])
        logging.debug('skip %s', res.skip[1])
        continue
      read_stats.update(res.stats)
      split = 'valid' if _in_valid(res.path, opts.valid_fraction) else 'train'
      for song in res.songs:
        spill.add(song, {'path': res.path, 'split': split})
        if split == 'train':
          num_train += 1
          vocab_counter.add(song)
          if opts.fit_lexicon and lexicon_partitions == -1:
            lexicon_songs.append(song)
    t_read = time.perf_counter() - t0

    if not num_train:
      raise ValueError(f'no usable songs in {source} (skipped: {dict(skipped)})')
    _start_output(out)
    vocab = vocab_counter.vocab(min_count=opts.min_count, max_bars=opts.max_bars,
                                max_bar_ticks=opts.max_bar_ticks)
    tok = tokenizer.Tokenizer(vocab)
    if opts.fit_lexicon and lexicon_partitions != -1:
      train = lambda: (song for song, tag in spill if tag['split'] == 'train')
      lex_info, spans_of = _lexicon(out, opts, train, lexicon_partitions or None)
    else:
      lex_info, spans_of = _lexicon(out, opts, lexicon_songs)
    del lexicon_songs[:]  # the fit is done: the songs need not stay in memory

    from songglm_jax.music import stress as stress_mod
    qstats = tokenizer.QuantizeStats()
    tokenize_skips: dict[str, list[list[str]]] = {s: [] for s in records.SPLITS}
    stress_total = stress_unknown = 0
    notes_total, notes_in_spans = 0, np.zeros(2, np.int64)  # (smr, srr)
    writers = {s: records.ShardWriter(out, s, opts.records_per_shard) for s in records.SPLITS}
    try:
      for song, tag in spill:
        split = tag['split']
        try:
          tokens = tok.tokenize(song, qstats)
        except SongSkip as e:
          skipped[e.reason] += 1
          tokenize_skips[split].append([song.name, e.reason])
          continue
        smr, srr = spans_of(song)
        notes_total += song.num_notes
        notes_in_spans += [lexicon.covered_notes(x, song.num_notes).sum() for x in (smr, srr)]
        writers[split].write(records.SongRecord(
            tokens=tokens, time_signatures=song.time_signatures, spans_smr=smr, spans_srr=srr,
            name=song.name, source=tag['path'], tempo=song.tempo))
        stress_total += len(song.syllable_stress or ())
        stress_unknown += sum(1 for x in song.syllable_stress or () if x == stress_mod.UNKNOWN)
      for w in writers.values():
        w.close()
    except BaseException:
      for w in writers.values():
        w.abort()
      raise
  counts = {s: w.count for s, w in writers.items()}
  for split in records.SPLITS:  # as before streaming: reading's skips, then train's, then valid's
    skipped_files.extend(tokenize_skips[split])
  atomic.write_text(out / 'vocab.json', vocab.to_json())

  report = {
      'version': REPORT_VERSION,
      'source': source if source == MUSIC21 else os.path.basename(os.path.normpath(source)),
      'source_path': _resolved(source),
      'source_fingerprint': fingerprint,
      'files': len(paths),
      'songs': sum(counts.values()),
      'splits': counts,
      'skipped': dict(sorted(skipped.items())),
      'skipped_files': skipped_files,
      'read_repairs': dict(sorted(read_stats.items())),
      'quantize': dataclasses.asdict(qstats),
      'vocab': {'syllables': len(vocab.syllables), 'stress_patterns': len(vocab.stress),
                'field_sizes': tok.field_sizes},
      'stress': {'lookup': opts.stress_lookup,
                 'oov_rate': stress_unknown / stress_total if stress_total else 0.0},
      'options': dataclasses.asdict(opts),
  }
  if lex_info:
    lex_info['oov_rate'] = report['stress']['oov_rate']
    lex_info['coverage'] = dict(zip(('smr', 'srr'), (notes_in_spans / max(notes_total, 1)).tolist()))
    report['lexicon'] = lex_info
  atomic.write_json(out / 'report.json', report)
  logging.info('prepare: %d songs written (%s) from %d files in %.1f s (reading %.1f s); '
               'skipped %s', report['songs'], counts, len(paths), time.perf_counter() - t0,
               t_read, dict(skipped))
  return report


def _start_output(out: pathlib.Path) -> None:
  """Make ``out`` ready to be (re)written: created; the old ``report.json`` (which marks a
  complete dataset) removed first, so a run that stops half-way is never trusted; temporaries
  left by a killed earlier run removed."""
  out.mkdir(parents=True, exist_ok=True)
  (out / 'report.json').unlink(missing_ok=True)
  for name in OUTPUT_FILES:
    for tmp in atomic.remove_stale_temporaries(out / name):
      logging.info('prepare: removed %s, left by an interrupted run', tmp)


def _lexicon(out: pathlib.Path, opts: PrepareOptions, train_songs, partitions=-1):
  """(report entry or None, song -> (smr spans, srr spans)); a ``lexicon.json`` of an earlier
  run in ``out`` is removed when this run fits none. ``train_songs``: the songs (``partitions``
  -1: the reference fit) or a function iterating over them (the partitioned fit with
  ``partitions`` parts, None: its default)."""
  empty = np.zeros((0, 2), np.int32)
  if not opts.fit_lexicon:
    _remove_stale_lexicon(out / 'lexicon.json', opts.lexicon)
  if not (opts.fit_lexicon or opts.lexicon):
    return None, lambda song: (empty, empty)
  if opts.fit_lexicon:
    t0 = time.perf_counter()
    fit = dict(max_n=opts.lexicon_max_n, min_span_n=opts.lexicon_min_span_n,
               max_span_n=opts.lexicon_max_span_n, max_rank=opts.lexicon_max_rank,
               stress_mode=opts.stress_lookup)
    if partitions == -1:
      lex = lexicon_build.fit_lexicon(train_songs, workers=2, **fit)
    else:
      lex = lexicon_stream.fit_lexicon_partitioned(train_songs, partitions=partitions, **fit)
    logging.info('prepare: lexicon fitted on %d songs in %.2f s', lex.corpus['songs'],
                 time.perf_counter() - t0)
    lexicon.save_lexicon(lex, out / 'lexicon.json')
    shown = 'lexicon.json'
  else:
    lex = lexicon.load_lexicon(opts.lexicon)
    shown = os.path.abspath(opts.lexicon)
  spans = lambda song: (lexicon.song_spans(lex, 'smr', song), lexicon.song_spans(lex, 'srr', song))
  return {'path': shown}, spans


def _remove_stale_lexicon(path: pathlib.Path, used: str) -> None:
  """Remove ``path`` (an earlier run's fitted lexicon) unless it is the file ``used``."""
  if not path.is_file() or (used and os.path.samefile(path, used)):
    return
  path.unlink()
  logging.info('prepare: removed %s of an earlier run (no lexicon is fitted now)', path)
