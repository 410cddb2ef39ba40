"""atomic: writes through a temporary, fsync and rename; stale temporaries of killed writers."""

import os
import subprocess

import pytest

from songglm_jax import atomic


def _dead_pid() -> int:
  p = subprocess.Popen(['true'])
  p.wait()
  return p.pid


def test_replacing_fsyncs_the_temporary_then_renames(tmp_path, monkeypatch):
  synced = []
  real_fsync = os.fsync
  monkeypatch.setattr(os, 'fsync', lambda fd: (synced.append(os.readlink(f'/proc/self/fd/{fd}')),
                                               real_fsync(fd)))
  target = tmp_path / 'a.bin'
  with atomic.replacing(target) as tmp:
    tmp.write_bytes(b'xyz')
    assert not target.exists()
  assert target.read_bytes() == b'xyz'
  assert len(synced) == 1 and os.path.basename(synced[0]).startswith('.a.bin.')
  assert [p.name for p in tmp_path.iterdir()] == ['a.bin']


def test_replacing_keeps_the_old_file_on_an_error(tmp_path):
  target = tmp_path / 'a.bin'
  target.write_bytes(b'old')
  with pytest.raises(RuntimeError):
    with atomic.replacing(target) as tmp:
      tmp.write_bytes(b'half')
      raise RuntimeError('writer failed')
  assert target.read_bytes() == b'old' and [p.name for p in tmp_path.iterdir()] == ['a.bin']


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
  target = tmp_path / 'train.array_record'
  dead = tmp_path / f'.train.array_record.{_dead_pid()}.0123abcd.tmp'
  mine = atomic.temporary_path(target)  # this process: may be writing it right now
  other = tmp_path / f'.valid.array_record.{_dead_pid()}.0123abcd.tmp'  # another output's
  for p in (dead, mine, other):
    p.write_bytes(b'')
  with subprocess.Popen(['sleep', '30']) as live_proc:
    live = tmp_path / f'.train.array_record.{live_proc.pid}.89abcdef.tmp'
    live.write_bytes(b'')
    try:
      assert atomic.remove_stale_temporaries(target) == [dead]
    finally:
      live_proc.kill()
  assert not dead.exists() and mine.exists() and live.exists() and other.exists()


def test_finished_json_keeps_only_a_matching_stamp(tmp_path):
  path = tmp_path / 'done.json'
  assert atomic.finished_json(path, {'step': 2}) is None  # no file
  atomic.write_json(path, {'step': 2, 'options': {'top_k': [1, 2]}, 'result': 0.5})
  assert atomic.finished_json(path, {'step': 2, 'options': {'top_k': (1, 2)}})['result'] == 0.5
  assert atomic.finished_json(path, {'step': 3}) is None
  assert atomic.finished_json(path, {'other': None}) == {  # an absent key reads as None
      'step': 2, 'options': {'top_k': [1, 2]}, 'result': 0.5}
  path.write_text('{"step": 2')  # cut short
  assert atomic.finished_json(path, {'step': 2}) is None
  path.write_text('[2]')  # not an object
  assert atomic.finished_json(path, {'step': 2}) is None


def test_finished_json_reads_keys_an_older_file_lacks_through_older(tmp_path):
  path = tmp_path / 'done.json'
  atomic.write_json(path, {'step': 2, 'plot': True})  # written before 'formats' existed
  older = lambda old: {'formats': ['mid'] + ['png'] * bool(old.get('plot'))}
  assert atomic.finished_json(path, {'step': 2, 'formats': ('mid', 'png')}, older) == {
      'step': 2, 'plot': True}  # the file as it is, not the defaults
  assert atomic.finished_json(path, {'step': 2, 'formats': ['mid']}, older) is None
  atomic.write_json(path, {'step': 2, 'plot': True, 'formats': ['mid']})  # the file's own wins
  assert atomic.finished_json(path, {'step': 2, 'formats': ['mid']}, older) is not None


def test_keep_finished_says_what_it_keeps(tmp_path, capsys):
  path = tmp_path / 'done.json'
  assert atomic.keep_finished(path, {'step': 2}, 'kept it') is None
  assert capsys.readouterr().out == ''  # nothing kept, nothing said
  atomic.write_json(path, {'step': 2, 'result': 1})
  assert atomic.keep_finished(path, {'step': 2}, 'kept it') == {'step': 2, 'result': 1}
  assert capsys.readouterr().out == 'kept it\n'
