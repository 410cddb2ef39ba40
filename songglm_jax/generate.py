r"""Lyrics -> songs on disk with a trained workdir.

    python -m songglm_jax.generate --workdir=W (--lyrics="..." | --lyrics_file=F |
        --lyrics_from=DIR) --output=OUT [--num_samples=N] [--seed=S] [--temperature=T]
        [--top_k=K] [--top_p=P] [--formats=mid,musicxml,png] [--stage=finetune]
        [--checkpoint=best|latest] [--noconstrained] [--language=en] [--title=T]
    python -m songglm_jax.generate --workdir=W --song=IN.mid --regenerate=SPEC --output=OUT ...
        (infilling: keep the song's notes but the SPEC's; see inference/infill_run.py)

Writes, for K = 0 .. N-1, the ``--formats`` (default ``mid,musicxml,png``) of each song:
``OUT/sample_K/NAME.mid`` (one lyric event per syllable at its first note),
``OUT/sample_K/NAME.musicxml`` (syllables under the notes), ``NAME.png`` (piano roll with
syllables); ``--formats=mid`` makes MIDI-only folders for tools that refuse other files (the
public SongGLM metric script drops such a folder). ``--plot`` / ``--noplot`` (older commands) add
or drop ``png``. Also ``OUT/generate.json`` (options, the formats, one summary per
song, the invalid fraction); an earlier run's ``sample_K/`` folders in OUT are replaced, so
that none of its songs is counted with this run's. NAME is the lyrics file's stem, the song file's path under DIR
without its suffix, or a slug of the lyrics' first words. ``--lyrics`` may hold several songs
separated by ``|``; in text, lines and ``. , ! ? ; :`` end phrases. ``--language`` (a pyphen
language such as ``de``, ``fr``, ``es``; default ``en``) says how text words split into
syllables; CJK characters, kana and hangul blocks are one syllable each in any language. The
score's title is ``--title``, else the lyrics' first line (for ``--lyrics_from``: made from the
song's first words).

Sampling settings: ``--temperature`` / ``--top_k`` / ``--top_p`` take one value for every field
(``0.9``) or per field (``pitch=1.0,bar=0.8``); unset ones come from the workdir's
``config.generate`` when it has one, else from ``GenerateOptions``
(``inference/generation_rules.py``).

Checkpoint: ``--checkpoint`` (default ``config.generate.checkpoint``, 'best' when the workdir's
config predates it): 'best' = the stage's lowest held-out loss checkpoint when it has one, else
the newest; 'latest' = the newest. ``generate.json`` records the kind used and its step.
"""

from __future__ import annotations

from absl import flags

