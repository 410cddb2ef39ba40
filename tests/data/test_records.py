import numpy as np
import pytest

from songglm_jax.data import records


def _rec(i):
  return records.SongRecord(tokens=np.arange(18, dtype=np.int32).reshape(2, 9) + i,
                            time_signatures=np.array([[0, 3, 4]]),
                            spans_smr=np.array([[0, 2]], np.int32),
                            spans_srr=np.zeros((0, 2), np.int32), name=f'sü{i}', source='a/b.mid',
                            tempo=97.5)


def test_encode_decode_round_trip_and_determinism():
  r = _rec(3)
  data = records.encode(r)
  assert data == records.encode(_rec(3))
  back = records.decode(data)
  for k in ('tokens', 'time_signatures', 'spans_smr', 'spans_srr'):
    assert np.array_equal(getattr(back, k), getattr(r, k)) and getattr(back, k).dtype == getattr(
        r, k).dtype
  assert (back.name, back.source, back.tempo) == ('sü3', 'a/b.mid', 97.5)


def test_decode_rejects_other_bytes():
  with pytest.raises(ValueError, match='magic'):
    records.decode(b'\x80\x04pickle')


def test_write_and_read_by_index(tmp_path):
  p = tmp_path / 'train.array_record'
  assert records.write_records(p, (_rec(i) for i in range(5))) == 5
  src = records.RecordSource([p])
  assert len(src) == 5 and src[4].tokens[0, 0] == 4
  assert [x.name for x in tmp_path.iterdir()] == ['train.array_record']


def test_empty_split_is_readable(tmp_path):
  p = tmp_path / 'valid.array_record'
  assert records.write_records(p, []) == 0
  assert len(records.RecordSource([p])) == 0


def test_missing_file_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match='not found'):
    records.RecordSource([tmp_path / 'nope.array_record'])


def test_write_records_fsyncs_before_the_rename(tmp_path, monkeypatch):
  """Through atomic.replacing, like every other write: synced, renamed, no temporary left."""
  import os  # pylint: disable=import-outside-toplevel
  events = []
  real_fsync, real_replace = os.fsync, os.replace
  monkeypatch.setattr(os, 'fsync', lambda fd: (events.append('fsync'), real_fsync(fd)))
  monkeypatch.setattr(os, 'replace', lambda a, b: (events.append('replace'), real_replace(a, b)))
  p = tmp_path / 'train.array_record'
  assert records.write_records(p, (_rec(i) for i in range(2))) == 2
  assert events == ['fsync', 'replace']
  assert [x.name for x in tmp_path.iterdir()] == ['train.array_record']


def _names(source):
  return [source[i].name for i in range(len(source))]


def test_a_split_written_in_shards_reads_as_the_one_file_layout(tmp_path):
  recs = [_rec(i) for i in range(7)]
  paths = records.write_split(tmp_path / 'sharded', 'train', recs, records_per_shard=3)
  assert [p.name for p in paths] == [f'train-0000{i}-of-00003.array_record' for i in range(3)]
  assert records.record_counts(paths) == [3, 3, 1]
  assert records.split_files(tmp_path / 'sharded', 'train') == paths
  (one,) = records.write_split(tmp_path / 'one', 'train', recs, records_per_shard=0)
  assert one.name == 'train.array_record'
  sharded, single = records.open_split(tmp_path / 'sharded', 'train'), records.open_split(
      tmp_path / 'one', 'train')
  assert _names(sharded) == _names(single) == [f'sü{i}' for i in range(7)]
  assert all(np.array_equal(sharded[i].tokens, single[i].tokens) for i in range(7))


def test_an_empty_split_is_one_empty_shard(tmp_path):
  (p,) = records.write_split(tmp_path, 'valid', [], records_per_shard=4)
  assert p.name == 'valid-00000-of-00001.array_record'
  assert len(records.open_split(tmp_path, 'valid')) == 0


