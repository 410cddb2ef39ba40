"""Grain pipelines from the config: pre-training, fine-tuning and evaluation batches.

One pipeline per use (:func:`pretrain_pipeline`, :func:`finetune_pipeline`,
:func:`eval_pipeline`); each is

    records [lo, hi) of the split                    this host's block (below)
      -> repeat() -> shuffle(seed, epoch)            training only; reshuffled every epoch
      -> (global index, record index) -> batch(chunk_records)
      -> map(read, window, mask, GLM layout, pack)   the packed rows of one chunk
      -> to_iter_dataset -> flat_map(rows) -> batch(batch_size / process_count)
      -> mp_prefetch(workers)                        when workers > 0

and yields dicts of NumPy arrays ``[B, seq_len]`` (``tokens``/``targets`` ``[B, seq_len, F]``)
with the keys of ``packing.ROW_KEYS`` (the batch contract in DESIGN.md).

Sharing between processes: a split is the concatenation of its record files (its shards in
order, or its one file; ``records.split_files``) and process ``p`` of ``P`` reads the contiguous
block ``[p * N // P, (p + 1) * N // P)`` of its ``N`` records, so the processes read disjoint
records, every record once per epoch, and each opens only the shard files its block overlaps
(with shards of ``records_per_shard`` records, a file is shared by at most two processes once
each block spans a shard or more).

Determinism: an example's task and masks depend only on (seed, epoch, record index, window) --
see ``masking.py`` -- so they are the same whatever the worker count, chunk size or process count
(the epoch counts passes over this process's block of records).
Which examples share a packed row and the order of batches depend on the chunk size and on the
worker count (each worker packs its own chunks and the batches are taken from the workers in
turn), so ``workers`` is part of the experiment: keep it fixed, like the seed. A saved iterator
state (``iterator.get_state()``, or ``grain.checkpoint.CheckpointSave(iterator)`` in an Orbax step)
restores only into a pipeline built with the same options and worker count; the next batch after
``set_state`` is then the one the uninterrupted run would have produced.

Evaluation reads the valid split once, in order, with fixed masks (epoch 0), and pads its last
batch with all-padding rows (``segment_ids`` 0, loss mask 0). With several processes each reads
its own slice, so the number of eval batches may differ by one between processes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from songglm_jax.data import masking, masking_windows, packing, records
from songglm_jax.data import tokenizer as tok

USES = ('pretrain', 'finetune')


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
  """Everything that determines a pipeline's stream (``config.pipeline`` mirrors the fields)."""
  masking: masking.MaskingOptions = masking.MaskingOptions()
  seq_len: int = 1024        # tokens per packed row
  batch_size: int = 8        # packed rows per batch, over all processes
  chunk_records: int = 256   # records masked and packed together (first-fit decreasing)
  workers: int = 0           # Grain worker processes (0: in this process); part of the experiment
  worker_buffer: int = 2     # batches each worker prepares ahead
  read_threads: int = 1      # threads preparing chunks ahead inside each process
  seed: int = 0              # data order and masks

  def validate(self) -> None:
    self.masking.validate()
    if self.seq_len < 8:
      raise ValueError(f'pipeline.seq_len: expected >= 8, got {self.seq_len}')
    for name in ('batch_size', 'chunk_records'):
      if getattr(self, name) < 1:
        raise ValueError(f'pipeline.{name}: expected >= 1, got {getattr(self, name)}')
    for name in ('workers', 'read_threads'):
      if getattr(self, name) < 0:
        raise ValueError(f'pipeline.{name}: expected >= 0, got {getattr(self, name)}')
    if self.worker_buffer < 1:
      raise ValueError(f'pipeline.worker_buffer: expected >= 1, got {self.worker_buffer}')

  @classmethod
  def from_config(cls, cfg, seed: int) -> 'PipelineOptions':
    """From the ``config.pipeline`` section and the run's seed (``config.seed``)."""
    opts = cls(masking=masking.MaskingOptions.from_config(cfg), seq_len=int(cfg.seq_len),
               batch_size=int(cfg.batch_size), chunk_records=int(cfg.chunk_records),
               workers=int(cfg.workers), worker_buffer=int(cfg.worker_buffer),
               read_threads=int(cfg.read_threads), seed=int(seed))
    opts.validate()
    return opts


