"""Lyrics -> songs on disk: text lyrics, windows, the Generator, outputs, the CLI helpers."""

from __future__ import annotations

import json

import ml_collections
import pytest

from songglm_jax.inference import generate_run, generation, generation_rules, sample_files
from songglm_jax.job import stages
from songglm_jax.inference import lyrics as lyrics_lib
from songglm_jax.music import io as song_io
from songglm_jax.data import tokenizer as tk
from songglm_jax.music import phrases, score_writer, syllabify
from tests.music import score_xml
from tests.model.test_decode import CFG, tiny
from tests.songs import make_song

WORDS = {'twinkle': 2, 'little': 2, 'star': 1, 'beautiful': 3, 'melody': 3, 'a': 1,
         'wonderful': 3, 'music': 2, 'understand': 3, 'everything': 3, 'the': 1, 'heaven': 2,
         'alabama': 4, 'remember': 3, 'singing': 2}


def test_text_syllable_counts_of_known_words():
  lyr = lyrics_lib.from_text(' '.join(WORDS))
  assert lyr.num_syllables == sum(WORDS.values())
  assert ''.join(syllabify.plain(s) for s in lyr.syllables) == ''.join(WORDS)


def test_text_lines_and_punctuation_end_phrases_and_keep_their_marks():
  lyr = lyrics_lib.from_text('Twinkle, twinkle little star\nhow I wonder! what you are')
  assert lyr.syllables[:2] == ('Twin-', 'kle,')  # the user's case; '-': the word goes on
  assert lyr.title == 'Twinkle, twinkle little star'
  assert lyr.syllable_phrase.tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]
  assert lyr.name == 'twinkle_twinkle_little_star' and len(lyr.syllable_stress) == 14
  with pytest.raises(ValueError, match='no words'):
    lyrics_lib.from_text(' ,. ')


def test_windows_cut_long_lyrics_at_phrase_boundaries():
  lyr = lyrics_lib.from_text('\n'.join(['la la la'] * 5 + ['la ' * 8]))  # 5 x 3, then 8
  parts = lyr.windows(max_syllables=7, max_phrases=2)
  assert [p.num_syllables for p in parts] == [6, 6, 3, 7, 1]
  assert all(p.syllable_phrase[0] == 0 and p.num_phrases <= 2 for p in parts)
  assert sum(p.num_syllables for p in parts) == 23
  assert lyr.windows(256, 128) == [lyr]


def test_join_songs_starts_each_part_on_the_next_bar():
  a = make_song([60, 62], [0, 480], [480, 600], [0, 1], ['la', 'li.'])
  b = make_song([64], [240], [240], [0], ['lo'], name='b')
  joined = generation.join_songs([a, b], 'x')
  assert joined.onset.tolist() == [0, 480, 1920 + 240]
  assert joined.syllables == ('la', 'li.', 'lo') and joined.syllable_phrase.tolist() == [0, 0, 1]
  assert joined.note_syllable.tolist() == [0, 1, 2] and joined.name == 'x'


@pytest.fixture(scope='module')
def written(tmp_path_factory):
  """Three punctuated lyrics (two long enough to need two windows; one in Chinese, Japanese and
  Korean, which the tiny vocabulary does not know) x 2 samples, written."""
  tok, graphdef, params = tiny()
  cfg = CFG.__class__(**{**CFG.__dict__, 'num_word_ids': 16})  # force windows past 16 syllables
  lyrics = [lyrics_lib.from_text('Twinkle, twinkle, little star. How I wonder what you are!'),
            lyrics_lib.from_text('Row, row, row your boat, gently down the stream; merrily, '
                                 'merrily, merrily, merrily, life is but a dream.', 'row'),
            lyrics_lib.from_text('一闪一闪亮晶晶，满天都是小星星。きょうは 안녕하세요')]
  out = tmp_path_factory.mktemp('gen')
  opts = generation.GenerateOptions(num_samples=2, batch_size=4, seed=3)
  report = generate_run.generate_to_dir(cfg, tok.field_sizes, tok, graphdef, params, lyrics, out,
                                        opts, plot=True)
  return lyrics, out, report