def test_rewriting_a_split_removes_its_other_layout_and_shard_count(tmp_path):
  recs = [_rec(i) for i in range(5)]
  records.write_split(tmp_path, 'valid', recs[:1], records_per_shard=0)
  records.write_split(tmp_path, 'train', recs, records_per_shard=0)
  records.write_split(tmp_path, 'train', recs, records_per_shard=2)
  records.write_split(tmp_path, 'train', recs, records_per_shard=4)
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      'train-00000-of-00002.array_record', 'train-00001-of-00002.array_record',
      'valid.array_record']  # the other split is left alone
  records.write_split(tmp_path, 'train', recs, records_per_shard=0)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['train.array_record',
                                                        'valid.array_record']


def test_broken_shard_sets_are_one_line_errors(tmp_path):
  recs = [_rec(i) for i in range(5)]
  paths = records.write_split(tmp_path, 'train', recs, records_per_shard=2)
  paths[1].unlink()
  with pytest.raises(ValueError, match=r'1 train shard\(s\) missing, e.g. '
                     r'train-00001-of-00003.array_record'):
    records.open_split(tmp_path, 'train')
  records.write_records(records.shard_path(tmp_path, 'train', 1, 3), recs[2:4])
  records.write_records(tmp_path / 'train-00000-of-00002.array_record', recs[:1])
  with pytest.raises(ValueError, match='shards of 2 and of 3 files mixed'):
    records.split_files(tmp_path, 'train')
  (tmp_path / 'train-00000-of-00002.array_record').unlink()
  records.write_records(records.split_path(tmp_path, 'train'), recs)
  with pytest.raises(ValueError, match='both train.array_record and train shards'):
    records.split_files(tmp_path, 'train')
  with pytest.raises(ValueError, match=r'valid.array_record: not found \(nor valid shards\)'):
    records.open_split(tmp_path, 'valid')


@pytest.mark.parametrize('bad', [-1, 2.5, '8', True])
def test_a_bad_shard_size_names_the_config_field(tmp_path, bad):
  with pytest.raises(ValueError,
                     match=r'\(config.data.records_per_shard\): expected an integer >= 0'):
    records.write_split(tmp_path, 'train', [_rec(0)], records_per_shard=bad)
  assert not list(tmp_path.iterdir())


def test_shard_writer_files_are_byte_identical_to_writing_each_shard_at_once(tmp_path):
  recs = [_rec(i) for i in range(7)]
  with records.ShardWriter(tmp_path / 'stream', 'train', 3) as writer:
    for r in recs:
      writer.write(r)
    paths = writer.close()
  assert [p.name for p in paths] == [f'train-0000{i}-of-00003.array_record' for i in range(3)]
  assert writer.count == 7
  for i, p in enumerate(paths):
    whole = tmp_path / f'whole{i}.array_record'
    records.write_records(whole, recs[3 * i:3 * i + 3])
    assert p.read_bytes() == whole.read_bytes()
  assert sorted(x.name for x in (tmp_path / 'stream').iterdir()) == [p.name for p in paths]


def test_shard_writer_leaves_nothing_behind_when_the_writing_fails(tmp_path):
  records.write_split(tmp_path, 'train', [_rec(0)], records_per_shard=2)  # an earlier run
  with pytest.raises(RuntimeError, match='boom'):
    with records.ShardWriter(tmp_path, 'train', 2) as writer:
      for i in range(5):
        writer.write(_rec(i))
      raise RuntimeError('boom')
  assert list(tmp_path.iterdir()) == []  # the old split was removed when the writer started


def test_pending_shards_of_a_killed_writer_are_removed_by_the_next_one(tmp_path):
  stale = tmp_path / '.train-00000-of-pending.array_record.999999999.0123abcd.tmp'
  stale.write_bytes(b'half a shard')
  records.write_split(tmp_path, 'train', [_rec(0)], records_per_shard=2)
  assert sorted(x.name for x in tmp_path.iterdir()) == ['train-00000-of-00001.array_record']
