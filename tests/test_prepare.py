import dataclasses
import hashlib
import json
import pathlib
import re
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import symusic

from songglm_jax.data import prepare, records, tokenizer
from songglm_jax.music import midi
from tests.conftest import REPO, require_sample
from tests.songs import scale_song


def _raw_midi(path, lyrics, notes):
  score = symusic.Score(480)
  lyr, lead = symusic.Track('', 0, False), symusic.Track('Lead', 0, False)
  for t, text in lyrics:
    lyr.lyrics.append(symusic.TextMeta(t, text))
  for t, d, p in notes:
    lead.notes.append(symusic.Note(t, d, p, 100))
  score.tracks.append(lyr)
  score.tracks.append(lead)
  score.dump_midi(str(path))


def make_corpus(root: pathlib.Path) -> None:
  """Six good songs and a zoo of broken files."""
  (root / 'sub' / 'deeper').mkdir(parents=True)
  for i in range(6):
    s = scale_song(10 + i, punctuation_every=3, name=f'good{i}')
    midi.write_midi(s, root / ('sub/deeper' if i % 2 else 'sub') / f'good{i}.mid')
  (root / 'empty.mid').write_bytes(b'')
  good = (root / 'sub' / 'good0.mid').read_bytes()
  (root / 'truncated.mid').write_bytes(good[:len(good) // 2])
  (root / 'text.mid').write_text('this is not a MIDI file\n')
  _raw_midi(root / 'nolyrics.midi', [], [(0, 480, 60), (480, 480, 62)])
  _raw_midi(root / 'lyrics_only.kar', [(0, 'la'), (480, 'la')], [])
  _raw_midi(root / 'lyrics_after_notes.mid', [(4800, 'la')], [(0, 480, 60)])
  _raw_midi(root / 'poly.mid', [(0, 'a'), (480, 'b.')],
            [(0, 480, 60), (0, 480, 64), (480, 480, 62), (480, 480, 55)])
  _raw_midi(root / 'weird_text.mid', [(0, 'gr\u00fc\x07'), (480, '\x01'), (960, 'n\u00e9.')],
            [(0, 480, 60), (960, 480, 62)])
  _raw_midi(root / 'huge.mid', [(0, 'a')], [(i * 30, 30, 60) for i in range(300)])
  (root / 'broken.musicxml').write_text('<score-partwise><part id="P1"><measure')
  (root / 'notes.txt').write_text('ignored: not a song extension')


def _run(src, out, workers=1, **kw):
  opts = prepare.PrepareOptions(valid_fraction=0.3, min_count=1, max_notes=200, **kw)
  return prepare.prepare_dataset(str(src), out, opts, workers=workers)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
  root = tmp_path_factory.mktemp('corpus')
  make_corpus(root)
  return root


def test_broken_files_are_reported_not_fatal(corpus, tmp_path):
  report = _run(corpus, tmp_path / 'out')
  assert report['files'] == 16
  assert report['songs'] == 8  # 6 good + poly + weird_text
  assert report['skipped'] == {'empty_file': 1, 'lyrics_without_notes': 1, 'no_lyrics': 1,
                               'no_notes': 1, 'not_midi': 1, 'too_long': 1, 'unreadable': 2}
  reasons = dict(map(tuple, report['skipped_files']))
  assert reasons['truncated.mid'] == 'unreadable' and reasons['huge.mid'] == 'too_long'
  assert reasons['broken.musicxml'] == 'unreadable'
  assert report['read_repairs']['polyphony_notes_dropped'] == 2
  assert report['read_repairs']['empty_lyrics'] == 1
  on_disk = json.loads((tmp_path / 'out' / 'report.json').read_text())
  assert on_disk == json.loads(json.dumps(report))
  n = sum(len(records.open_split(tmp_path / 'out', s))
          for s in records.SPLITS)
  assert n == report['songs'] == sum(report['splits'].values())


def test_records_hold_tokens_that_detokenize(corpus, tmp_path):
  _run(corpus, tmp_path / 'out')
  vocab = tokenizer.Vocab.from_json((tmp_path / 'out' / 'vocab.json').read_text())
  tok = tokenizer.Tokenizer(vocab)
  src = records.open_split(tmp_path / 'out', 'train')
  names = set()
  for i in range(len(src)):
    r = src[i]
    song = tok.detokenize(r.tokens, time_signatures=r.time_signatures, tempo=r.tempo)
    assert song.num_notes > 0 and r.source.endswith(('.mid', '.midi'))
    names.add(r.source)
  assert 'poly.mid' in names or 'poly.mid' in _valid_names(tmp_path / 'out')


def _valid_names(out):
  src = records.open_split(out, 'valid')
  return {src[i].source for i in range(len(src))}


def _digest(folder):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_output_is_byte_identical_whatever_the_worker_count(corpus, tmp_path):
  _run(corpus, tmp_path / 'one', workers=1)
  _run(corpus, tmp_path / 'two', workers=2)
  assert _digest(tmp_path / 'one') == _digest(tmp_path / 'two')


def test_output_does_not_depend_on_how_the_source_path_is_spelled(corpus, tmp_path,
                                                                   monkeypatch):
  _run(corpus, tmp_path / 'absolute')
  monkeypatch.chdir(corpus.parent)
  _run(pathlib.Path(corpus.name), tmp_path / 'relative')  # a relative spelling of the same root
  absolute = _digest(tmp_path / 'absolute')
  relative = _digest(tmp_path / 'relative')
  del absolute['report.json'], relative['report.json']  # it records the source as given
  assert absolute == relative


def test_rerun_over_existing_output_leaves_no_temporary_files(corpus, tmp_path):
  _run(corpus, tmp_path / 'out')
  _run(corpus, tmp_path / 'out')
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
      'report.json', 'train-00000-of-00001.array_record', 'valid-00000-of-00001.array_record',
      'vocab.json']


def test_records_are_sharded_by_records_per_shard_and_read_as_one_file(corpus, tmp_path):
  report = _run(corpus, tmp_path / 'shards', records_per_shard=2)
  _run(corpus, tmp_path / 'one', records_per_shard=0)
  n = report['splits']['train']
  files = records.split_files(tmp_path / 'shards', 'train')
  assert n >= 3 and len(files) == (n + 1) // 2
  assert [p.name for p in files] == [f'train-{i:05d}-of-{len(files):05d}.array_record'
                                     for i in range(len(files))]
  assert records.record_counts(files) == [2] * (n // 2) + [1] * (n % 2)
  assert records.split_files(tmp_path / 'one', 'train') == [tmp_path / 'one' / 'train.array_record']
  shards, one = (records.open_split(tmp_path / d, 'train') for d in ('shards', 'one'))
  assert [r.name for r in map(shards.__getitem__, range(n))] == [
      r.name for r in map(one.__getitem__, range(n))]
  assert all(np.array_equal(shards[i].tokens, one[i].tokens) for i in range(n))


def test_a_dataset_prepared_before_sharding_is_still_reused(corpus, tmp_path):
  """A report.json without ``records_per_shard`` (one file per split) is kept by options that
  ask for that layout (an old workdir's config reads 0: config.LATER_FIELDS), not by others."""
  from songglm_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  from songglm_jax.job import stages
  out = tmp_path / 'out'
  opts = prepare.PrepareOptions(valid_fraction=0.3, min_count=1, max_notes=200,
                                records_per_shard=0)
  prepare.prepare_dataset(str(corpus), out, opts)
  report = json.loads((out / 'report.json').read_text())
  del report['options']['records_per_shard']
  (out / 'report.json').write_text(json.dumps(report))
  old_data = config_lib.base_config().data.to_dict()
  del old_data['records_per_shard']  # a config.json written before the field existed
  old = prepare.PrepareOptions.from_config(ml_collections.ConfigDict(old_data))
  assert old.records_per_shard == config_lib.LATER_FIELDS['data.records_per_shard'] == 0
  assert stages._prepared(out, str(corpus), opts) is not None  # pylint: disable=protected-access
  sharded = dataclasses.replace(opts, records_per_shard=5)
  assert stages._prepared(out, str(corpus), sharded) is None  # pylint: disable=protected-access
  prepare.prepare_dataset(str(corpus), out, sharded)
  assert stages._prepared(out, str(corpus), sharded) is not None  # pylint: disable=protected-access
  assert not (out / 'train.array_record').exists()


def test_a_bad_records_per_shard_is_a_one_line_error_before_any_work(corpus, tmp_path):
  r = _cli(f'--source={corpus}', f'--output={tmp_path / "o"}', '--records_per_shard=-2')
  assert r.returncode != 0 and r.stderr.strip().count('\n') == 0
  assert 'config.data.records_per_shard' in r.stderr and 'got -2' in r.stderr
  assert not (tmp_path / 'o').exists()


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'songglm_jax.prepare', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_cli_missing_source_is_one_line_error(tmp_path):
  r = _cli('--source=/no/such/folder', f'--output={tmp_path / "o"}')
  assert r.returncode != 0
  assert r.stderr.strip().count('\n') == 0 and 'does not exist' in r.stderr
  assert not (tmp_path / 'o').exists()


def test_cli_bad_flag_is_one_line_error(tmp_path):
  r = _cli('--source=x', f'--output={tmp_path}', '--no_such_flag=1')
  assert r.returncode == 2 and r.stderr.strip().count('\n') == 0
  assert 'no_such_flag' in r.stderr


def test_cli_prepares_a_folder(corpus, tmp_path):
  r = _cli(f'--source={corpus}', f'--output={tmp_path / "o"}', '--workers=1')
  assert r.returncode == 0, r.stderr
  assert 'prepared 9 songs' in r.stdout  # the CLI's default note bound admits huge.mid


def test_shared_corpora_with_lexicon(tmp_path):
  """Done-when: >= 995 of 1000 pre-training and >= 895 of 900 fine-tuning songs, the fine-tuning
  corpus prepared with the pre-training lexicon; coverage plausible."""
  pre, ft = require_sample('pretrain'), require_sample('finetune')
  r1 = prepare.prepare_dataset(str(pre), tmp_path / 'pre',
                               prepare.PrepareOptions(fit_lexicon=True), workers=2)
  assert r1['files'] == 1000 and r1['songs'] >= 995, r1['skipped']
  assert r1['quantize']['durations_clipped'] == 0
  lex = r1['lexicon']
  assert lex['path'] == 'lexicon.json' and (tmp_path / 'pre' / 'lexicon.json').is_file()
  assert 0 <= lex['oov_rate'] < 0.01
  assert all(0.05 < lex['coverage'][k] < 0.95 for k in ('smr', 'srr')), lex
  r2 = prepare.prepare_dataset(str(ft), tmp_path / 'ft',
                               prepare.PrepareOptions(lexicon=str(tmp_path / 'pre' / 'lexicon.json')),
                               workers=2)
  assert r2['files'] == 900 and r2['songs'] >= 895, r2['skipped']
  assert not (tmp_path / 'ft' / 'lexicon.json').exists()
  assert all(0.05 < r2['lexicon']['coverage'][k] < 0.95 for k in ('smr', 'srr'))
  src = records.open_split(tmp_path / 'ft', 'train')
  r = src[0]
  n_notes = int((r.tokens[:, tokenizer.F.type] == tokenizer.NOTE).sum())
  assert len(r.spans_smr) and r.spans_smr.min() >= 0 and r.spans_smr.max() <= n_notes


def _dead_pid() -> int:
  p = subprocess.Popen(['true'])
  p.wait()
  return p.pid


def test_rerun_removes_temporaries_a_killed_run_left(corpus, tmp_path):
  """A SIGKILL mid-write leaves `.train.array_record.<pid>.<hex>.tmp`; the next run removes it."""
  out = tmp_path / 'out'
  _run(corpus, out)
  pid = _dead_pid()
  for name in ('train.array_record', 'train-00001-of-00003.array_record', 'vocab.json',
               'report.json'):
    (out / f'.{name}.{pid}.0badc0de.tmp').write_bytes(b'')
  _run(corpus, out)
  assert sorted(p.name for p in out.iterdir()) == [
      'report.json', 'train-00000-of-00001.array_record', 'valid-00000-of-00001.array_record',
      'vocab.json']


def _broken_corpus(root: pathlib.Path) -> pathlib.Path:
  root.mkdir()
  (root / 'empty.mid').write_bytes(b'')
  (root / 'text.mid').write_text('this is not a MIDI file\n')
  return root


def test_no_usable_song_leaves_no_output_folder(tmp_path):
  with pytest.raises(ValueError, match='no usable songs'):
    _run(_broken_corpus(tmp_path / 'src'), tmp_path / 'out')
  assert not (tmp_path / 'out').exists()


def _problems(stderr: str) -> list[str]:
  """The lines of ``stderr`` other than absl's INFO progress lines (``I1126 00:16:57.13 ...``)."""
  return [line for line in stderr.strip().splitlines() if not re.match(r'I\d{4} ', line)]


def test_cli_no_usable_song_is_one_line_error_and_no_folder(tmp_path):
  r = _cli(f'--source={_broken_corpus(tmp_path / "src")}', f'--output={tmp_path / "o"}',
           '--workers=1')
  assert r.returncode == 1 and len(_problems(r.stderr)) == 1, r.stderr
  assert 'no usable songs' in r.stderr and 'Traceback' not in r.stderr
  assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('workers', ['0', '-1'])
def test_cli_workers_below_one_is_one_line_error(corpus, tmp_path, workers):
  r = _cli(f'--source={corpus}', f'--output={tmp_path / "o"}', f'--workers={workers}')
  assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
  assert 'workers' in r.stderr and workers in r.stderr and 'Traceback' not in r.stderr
  assert not (tmp_path / 'o').exists()


def test_reprepare_without_a_lexicon_removes_the_old_lexicon(corpus, tmp_path):
  out = tmp_path / 'out'
  assert _run(corpus, out, fit_lexicon=True)['lexicon']['path'] == 'lexicon.json'
  assert (out / 'lexicon.json').is_file()
  kept = tmp_path / 'kept.json'
  kept.write_bytes((out / 'lexicon.json').read_bytes())
  report = _run(corpus, out, lexicon=str(out / 'lexicon.json'))  # the same file: still used
  assert report['lexicon']['path'] == str(out / 'lexicon.json') and (out / 'lexicon.json').is_file()
  report = _run(corpus, out, lexicon=str(kept))  # another file: the old one is stale
  assert not (out / 'lexicon.json').exists() and kept.is_file()
  (out / 'lexicon.json').write_bytes(kept.read_bytes())
  report = _run(corpus, out)  # no lexicon at all
  assert 'lexicon' not in report and not (out / 'lexicon.json').exists()


def _in_memory_records(src, opts):
  """Each split's records the way prepare made them before it streamed (every song in lists,
  then the vocabulary, then tokenizing): the oracle of the streaming prepare."""
  from songglm_jax.data import lexicon, lexicon_build, reading
  paths, names = prepare._input_files(str(src), opts.limit)
  split_songs = {s: [] for s in records.SPLITS}
  for res in (reading.read_one((p, n, opts)) for p, n in zip(paths, names)):
    split = 'valid' if prepare._in_valid(res.path, opts.valid_fraction) else 'train'
    split_songs[split] += [(res.path, s) for s in res.songs]
  train = [s for _, s in split_songs['train']]
  tok = tokenizer.Tokenizer(tokenizer.fit_vocab(train, min_count=opts.min_count,
                                                max_bars=opts.max_bars,
                                                max_bar_ticks=opts.max_bar_ticks))
  lex = lexicon_build.fit_lexicon(
      train, max_n=opts.lexicon_max_n, min_span_n=opts.lexicon_min_span_n,
      max_span_n=opts.lexicon_max_span_n, max_rank=opts.lexicon_max_rank,
      stress_mode=opts.stress_lookup, workers=2) if opts.fit_lexicon else None
  out = {}
  for split, items in split_songs.items():
    out[split] = []
    for path, song in items:
      try:
        tokens = tok.tokenize(song)
      except tokenizer.SongSkip:
        continue
      spans = ([lexicon.song_spans(lex, k, song) for k in ('smr', 'srr')] if lex else
               [np.zeros((0, 2), np.int32)] * 2)
      out[split].append(records.SongRecord(
          tokens=tokens, time_signatures=song.time_signatures, spans_smr=spans[0],
          spans_srr=spans[1], name=song.name, source=path, tempo=song.tempo))
  return out


@pytest.mark.parametrize('fit_lexicon', [False, True])
def test_streaming_prepare_writes_the_records_of_the_in_memory_way_byte_for_byte(
    corpus, tmp_path, monkeypatch, fit_lexicon):
  spill_dir = tmp_path / 'tmpdir'
  spill_dir.mkdir()
  monkeypatch.setattr('tempfile.tempdir', str(spill_dir))  # where the songs wait on disk
  _run(corpus, tmp_path / 'out', records_per_shard=2, fit_lexicon=fit_lexicon)
  opts = prepare.PrepareOptions(valid_fraction=0.3, min_count=1, max_notes=200,
                                records_per_shard=2, fit_lexicon=fit_lexicon)
  for split, recs in _in_memory_records(corpus, opts).items():
    ref = records.write_split(tmp_path / 'ref', split, recs, records_per_shard=2)
    got = records.split_files(tmp_path / 'out', split)
    assert [p.name for p in got] == [p.name for p in ref]
    assert [p.read_bytes() for p in got] == [p.read_bytes() for p in ref]
  assert list(spill_dir.glob('songglm-spill-*')) == []  # the spill file is gone


def test_lexicon_partitions_do_not_change_the_output(corpus, tmp_path):
  opts = prepare.PrepareOptions(valid_fraction=0.3, min_count=1, max_notes=200, fit_lexicon=True)
  digests = []
  for k in (-1, 0, 3):  # -1: the reference fit, holding every train song
    prepare.prepare_dataset(str(corpus), tmp_path / f'k{k}', opts, lexicon_partitions=k)
    digests.append(_digest(tmp_path / f'k{k}'))
  assert 'lexicon.json' in digests[0]
  assert digests[1] == digests[0] and digests[2] == digests[0]
  with pytest.raises(ValueError, match='lexicon_partitions'):
    prepare.prepare_dataset(str(corpus), tmp_path / 'bad', opts, lexicon_partitions=-2)
  assert not (tmp_path / 'bad').exists()