def test_every_sample_written_with_a_summary(written):
  lyrics, out, report = written
  assert report['num_samples'] == 6 and report['invalid_fraction'] == 0.0
  assert json.loads((out / 'generate.json').read_text())['num_invalid'] == 0
  for k in range(2):
    for lyr in lyrics:
      for ext in ('.mid', '.musicxml', '.png'):
        assert (out / f'sample_{k}' / (lyr.name + ext)).stat().st_size > 100


def test_outputs_read_back_through_the_project_readers(written):
  lyrics, out, _ = written
  for lyr in lyrics:
    mid = out / 'sample_1' / f'{lyr.name}.mid'
    (song,), _ = song_io.read_songs(mid)
    (score,), _ = song_io.read_songs(mid.with_suffix('.musicxml'))
    assert song.syllables == lyr.syllables  # punctuation, case and the '-' marks given back
    written = score_writer.notation_song(song)  # the score's rhythm (module docstring)
    written = written.replace(syllables=tuple(syllabify.plain(s) for s in song.syllables))
    assert score.same_as(written, check_velocity=False)
    # phrases survive the round trip (punctuation-based segmentation)
    assert phrases.segment_phrases(song).syllable_phrase.tolist() == lyr.syllable_phrase.tolist()


def test_outputs_read_back_through_music21(written):
  import music21
  lyrics, out, _ = written
  lyr = lyrics[0]
  (song,), _ = song_io.read_songs(out / 'sample_0' / f'{lyr.name}.mid')
  for ext in ('.mid', '.musicxml'):
    # MIDI without music21's default quantisation, which merges an untrained model's 64th notes
    kw = {'quantizePost': False} if ext == '.mid' else {}
    part = music21.converter.parse(str(out / 'sample_0' / (lyr.name + ext)), **kw).parts[0]
    notes = list(part.stripTies().recurse().notes)
    assert [n.pitch.midi for n in notes] == song.pitch.tolist()
    # music21 reads the MIDI hyphen convention ('Twin-' 'kle') too: 'Twin' is a word's 'begin'
    assert [n.lyric for n in notes if n.lyric] == [syllabify.plain(s) for s in lyr.syllables]
    syllabic = [n.lyrics[0].syllabic for n in notes if n.lyrics]
    assert syllabic[:4] == (['begin', 'end', 'begin', 'end'] if ext == '.musicxml' else
                            ['begin', 'single', 'begin', 'single'])


def test_unknown_syllables_are_unk_and_sung_one_note_or_more_each(written):
  lyrics, out, _ = written
  lyr = lyrics[2]
  assert lyr.num_syllables == 22 and lyr.num_phrases == 3  # one per character / kana / block
  tok, _, _ = tiny()
  rows = generation.lyric_rows(lyr, tok)
  assert (rows[1:-1, tk.F.syllable] == tk.UNK).all()
  for k in range(2):
    (song,), _ = song_io.read_songs(out / f'sample_{k}' / f'{lyr.name}.mid')
    assert song.syllables == lyr.syllables
    assert song.notes_per_syllable.min() >= 1 and song.num_notes >= 22


def test_written_scores_are_titled_and_hyphenated(written):
  lyrics, out, _ = written
  x = score_xml.read(out / 'sample_0' / f'{lyrics[0].name}.musicxml')
  assert x.title == 'Twinkle, twinkle, little star'
  assert x.lyrics[:5] == [('begin', 'Twin'), ('end', 'kle,'), ('begin', 'twin'), ('end', 'kle,'),
                          ('begin', 'lit')]
  assert ('single', 'I') in x.lyrics
  assert not [c for c in x.creators if c[0] == 'composer'] and x.instruments == ['Voice']
  assert set(x.tuplets) <= {(3, 2)}
  assert score_xml.read(out / 'sample_0' / f'{lyrics[2].name}.musicxml').lyrics[:2] == [
      ('single', '一'), ('single', '闪')]


def test_title_and_language_options():
  (lyr,) = generate_run.read_lyrics(text='Schöne Straße', language='de', title='Ein Lied')
  assert lyr.syllables == ('Schö-', 'ne', 'Stra-', 'ße') and lyr.title == 'Ein Lied'
  (lyr,) = generate_run.read_lyrics(text='Schöne Straße')
  assert lyr.syllables == ('Schöne', 'Straße') and lyr.title == 'Schöne Straße'
  with pytest.raises(ValueError, match="--language 'xx'"):
    generate_run.read_lyrics(text='la', language='xx')