def default_process() -> tuple[int, int]:
  """(jax.process_index(), jax.process_count()), or (0, 1) when JAX is not installed."""
  try:
    import jax
  except ImportError:
    return 0, 1
  return jax.process_index(), jax.process_count()


class ChunkToRows:
  """Grain map: a chunk of (global index, record index) pairs -> its packed rows."""

  def __init__(self, paths: list[str], first_index: int, shard_size: int, opts: PipelineOptions,
               use: str, train: bool):
    self._paths = paths               # the record files this process's block overlaps
    self._first_index = first_index   # split index of the first record of paths[0]
    self._source: Optional[records.RecordSource] = None  # opened lazily (in each worker)
    self._shard_size = shard_size
    self._opts = opts
    self._use = use
    self._train = train

  def __getstate__(self):
    return {**self.__dict__, '_source': None}

  def __call__(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
    if self._source is None:
      self._source = records.RecordSource(self._paths)
    opts = self._opts
    chunk = np.asarray(chunk, np.int64).reshape(-1, 2)
    epochs = chunk[:, 0] // self._shard_size if self._train else np.zeros(len(chunk), np.int64)
    recs = [self._source[i - self._first_index] for i in chunk[:, 1].tolist()]
    finetune = self._use == 'finetune'
    batch = masking_windows.windowed_batch(recs, epochs, chunk[:, 1], opts.seed, opts.seq_len,
                                           opts.masking, finetune)
    examples = masking.batch_examples(batch, opts.masking, masking.FINETUNE if finetune else None)
    return packing.pack(examples, opts.seq_len)


class EpochOrder:
  """Grain map with index: position ``g`` of the stream -> (g, record index).

  Epoch ``e = g // len(shard)`` visits the shard in the order of a permutation drawn from
  ``(seed, e)`` (a fresh one every epoch), or in file order when ``shuffle`` is off. A plain
  NumPy permutation per epoch (kept for the current and the previous epoch) costs far less per
  element than an index-shuffle function, and it depends only on the index, so the iterator
  state stays a single position.
  """

  def __init__(self, shard: np.ndarray, seed: int, shuffle: bool):
    self._shard = shard
    self._seed = seed
    self._shuffle = shuffle
    self._perms: dict[int, np.ndarray] = {}

  def _perm(self, epoch: int) -> np.ndarray:
    perm = self._perms.get(epoch)
    if perm is None:
      perm = np.random.default_rng([self._seed, epoch]).permutation(len(self._shard))
      self._perms = {e: p for e, p in self._perms.items() if e == epoch - 1}
      self._perms[epoch] = perm
    return perm

  def __call__(self, g: int, local: int) -> np.ndarray:
    if not self._shuffle:
      return np.array([g, self._shard[local]], np.int64)
    epoch, j = divmod(g, len(self._shard))
    return np.array([g, self._shard[self._perm(epoch)[j]]], np.int64)


class _Rows:
  """Grain flat-map transform: packed rows of a chunk -> one dict per row."""
  max_fan_out = 1 << 16

  def flat_map(self, rows: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    count = len(rows['segment_ids'])
    return [{k: v[r] for k, v in rows.items()} for r in range(count)]


class _Stack:
  """Grain batch function: rows -> one batch; pads a short last batch with empty rows."""

  def __init__(self, batch_size: int, seq_len: int):
    self._batch_size = batch_size
    self._seq_len = seq_len

  def __call__(self, rows) -> dict[str, np.ndarray]:
    out = {k: np.stack([r[k] for r in rows]) for k in packing.ROW_KEYS}
    short = self._batch_size - len(rows)
    if short > 0:
      pad = packing.empty_rows(short, self._seq_len, len(tok.FIELDS))
      out = {k: np.concatenate([out[k], pad[k]]) for k in packing.ROW_KEYS}
    return out


def make_pipeline(data_dir: str | os.PathLike, split: str, opts: PipelineOptions, *, use: str,
                  train: bool, process_index: Optional[int] = None,
                  process_count: Optional[int] = None):
  """A Grain ``IterDataset`` of batches (module docstring); ``iter()`` it for a checkpointable
  iterator.

  Args:
    data_dir: a prepared dataset folder (``prepare.py``).
    split: 'train' or 'valid'.
    use: 'pretrain' (multi-task blank infilling) or 'finetune' (lyrics -> whole melody).
    train: shuffle and repeat forever (else one ordered pass with a padded last batch).
    process_index, process_count: this host's share; default from JAX.

  Raises:
    ValueError: bad options, missing split files, or fewer records than processes.
  """
  import grain
  opts.validate()
  if use not in USES:
    raise ValueError(f'pipeline use {use!r}: expected one of {USES}')
  if process_index is None or process_count is None:
    process_index, process_count = default_process()
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} outside [0, {process_count})')
  if opts.batch_size % process_count:
    raise ValueError(f'pipeline.batch_size={opts.batch_size} must be a multiple of the '
                     f'{process_count} processes')
  paths, first_index, shard = process_block(data_dir, split, process_index, process_count)
  ds = grain.MapDataset.range(len(shard))
  if train:
    ds = ds.repeat()
  ds = ds.map_with_index(EpochOrder(shard, opts.seed, shuffle=train))
  ds = ds.batch(opts.chunk_records, batch_fn=np.stack)
  ds = ds.map(ChunkToRows(paths, first_index, len(shard), opts, use, train))
  ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=opts.read_threads,
                                            prefetch_buffer_size=max(1, opts.read_threads)))
  ds = grain.experimental.FlatMapIterDataset(ds, _Rows())
  local_batch = opts.batch_size // process_count
  ds = ds.batch(local_batch, drop_remainder=train, batch_fn=_Stack(local_batch, opts.seq_len))
  if opts.workers > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=opts.workers,
                                                     per_worker_buffer_size=opts.worker_buffer))
  return ds


