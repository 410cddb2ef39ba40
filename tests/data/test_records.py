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