def test_sampling_setting_strings():
  base = {f: 0.9 for f in generation.FIELDS}
  assert sample_files.parse_field_values('1.0', float, base) == {f: 1.0 for f in generation.FIELDS}
  got = sample_files.parse_field_values('pitch=1.2, bar=0.5', float, base)
  assert got['pitch'] == 1.2 and got['bar'] == 0.5 and got['duration'] == 0.9
  with pytest.raises(ValueError, match='unknown field'):
    sample_files.parse_field_values('tempo=1', float, base)


def test_sampling_setting_with_a_field_twice_is_refused():
  base = {f: 0.9 for f in generation.FIELDS}
  with pytest.raises(ValueError, match="field 'pitch' given twice"):
    sample_files.parse_field_values('pitch=1,bar=0.5, pitch=2', float, base)


def test_options_from_config_then_flags():
  c = ml_collections.ConfigDict({'seed': 7, 'generate': _generate_section()})
  c.generate.temperature = {f: 0.7 for f in generation.FIELDS}
  opts = sample_files.options(c, num_samples=3, top_k='pitch=20', seed=None)
  assert opts.num_samples == 3 and opts.temperature['bar'] == 0.7 and opts.top_k['pitch'] == 20
  assert opts.top_k['bar'] == 10 and opts.seed == 7
  del c.generate.max_notes
  with pytest.raises(ValueError, match='missing'):
    sample_files.options(c)
  with pytest.raises(ValueError, match='pitch_low'):
    sample_files.options(None, pitch_low=90, pitch_high=80)


def test_read_lyrics_sources(tmp_path):
  with pytest.raises(ValueError, match='exactly one'):
    generate_run.read_lyrics(text='la', text_file='x.txt')
  assert [x.name for x in generate_run.read_lyrics(text='la la | la la | li')] == [
      'la_la_0', 'la_la_1', 'li']
  (tmp_path / 'my song.txt').write_text('Hello, world')
  assert generate_run.read_lyrics(text_file=str(tmp_path / 'my song.txt'))[0].name == 'my song'
  song = make_song([60, 62, 64], [0, 480, 960], [480] * 3, [0, 1, 1], ['hel', 'lo.'],
                   time_signatures=((0, 3, 4),), tempo=90)
  song_io.write_song(song, tmp_path / 'sub' / 'a.mid')
  (got,) = generate_run.read_lyrics(songs_from=str(tmp_path))
  assert got.name == 'sub/a' and got.syllables == ('hel', 'lo.')
  assert got.time_signature == (3, 4) and got.tempo == pytest.approx(90)


# ---- with a trained workdir (train/checkpoint.py) ---------------------------------------------
def _generate_section(**change) -> ml_collections.ConfigDict:
  """The ``config.generate`` section the main job's stage reads (GenerateOptions + the stage's
  own fields)."""
  opts = generation.GenerateOptions()
  d = {f.name: getattr(opts, f.name) for f in generation.dataclasses.fields(opts)
       if f.name != 'seed'}
  d.update(lyrics='Twinkle, twinkle, little star. | How I wonder what you are!', lyrics_from='',
           plot=False, stage='', num_samples=2)
  d.update(change)
  return ml_collections.ConfigDict(d)


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A workdir pre-trained for 2 steps on the training tests' tiny corpus."""
  from tests.train import helpers
  return helpers.pretrained_workdir(tmp_path_factory.mktemp('trained'))