from songglm_jax.inference import generate_run
from songglm_jax.inference.sample_files import FORMATS, parse_formats

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLI's flags (defined only when run as a program, so that importing this module next to
  other programs whose flags share names such as --output is harmless)."""
  flags.DEFINE_string('workdir', None, 'trained workdir (checkpoints, config.json)')
  flags.DEFINE_string('stage', None, 'checkpoint of this training stage (default: finetune when '
                      'it has one, else pretrain)')
  flags.DEFINE_string('checkpoint', None, "'best' (lowest held-out loss, else the newest), "
                      "'latest', or a kept step number (default: config.generate.checkpoint)")
  flags.DEFINE_string('lyrics', None, 'lyrics text; several songs separated by "|"')
  flags.DEFINE_string('lyrics_file', None, 'a UTF-8 text file of lyrics (one song)')
  flags.DEFINE_string('lyrics_from', None, 'folder (or file) of songs whose lyrics to sing')
  flags.DEFINE_string('output', None, 'output folder')
  flags.DEFINE_integer('num_samples', None, 'samples per song')
  flags.DEFINE_integer('seed', None, 'sampling seed')
  flags.DEFINE_string('temperature', None, 'value, or field=value,... (<= 0: greedy)')
  flags.DEFINE_string('top_k', None, 'value, or field=value,... (0: off)')
  flags.DEFINE_string('top_p', None, 'value, or field=value,... (1.0: off)')
  flags.DEFINE_boolean('constrained', None, 'alignment/time constraints (default: on)')
  flags.DEFINE_float('stress_beat_bias', None, 'lyric-melody prior: stressed syllables on strong '
                     'beats, unstressed off them (0: off; default: the workdir\'s config)')
  flags.DEFINE_float('phrase_rest_bias', None, 'lyric-melody prior: a rest before each phrase '
                     '(0: off; default: the workdir\'s config)')
  flags.DEFINE_float('stress_duration_bias', None, 'lyric-melody prior: a note ends on a strong '
                     'beat before a stressed syllable (0: off; default: the workdir\'s config)')
  flags.DEFINE_float('phrase_final_long_bias', None, 'lyric-melody prior: a phrase-final '
                     'syllable sung on a long note (0: off; default: the workdir\'s config)')
  flags.DEFINE_string('duration_offsets', None, "'ticks:offset,...' added to those durations' "
                      "logits ('': off; default: the workdir's config)")
  flags.DEFINE_float('legato_bias', None, 'melody prior: inside a phrase, each note starts where '
                     'the previous one ends (0: off; default: the workdir\'s config)')
  flags.DEFINE_string('formats', ','.join(FORMATS), 'files to write per song, a comma-separated '
                      f'subset of {",".join(FORMATS)} (at least one of mid, musicxml)')
  flags.DEFINE_boolean('plot', None, 'add (--plot) or drop (--noplot) png in --formats')
  flags.DEFINE_string('language', 'en', 'language of text lyrics (a pyphen dictionary: en, de, '
                      'fr, es, ...)')
  flags.DEFINE_string('title', None, 'title written into the scores (default: from the lyrics)')
  flags.DEFINE_string('song', None, 'infill this song (MIDI/MusicXML with lyrics): keep its '
                      'notes but those --regenerate names (inference/infill_run.py)')
  flags.DEFINE_string('regenerate', None, 'with --song: phrase:3, phrases:2-4, syllables:10-17, '
                      'bars:5-8, several joined by ","')
  flags.DEFINE_boolean('allow_shift', False, 'with --song: a span may run past the next kept '
                       'note; the rest of the song then moves by whole bars')


def main(argv):
  del argv
  if not FLAGS.workdir or not FLAGS.output:
    raise ValueError('--workdir and --output are required')
  if FLAGS.song or FLAGS.regenerate or FLAGS.allow_shift:  # infilling (inference/infill_run.py)
    from songglm_jax.inference import infill_run  # pylint: disable=import-outside-toplevel
    infill_run.check_flags(FLAGS.song, FLAGS.regenerate, {
        '--lyrics': FLAGS.lyrics, '--lyrics_file': FLAGS.lyrics_file,
        '--lyrics_from': FLAGS.lyrics_from, '--title': FLAGS.title})
    infill_run.run(FLAGS.workdir, FLAGS.song, FLAGS.regenerate, FLAGS.output, stage=FLAGS.stage,
                   checkpoint=FLAGS.checkpoint,
                   plot='png' in parse_formats(FLAGS.formats, FLAGS.plot),
                   allow_shift=FLAGS.allow_shift,
                   num_samples=FLAGS.num_samples,
                   seed=FLAGS.seed, constrained=FLAGS.constrained,
                   temperature=FLAGS.temperature, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
                   **_priors())
    return
  generate_run.run(FLAGS.workdir, FLAGS.output, stage=FLAGS.stage, checkpoint=FLAGS.checkpoint,
                   text=FLAGS.lyrics, text_file=FLAGS.lyrics_file, songs_from=FLAGS.lyrics_from,
                   formats=FLAGS.formats, plot=FLAGS.plot, num_samples=FLAGS.num_samples,
                   seed=FLAGS.seed, constrained=FLAGS.constrained,
                   temperature=FLAGS.temperature, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
                   language=FLAGS.language, title=FLAGS.title, **_priors())


def _priors() -> dict:
  from songglm_jax.inference.generation_rules import PRIORS  # pylint: disable=import-outside-toplevel
  return {k: getattr(FLAGS, k) for k in PRIORS + ('duration_offsets',)}


if __name__ == '__main__':
  from songglm_jax import cli
  define_flags()
  cli.run(main)
