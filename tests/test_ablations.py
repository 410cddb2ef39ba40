"""configs/ablations.py: every variant builds a model and a batch, each differing from the base in
the intended way; benchmarks/ablation_table.py's statistics."""

from __future__ import annotations

import functools
import pathlib
import sys
import tempfile

import jax
import numpy as np
import pytest
from flax import nnx

from configs import ablations
from songglm_jax import config as config_lib
from songglm_jax.job import stages
from songglm_jax.data import masking, pipeline, records
from songglm_jax.data import tokenizer as tk
from songglm_jax.model import ModelConfig
from songglm_jax.model.glm import GLM
from songglm_jax.train import loop
from tests.conftest import REPO
from tests.train import helpers

sys.path.insert(0, str(REPO / 'benchmarks'))
import ablation_table  # noqa: E402  pylint: disable=wrong-import-position

ALL_TASKS = set(masking.TASKS)
TASKS = {'full': ALL_TASKS, 'no_2d_positions': ALL_TASKS, 'random_spans': ALL_TASKS,
         'no_alignment': ALL_TASKS, 'scratch': ALL_TASKS,
         'ngram_only': {'ngram_smr', 'ngram_srr'}, 'single_objective': {'ngram_smr', 'ngram_srr'},
         'no_smr': {'ngram_srr', 'phrase', 'song'}, 'no_srr': {'ngram_smr', 'phrase', 'song'},
         'phrase_only': {'phrase'}, 'long_span_only': {'song'}, 'clm': {'song'}}


def variant(name: str):
  return helpers.shrink(ablations.get_config(f'{name},default'))


@functools.lru_cache(maxsize=None)
def data_dir(fit_lexicon: bool) -> pathlib.Path:
  """The tiny prepared corpus (with the lexicon), or the same songs prepared without it."""
  root = helpers.prepared_corpus()
  if fit_lexicon:
    return root / 'data' / 'pretrain'
  out = pathlib.Path(tempfile.mkdtemp(prefix='songglm_random_spans_'))
  config = variant('random_spans')
  config.data.pretrain_source = str(root / 'songs')
  stages.run_prepare(config, out)
  return out / 'data' / 'pretrain'


def train_records(d: pathlib.Path) -> list:
  src = records.open_split(d, 'train')
  return [src[i] for i in range(len(src))]


def build(name: str):
  """(config, model, one training batch of its first training stage, data folder)."""
  c = variant(name)
  d = data_dir(bool(c.data.fit_lexicon))
  sizes = tk.Tokenizer(tk.Vocab.from_json((d / 'vocab.json').read_text())).field_sizes
  model = GLM(ModelConfig.from_config(c.model), sizes, rngs=nnx.Rngs(0))
  use = 'pretrain' if 'pretrain' in config_lib.parse_stages(c, config_lib.STAGE_ORDER) else (
      'finetune')
  ds = pipeline.make_pipeline(d, 'train', loop.pipeline_options(c, 8), use=use, train=True,
                              process_index=0, process_count=1)
  return c, model, next(iter(ds)), d


def masks(name: str, n: int = 64):
  """(masked notes per example, tasks, record batch) of ``n`` examples drawn as the variant's
  pre-training draws them."""
  c = variant(name)
  recs = (train_records(data_dir(bool(c.data.fit_lexicon))) * n)[:n]
  batch = masking.RecordBatch.from_records(recs, masking.example_keys(0, 0, np.arange(n)))
  masked, tasks = masking.mask_notes(batch, masking.MaskingOptions.from_config(c.pipeline))
  cut = batch.note_start
  return [masked[cut[i]:cut[i + 1]] for i in range(n)], tasks, batch


@pytest.mark.parametrize('name', sorted(ablations.VARIANTS))
def test_every_variant_builds_a_model_and_a_batch(name):
  c, model, batch, _ = build(name)
  logits = jax.jit(lambda x: model(x))(batch)
  assert set(logits) == set(ModelConfig.from_config(c.model).target_fields)
  assert all(np.isfinite(np.asarray(v)).all() for v in logits.values())


def test_unknown_variant_is_refused():
  with pytest.raises(ValueError, match='VARIANT'):
    ablations.get_config('no_such_row,default')