def test_cli_writes_songs_for_text_lyrics(workdir, tmp_path):
  import subprocess
  import sys
  from tests.conftest import REPO
  from tests.train import helpers
  cmd = [sys.executable, '-m', 'songglm_jax.generate', f'--workdir={workdir}',
         '--lyrics=Row, row, row your boat. Gently down the stream!', f'--output={tmp_path}',
         '--num_samples=2', '--seed=4', '--top_p=0.9', '--temperature=pitch=1.1',
         '--checkpoint=latest', '--title=Boat Song', '--language=en_GB',
         '--stress_beat_bias=2', '--phrase_rest_bias=1.5', '--phrase_final_long_bias=1',
         '--legato_bias=0.5', '--duration_offsets=240:0.5,480:-0.25']
  r = subprocess.run(cmd, cwd=REPO, env=helpers.subprocess_env(), capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'row_row_row_your sample 1: ' in r.stdout and ' notes on 10 syllables, range ' in r.stdout
  report = json.loads((tmp_path / 'generate.json').read_text())
  assert report['num_invalid'] == 0 and report['step'] == 2 and report['stage'] == 'pretrain'
  assert report['checkpoint'] == 'latest'
  assert report['options']['temperature']['pitch'] == 1.1
  assert report['options']['top_p'] == {f: 0.9 for f in generation.FIELDS}
  assert (report['options']['stress_beat_bias'], report['options']['phrase_rest_bias'],
          report['options']['phrase_final_long_bias'],
          report['options']['stress_duration_bias']) == (2.0, 1.5, 1.0, 0.0)  # the last: config's
  assert report['options']['legato_bias'] == 0.5
  assert report['options']['duration_offsets'] == '240:0.5,480:-0.25'
  (song,), _ = song_io.read_songs(tmp_path / 'sample_1' / 'row_row_row_your.mid')
  assert song.syllables[-1] == 'stream!' and song.syllables[0] == 'Row,'
  assert score_xml.read(tmp_path / 'sample_1' / 'row_row_row_your.musicxml').title == 'Boat Song'
  assert report['lyrics_source']['language'] == 'en_GB'


def test_cli_one_line_error_for_an_unknown_language(tmp_path):
  import subprocess
  import sys
  from tests.conftest import REPO
  from tests.train import helpers
  r = subprocess.run([sys.executable, '-m', 'songglm_jax.generate', f'--workdir={tmp_path}',
                      f'--output={tmp_path / "out"}', '--lyrics=la la', '--language=klingon'],
                     cwd=REPO, env=helpers.subprocess_env(), capture_output=True, text=True,
                     timeout=120)
  assert r.returncode == 1 and 'Traceback' not in r.stderr
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("songglm_jax.generate: error: --language 'klingon': no hyphenation "
                         'dictionary; pyphen has ')


def test_cli_one_line_error_without_lyrics(workdir, tmp_path):
  import subprocess
  import sys
  from tests.conftest import REPO
  from tests.train import helpers
  r = subprocess.run([sys.executable, '-m', 'songglm_jax.generate', f'--workdir={workdir}',
                      f'--output={tmp_path}'], cwd=REPO, env=helpers.subprocess_env(),
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 1
  assert r.stderr.strip().splitlines()[-1] == (
      'songglm_jax.generate: error: give exactly one of --lyrics, --lyrics_file, --lyrics_from '
      "(got none)")


def test_lyrics_from_a_song_folder(workdir, tmp_path):
  from tests.train import helpers
  songs = helpers.prepared_corpus() / 'songs'
  report = generate_run.run(str(workdir), tmp_path, songs_from=str(songs), num_samples=1)
  names = sorted(p.stem for p in (tmp_path / 'sample_0').glob('*.mid'))
  assert names == sorted(p.stem for p in songs.glob('*.mid')) and report['num_invalid'] == 0
  (orig,), _ = song_io.read_songs(songs / 'song03.mid')
  (new,), _ = song_io.read_songs(tmp_path / 'sample_0' / 'song03.mid')
  assert new.syllables == orig.syllables and new.tempo == pytest.approx(orig.tempo)


def test_stage_writes_samples_then_keeps_them(workdir, capsys):
  from tests.train import helpers
  config = helpers.tiny_config()
  config.generate = _generate_section()
  stages.run_generate(config, workdir)
  done = workdir / 'samples' / 'generate.json'
  first = json.loads(done.read_text())
  assert first['num_samples'] == 4 and first['num_invalid'] == 0
  assert (workdir / 'samples' / 'sample_1' / 'how_i_wonder_what.musicxml').is_file()
  stamp = done.stat().st_mtime_ns
  stages.run_generate(config, workdir)
  assert 'already generated' in capsys.readouterr().out and done.stat().st_mtime_ns == stamp
  config.generate.num_samples = 1
  stages.run_generate(config, workdir)
  assert json.loads(done.read_text())['num_samples'] == 2


def test_checkpoint_choice_flag_then_config_then_best():
  c = ml_collections.ConfigDict({'generate': _generate_section(checkpoint='latest')})
  assert sample_files.checkpoint_choice(c) == 'latest'
  assert sample_files.checkpoint_choice(c, 'best') == 'best'
  old = ml_collections.ConfigDict({'generate': _generate_section()})  # an older config.json
  assert sample_files.checkpoint_choice(old) == sample_files.checkpoint_choice(None) == 'best'
  assert sample_files.checkpoint_choice(c, '200') == '200'
  with pytest.raises(ValueError, match=r"^--checkpoint: expected one of \('best', 'latest'\) "
                     "or a step number, got 'newest'$"):
    sample_files.checkpoint_choice(c, 'newest')
  c.generate.checkpoint = 'last'
  with pytest.raises(ValueError, match='^config.generate.checkpoint: expected one of'):
    sample_files.checkpoint_choice(c)


def test_resume_regenerates_when_the_checkpoint_changes(workdir, tmp_path, capsys):
  import shutil
  from songglm_jax.train import checkpoint, inference
  from tests.train import helpers
  work = tmp_path / 'work'
  shutil.copytree(workdir, work, ignore=shutil.ignore_patterns('samples'))
  out = tmp_path / 'out'
  config = helpers.tiny_config()
  config.generate = _generate_section(num_samples=1)  # no checkpoint field: 'best'
  sing = lambda **kw: generate_run.run(str(work), out, text='la la la', resume=True,
                                       config=config, **kw)
  first = sing()
  assert (first['checkpoint'], first['step']) == ('latest', 2)  # no best: the newest
  best = checkpoint.BestCheckpoint(work / 'pretrain', start=2)
  try:
    best.offer(1, inference.load_for_inference(str(work)).params, 1.0)
  finally:
    best.close()
  capsys.readouterr()
  second = sing()
  assert (second['checkpoint'], second['step']) == ('best', 1)
  assert 'already generated' not in capsys.readouterr().out
  assert sing()['step'] == 1 and 'already generated' in capsys.readouterr().out
  third = sing(checkpoint='latest')
  assert (third['checkpoint'], third['step']) == ('latest', 2)
  assert 'already generated' not in capsys.readouterr().out
  assert json.loads((out / 'generate.json').read_text())['checkpoint'] == 'latest'


def test_cli_one_line_error_for_a_sampling_field_given_twice(workdir, tmp_path):
  import re
  import subprocess
  import sys
  from tests.conftest import REPO
  from tests.train import helpers
  r = subprocess.run([sys.executable, '-m', 'songglm_jax.generate', f'--workdir={workdir}',
                      f'--output={tmp_path / "out"}', '--lyrics=la la',
                      '--temperature=pitch=1,pitch=2'], cwd=REPO, env=helpers.subprocess_env(),
                     capture_output=True, text=True, timeout=120)
  problems = [x for x in r.stderr.strip().splitlines() if not re.match(r'I\d{4} ', x)]
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
  assert problems == ["songglm_jax.generate: error: bad sampling setting 'pitch=1,pitch=2': "
                      "field 'pitch' given twice"]
  assert not (tmp_path / 'out').exists()


def test_formats_parse_to_a_known_subset_or_one_clear_error():
  assert sample_files.parse_formats('mid,musicxml,png') == sample_files.FORMATS
  assert sample_files.parse_formats('png, mid') == ('mid', 'png')  # FORMATS order, spaces allowed
  assert sample_files.parse_formats(None) == ('mid', 'musicxml')
  # the config's plot field:
  assert sample_files.parse_formats(None, plot=True) == sample_files.FORMATS
  assert sample_files.parse_formats('mid,png', plot=False) == ('mid',)  # --noplot
  assert sample_files.parse_formats('musicxml', plot=True) == ('musicxml', 'png')  # --plot
  with pytest.raises(ValueError, match=r"^--formats: unknown format 'wav'; expected a comma-"
                                       r'separated subset of mid,musicxml,png$'):
    sample_files.parse_formats('mid,wav')
  with pytest.raises(ValueError, match="unknown format ''"):
    sample_files.parse_formats('')
  with pytest.raises(ValueError, match='no song file among png'):
    sample_files.parse_formats('png')


def test_midi_only_folders(tmp_path):
  tok, graphdef, params = tiny()
  lyrics = [lyrics_lib.from_text('Twinkle, twinkle, little star.')]
  opts = generation.GenerateOptions(num_samples=2, batch_size=2, seed=3)
  report = generate_run.generate_to_dir(  # formats decide, not plot
      CFG, tok.field_sizes, tok, graphdef, params, lyrics, tmp_path, opts, formats=('mid',),
      plot=True)
  assert report['formats'] == ['mid'] and report['num_invalid'] == 0
  for k in range(2):
    assert [p.suffix for p in (tmp_path / f'sample_{k}').iterdir()] == ['.mid']
  assert json.loads((tmp_path / 'generate.json').read_text())['formats'] == ['mid']


def test_cli_formats(workdir, tmp_path):
  import subprocess
  import sys
  from tests.conftest import REPO
  from tests.train import helpers
  base = [sys.executable, '-m', 'songglm_jax.generate', f'--workdir={workdir}', '--lyrics=la la',
          '--num_samples=1']
  r = subprocess.run(base + [f'--output={tmp_path / "bad"}', '--formats=mid,wav'], cwd=REPO,
                     env=helpers.subprocess_env(), capture_output=True, text=True, timeout=120)
  assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
      "songglm_jax.generate: error: --formats: unknown format 'wav'; expected a comma-separated "
      'subset of mid,musicxml,png')
  assert not (tmp_path / 'bad').exists()
  for formats, want in (('mid', ['.mid']), (None, ['.mid', '.musicxml', '.png'])):
    out = tmp_path / str(formats)
    extra = [f'--formats={formats}'] if formats else []
    r = subprocess.run(base + [f'--output={out}', *extra], cwd=REPO, env=helpers.subprocess_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.suffix for p in (out / 'sample_0').iterdir()) == want


def test_resume_regenerates_when_the_formats_change(workdir, tmp_path, capsys):
  run = lambda formats: generate_run.run(str(workdir), tmp_path, text='la la', num_samples=1,
                                         formats=formats, resume=True)
  assert run('mid')['formats'] == ['mid']
  assert run('mid,musicxml')['formats'] == ['mid', 'musicxml']
  assert 'already generated' not in capsys.readouterr().out
  assert sorted(p.suffix for p in (tmp_path / 'sample_0').iterdir()) == ['.mid', '.musicxml']
  run('musicxml,mid')
  assert 'already generated' in capsys.readouterr().out


def test_duration_calibration_measures_offsets_on_training_songs(workdir, tmp_path):
  """benchmarks/duration_calibration.py: sings training songs' lyrics, prints offsets that
  ``generate.duration_offsets`` accepts; a missing workdir is a one-line error."""
  import subprocess
  import sys
  from tests.conftest import REPO
  from tests.train import helpers
  import shutil
  env = dict(helpers.subprocess_env(), SONGGLM_BENCH_RESULTS=str(tmp_path / 'results'))
  # the trained workdir, with the source its songs were prepared from (re-read for the reference)
  work = tmp_path / 'w'
  shutil.copytree(workdir, work)
  config = json.loads((work / 'config.json').read_text())
  config['data']['pretrain_source'] = str(helpers.prepared_corpus() / 'songs')
  (work / 'config.json').write_text(json.dumps(config))
  workdir = work
  run = lambda *a: subprocess.run([sys.executable, 'benchmarks/duration_calibration.py', *a],
                                  cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  r = run(f'--workdir={workdir}', '--songs=3', '--num_samples=1', '--min_share=0',
          '--iterations=2', '--damping=0.5', '--config.generate.temperature.pitch=1.0')
  assert r.returncode == 0, r.stderr[-2000:]
  last = json.loads(r.stdout.strip().splitlines()[-1])
  assert last['songs'] == 3 and last['notes_generated'] > 0 and last['notes_reference'] > 0
  assert last['overrides'] == ['--config.generate.temperature.pitch=1.0']
  got = generation_rules.parse_offsets(last["offsets"])
  assert got and all(abs(v) <= 1.0 for v in got.values())
  generation.GenerateOptions(duration_offsets=last['offsets']).validate()
  assert [h['offsets'] for h in last['history']][0] == ''  # iteration 0: uncorrected
  assert generation_rules.parse_offsets(last['history'][1]['offsets'])  # then with offsets
  for it in (0, 1):
    folder = workdir / 'duration_calibration' / f'iteration_{it}'
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ['sample_0']
  bad = run(f'--workdir={tmp_path / "none"}')
  assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
  assert 'config.json not found' in bad.stderr
  field = run(f'--workdir={workdir}', '--config.generate.no_such=1')
  assert field.returncode == 1 and 'not a field' in field.stderr