def process_block(data_dir: str | os.PathLike, split: str, process_index: int,
                  process_count: int) -> tuple[list[str], int, np.ndarray]:
  """This process's share of ``split`` (module docstring): (the record files its block overlaps,
  the split index of their first record, the split indices of the block).

  Raises:
    ValueError: no record files, broken shards, or fewer records than processes.
  """
  paths = records.split_files(data_dir, split)
  if not paths:
    raise ValueError(f'{records.split_path(data_dir, split)}: not found (nor {split} shards); '
                     'prepare the dataset first (songglm_jax.prepare)')
  starts = np.concatenate([[0], np.cumsum(records.record_counts(paths))]).astype(np.int64)
  total = int(starts[-1])
  lo, hi = process_index * total // process_count, (process_index + 1) * total // process_count
  if hi == lo:
    raise ValueError(f'{paths[0].parent}: {total} {split} records cannot feed {process_count} '
                     'processes')
  mine = [i for i in range(len(paths)) if starts[i] < hi and starts[i + 1] > lo]
  return [str(paths[i]) for i in mine], int(starts[mine[0]]), np.arange(lo, hi, dtype=np.int64)


def pretrain_pipeline(data_dir, opts: PipelineOptions, **process):
  """Training batches of the multi-task blank-infilling objectives (train split, forever)."""
  return make_pipeline(data_dir, 'train', opts, use='pretrain', train=True, **process)


def finetune_pipeline(data_dir, opts: PipelineOptions, **process):
  """Training batches of fine-tuning examples (train split, forever)."""
  return make_pipeline(data_dir, 'train', opts, use='finetune', train=True, **process)


def eval_pipeline(data_dir, opts: PipelineOptions, use: str = 'pretrain', **process):
  """One ordered pass over the valid split with fixed masks; the last batch is padded."""
  return make_pipeline(data_dir, 'valid', opts, use=use, train=False, **process)