def test_no_alignment_has_no_alignment_tables_no_word_head_and_ignores_the_ids():
  _, base, batch, _ = build('full')
  c, model, _, _ = build('no_alignment')
  assert base.embed.word is not None and base.embed.phrase is not None
  assert model.embed.word is None and model.embed.phrase is None
  assert 'word_id' in base.heads and 'word_id' not in model.heads
  assert not ModelConfig.from_config(c.model).word_head
  other = dict(batch, word_ids=np.roll(batch['word_ids'], 1, axis=1),
               phrase_ids=np.roll(batch['phrase_ids'], 1, axis=1))
  np.testing.assert_array_equal(model(batch)['pitch'], model(other)['pitch'])
  assert not np.array_equal(base(batch)['pitch'], base(other)['pitch'])


def test_no_2d_positions_has_no_block_position_table():
  assert build('full')[1].embed.block_position is not None
  assert build('no_2d_positions')[1].embed.block_position is None


def test_scratch_has_no_pretrain_stage():
  c = variant('scratch')
  assert 'pretrain' not in config_lib.parse_stages(c, config_lib.STAGE_ORDER)
  assert 'finetune' in config_lib.parse_stages(c, config_lib.STAGE_ORDER)
  assert c.finetune.init_from == 'none' and variant('full').finetune.init_from == ''


def test_random_spans_never_uses_lexicon_spans():
  lex, rand = data_dir(True), data_dir(False)
  assert (lex / 'lexicon.json').is_file() and not (rand / 'lexicon.json').exists()
  assert any(len(r.spans_smr) + len(r.spans_srr) for r in train_records(lex))
  assert all(len(r.spans_smr) + len(r.spans_srr) == 0 for r in train_records(rand))
  m, tasks, batch = masks('random_spans')
  word = [i for i, t in enumerate(tasks) if masking.TASKS[t].startswith('ngram')]
  assert word and all(m[i].any() for i in word)  # random spans stand in for the n-grams
  assert all(len(batch.spans[x]) == 0 for x in ('smr', 'srr'))


@pytest.mark.parametrize('name', sorted(TASKS))
def test_each_variant_draws_exactly_its_tasks(name):
  opts = masking.MaskingOptions.from_config(variant(name).pipeline)
  drawn = masking.choose_tasks(masking.example_keys(0, 0, np.arange(4000)), opts.task_weights)
  assert {masking.TASKS[t] for t in drawn} == TASKS[name]
  if name in ('no_smr', 'no_srr'):  # the word level keeps its half of the examples
    word = np.isin(drawn, [0, 1]).mean()
    assert abs(word - 0.5) < 0.03


def test_phrase_only_masks_whole_phrases():
  m, tasks, batch = masks('phrase_only')
  assert {masking.TASKS[t] for t in tasks} == {'phrase'}
  phrase = batch.tokens[batch.note_rows(), tk.F.phrase_id]
  cut = batch.note_start
  for i, mi in enumerate(m):
    p = phrase[cut[i]:cut[i + 1]]
    assert mi.any()
    for q in np.unique(p):
      assert mi[p == q].all() or not mi[p == q].any()


def _runs(mask: np.ndarray) -> int:
  return int(np.sum(np.diff(np.concatenate([[0], mask.astype(int), [0]])) == 1))


def test_long_span_only_masks_one_span_of_half_the_notes():
  m, tasks, _ = masks('long_span_only')
  assert {masking.TASKS[t] for t in tasks} == {'song'}
  for mi in m:
    assert _runs(mi) == 1 and mi.sum() == max(1, masking.round_half_up(0.5 * len(mi)))


def test_clm_masks_the_whole_melody_as_one_long_span():
  c = variant('clm')
  assert c.pipeline.song_rate == 1.0
  m, tasks, batch = masks('clm', n=16)
  assert {masking.TASKS[t] for t in tasks} == {'song'} and all(mi.all() for mi in m)
  ex = masking.batch_examples(batch, masking.MaskingOptions.from_config(c.pipeline))
  for i in range(len(batch)):
    e = ex.example(i)
    part_a = e['tokens'][e['is_part_a'].astype(bool), tk.F.type]
    part_b = e['tokens'][~e['is_part_a'].astype(bool), tk.F.type]
    assert (part_a == tk.NOTE).sum() == 0 and (part_a == tk.LMASK).sum() == 1
    assert (part_b == tk.NOTE).sum() == batch.num_notes[i]


def _rec(row, seed, oa):
  return {'row': row, 'seed': seed, 'metrics': {'OA_A': oa, 'MD': 4.0}}


def test_table_marks_differences_beyond_two_standard_errors_and_rows_not_run():
  runs = {row: [] for row in ablation_table.ROWS}
  runs['full'] = [_rec('full', 0, 90.0), _rec('full', 1, 91.0)]
  runs['scratch'] = [_rec('scratch', 0, 80.0), _rec('scratch', 1, 81.0)]  # far below: marked
  runs['clm'] = [_rec('clm', 0, 89.5), _rec('clm', 1, 91.5)]  # within noise: not marked
  assert ablation_table.differs(ablation_table.stats(runs['scratch'], 'OA_A'),
                                ablation_table.stats(runs['full'], 'OA_A'))
  assert not ablation_table.differs(ablation_table.stats(runs['clm'], 'OA_A'),
                                    ablation_table.stats(runs['full'], 'OA_A'))
  text = ablation_table.table(runs)
  lines = {ln.split(' | ')[0].strip('| '): ln for ln in text.splitlines() if ' | ours | ' in ln}
  assert '80.50 ± 0.71 *' in lines['scratch'] and '*' not in lines['clm']
  assert 'not run' in lines['no_alignment'] and 'not run' not in lines['full']
  assert '1/5 (OA(A))' in lines['scratch']  # the paper's drop in OA(A) is seen
  assert '94.32' in text  # the paper's row beside ours


def test_every_row_decodes_without_the_lyric_melody_priors():
  """The paper's model and decoding: the beyond-paper priors of configs/songglm_sample.py off."""
  from configs import songglm_sample
  sample = songglm_sample.get_config().generate
  assert sample.stress_beat_bias > 0 and sample.phrase_final_long_bias > 0  # else: empty test
  for name in ('full', 'scratch', 'no_alignment'):
    g = ablations.get_config(f'{name},songglm_sample').generate
    assert (g.stress_beat_bias, g.phrase_rest_bias, g.stress_duration_bias,
            g.phrase_final_long_bias, g.legato_bias) == (0, 0, 0, 0, 0)


def test_every_row_samples_pitch_and_word_as_the_table_was_sung():
  """docs/ablations.md was sung with pitch and word id at T 1.0, no top-p; the sample config's
  are not."""
  from configs import songglm_sample
  g = songglm_sample.get_config().generate
  sung = lambda g: (g.temperature.pitch, g.top_p.pitch, g.temperature.word_id)  # noqa: E731
  assert sung(g) != (1.0, 1.0, 1.0)  # else: an empty test
  for name in ('full', 'clm', 'no_2d_positions'):
    assert sung(ablations.get_config(f'{name},songglm_sample').generate) == (1.0, 1.0, 1.0)


def test_every_row_fine_tunes_with_the_models_dropout_as_the_table_was_trained():
  """docs/ablations.md was fine-tuned with model.dropout_rate; the sample config's
  fine-tuning has its own rate."""
  from configs import songglm_sample
  assert songglm_sample.get_config().finetune.dropout_rate != -1.0  # else: an empty test
  for name in ('full', 'scratch', 'no_alignment'):
    assert ablations.get_config(f'{name},songglm_sample').finetune.dropout_rate == -1.0


@pytest.mark.parametrize('flag, message', [('--rows=nope', "--rows: unknown row(s) ['nope']"),
                                           ('--seeds=x', '--seeds: expected comma-separated')])
def test_the_runner_refuses_bad_rows_and_seeds_in_one_line(flag, message, tmp_path):
  import subprocess
  from tests.conftest import REPO
  r = subprocess.run([sys.executable, 'benchmarks/ablation_bench.py', flag,
                      f'--workdir={tmp_path / "w"}'], cwd=REPO, capture_output=True, text=True,
                     timeout=120)
  assert r.returncode != 0 and r.stdout == ''
  assert r.stderr.strip().splitlines() == [r.stderr.strip()] and message in r.stderr
  assert not (tmp_path / 'w').exists()  # nothing started
