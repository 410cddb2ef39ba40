"""The ablation table of ``ablation_bench.py``: finished runs -> mean +- std over seeds, the
paper's rows beside ours, differences beyond 2 standard errors, the markdown of docs/ablations.md.

Pure functions over the runs' ``ablation.json`` records; the bench imports them (and
``--render_only`` rewrites the table without running anything).
"""

from __future__ import annotations

import json
import math
import pathlib

# (row, the paper's name, what changes; configs/ablations.py holds the changes)
ROW_INFO = (
    ('full', 'SongGLM_small', 'the base config'),
    ('scratch', 'Scratch (no pre-training)', 'no pretrain stage; fine-tuning from random weights'),
    ('clm', 'CLM (left-to-right pre-training)',
     'pre-training = the song-level task only with song_rate 1.0: the whole melody as one '
     'left-to-right span given the lyrics'),
    ('no_alignment', '− 2D alignment',
     'no word/phrase id embeddings, no word_id head; decoding sings one note per syllable in '
     'order and stops after the last'),
    ('random_spans', 'Random spans', 'no n-gram lexicon: the n-gram tasks mask random '
     '(T5-style, mean 5 notes) spans'),
    ('ngram_only', 'Harmonized n-gram only', 'pre-training tasks ngram_smr + ngram_srr only'),
    ('no_smr', '− SMR', 'n-gram spans from the SRR lexicon only (weight moved to ngram_srr)'),
    ('no_srr', '− SRR', 'n-gram spans from the SMR lexicon only (weight moved to ngram_smr)'),
    ('phrase_only', 'Phrase only', 'pre-training task phrase only'),
    ('long_span_only', 'Long span only', 'pre-training task song (song_rate 0.5) only'),
    ('no_2d_positions', '(ours) 1D positions', 'GLM positions without the block position '
     '(intra-span) dimension'),
)
ROWS = tuple(r for r, _, _ in ROW_INFO)
# SongGLM (arXiv 2412.18107), ablation table (SongGLM_small; OA in %, MD in semitones).
_P = ('OA_A', 'OA_PCH', 'OA_DD', 'OA_IOI', 'MD')
PAPER = {row: dict(zip(_P, v)) for row, v in (
    ('full', (94.32, 96.48, 95.34, 93.44, 4.17)), ('scratch', (84.15, 88.61, 86.97, 82.91, 6.29)),
    ('clm', (90.20, 91.90, 90.69, 88.09, 4.95)),
    ('no_alignment', (83.57, 92.12, 87.40, 84.61, 5.67)),
    ('random_spans', (93.87, 92.84, 92.06, 89.07, 4.68)),
    ('ngram_only', (93.74, 94.11, 93.65, 91.88, 4.40)),
    ('no_smr', (93.67, 91.77, 92.98, 91.13, 4.79)), ('no_srr', (93.54, 93.93, 90.81, 89.04, 4.86)),
    ('phrase_only', (92.95, 94.09, 93.71, 91.72, 4.66)),
    ('long_span_only', (93.54, 94.24, 93.67, 91.68, 4.60)))}
COLS = (('OA_A', 'OA(A)'), ('OA_PCH', 'OA(PCH)'), ('OA_DD', 'OA(DD)'), ('OA_IOI', 'OA(IOI)'),
        ('MD', 'MD'), ('AA', 'AA'), ('SBA_generated', 'SBA'), ('SPA_generated', 'SPA'),
        ('PEA_generated', 'PEA'))
LOWER_IS_BETTER = ('MD',)


def collect(root: pathlib.Path, settings: dict) -> dict[str, list[dict]]:
  """Finished runs ``root/<row>/seed<S>/ablation.json`` made with ``settings``, per row."""
  out = {}
  for row in ROWS:
    recs = []
    for path in sorted((root / row).glob('seed*/ablation.json')):
      rec = json.loads(path.read_text())
      if rec.get('settings') == settings:
        recs.append(rec)
    out[row] = sorted(recs, key=lambda r: r['seed'])
  return out


def stats(recs: list[dict], key: str) -> tuple[float | None, float | None, int]:
  """(mean, sample std (None below 2 values), n) of a metric over seeds."""
  vals = [r['metrics'].get(key) for r in recs]
  vals = [v for v in vals if v is not None]
  if not vals:
    return None, None, 0
  mean = sum(vals) / len(vals)
  std = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1
         else None)
  return mean, std, len(vals)


def differs(a: tuple, b: tuple) -> bool | None:
  """Whether means a and b ((mean, std, n) each) differ by more than 2 standard errors of the
  difference; None without 2 seeds on both sides."""
  (ma, sa, na), (mb, sb, nb) = a, b
  if ma is None or mb is None or sa is None or sb is None:
    return None
  se = math.sqrt(sa ** 2 / na + sb ** 2 / nb)
  return abs(ma - mb) > 2 * se


def _num(key: str, v: float) -> str:
  return f'{v:.3f}' if key == 'MD' else f'{v:.2f}'


def _cell(key: str, s: tuple, mark: bool | None) -> str:
  mean, std, n = s
  if mean is None:
    return '-'
  text = _num(key, mean) + (f' ± {_num(key, std)}' if std is not None else '')
  return text + (' *' if mark else '')


def shown(row: str, runs: dict) -> str:
  """Which of the paper's differences from the full model ours reproduces (same sign, beyond 2
  standard errors), and which go significantly the other way."""
  if row == 'full' or not runs[row]:
    return ''
  if row not in PAPER:
    return 'not in the paper'
  same, opposite, judged = [], [], 0
  for key, label in COLS[:5]:
    ours, full = stats(runs[row], key), stats(runs['full'], key)
    sig = differs(ours, full)
    if sig is None:
      continue
    judged += 1
    if sig:
      (same if (ours[0] - full[0]) * (PAPER[row][key] - PAPER['full'][key]) > 0
       else opposite).append(label)
  if not judged:
    return 'needs 2 seeds of this row and of full'
  text = f'{len(same)}/5' + (f' ({", ".join(same)})' if same else '')
  return text + (f'; opposite: {", ".join(opposite)}' if opposite else '')


def table(runs: dict) -> str:
  """The markdown table: per row our mean ± std over seeds and the paper's values."""
  head = ['row', 'source'] + [label for _, label in COLS] + ['seeds', "paper's differences seen"]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  full = {key: stats(runs['full'], key) for key, _ in COLS}
  for row, paper_name, _ in ROW_INFO:
    recs = runs[row]
    if recs:
      cells = [_cell(key, stats(recs, key),
                     differs(stats(recs, key), full[key]) if row != 'full' else None)
               for key, _ in COLS]
      seeds = ','.join(str(r['seed']) for r in recs)
    else:
      cells, seeds = ['not run'] + [''] * (len(COLS) - 1), '-'
    lines.append(f'| {row} | ours | ' + ' | '.join(cells) + f' | {seeds} | {shown(row, runs)} |')
    if row in PAPER:
      paper = [f'{PAPER[row][k]:.2f}' if k in PAPER[row] else '' for k, _ in COLS]
      lines.append(f'| | paper: {paper_name} | ' + ' | '.join(paper) + ' | | |')
  return '\n'.join(lines)


def summary(runs: dict) -> dict:
  """Per row: seeds run and mean/std/n of every metric (the JSON result)."""
  return {row: {'seeds': [r['seed'] for r in recs],
                'metrics': {k: dict(zip(('mean', 'std', 'n'), stats(recs, k))) for k, _ in COLS}}
          if recs else {'seeds': []} for row, recs in runs.items()}


def render(runs: dict, settings: dict, command: str, seeds: list[int]) -> str:
  """docs/ablations.md: status, rows, method, table, runs."""
  done = sum(len(r) for r in runs.values())
  total = len(ROWS) * len(seeds)
  all_recs = [r for recs in runs.values() for r in recs]
  status = ('**Status: not yet run.** No numbers of ours below; only the paper\'s rows. The '
            'table is filled by running the command below (about 4 hours on a 2-core CPU).'
            if not done else f'**Status: {done} of {total} runs finished** (rows x seeds '
            f'{",".join(map(str, seeds))}); rows without a run say "not run".')
  p, f = settings['pretrain_steps'], settings['finetune_steps']
  first = all_recs[0] if all_recs else None
  batch = (f'{first["batch"]["pretrain"]["batch_size"]} x {first["batch"]["pretrain"]["seq_len"]}'
           ' tokens' if first else '8 x 1024 tokens')
  out = [
      '# Ablations: the paper\'s ablation table on the public sample', '', status, '',
      'Written by `benchmarks/ablation_bench.py` (table code: `benchmarks/ablation_table.py`) from '
      'the finished runs; do not edit by hand.', '',
      '## Rows', '', '| row | the paper\'s row | change (`configs/ablations.py`) |',
      '| --- | --- | --- |']
  out += [f'| `{row}` | {name} | {what} |' for row, name, what in ROW_INFO]
  out += [
      '', '## Method', '',
      f'- Base: `configs/{settings["base"]}.py`' + (
          ' (data `../shared/data/songglm_sample`: 1000 pre-training, 900 fine-tuning songs; '
          'the model size as below).' if settings['base'] == 'songglm_sample' else
          ' (a smoke run, not the table).'),
      f'- Budget per run, the same for every row: {p} pre-training + {f} fine-tuning steps of '
      f'{batch} (`scratch`: the {f} fine-tuning steps only) on '
      + ('the small model (d_model 128, 2 layers, 4 heads, FF 512; `--model=small`), about '
         '2.7x cheaper per token than the sample config\'s, so that the sample config\'s full '
         'step budget fits ~20 min a run on a 2-core CPU.'
         if settings.get('model', 'sample') == 'small' else
         'the base config\'s model.')
      + ' Some of the paper\'s differences may not show at this budget; the last column says '
      'which do.',
      '- Same data, seed list and generation settings for every row: `config.generate` of the '
      'base (config.melody_quality: bar and position at temperature 0.5, the other fields at 1.0, '
      'no top-k, constrained decoding, without the lyric-melody priors of decoding) and the '
      'paper\'s model in every row (configs/ablations.py), '
      'the checkpoint with the '
      'lowest held-out loss (evaluated at the end of each stage at this budget).',
      f'- Evaluation: the lyrics of every validation song of the fine-tuning set sung '
      f'{settings["num_samples"]} times (sample sets), compared with the songs by the evaluation '
      'binary (`songglm_jax.evaluate`): OA(A/PCH/DD/IOI) and MD as in the paper, and the '
      'lyric-aware AA (alignment), SBA (stress-beat), SPA (stress-pitch), PEA (phrase-end).',
      '- A cell is the mean ± std over training seeds of each seed\'s mean over its sample sets. '
      '`*`: differs from `full` by more than 2 standard errors (SE of the difference from the '
      'seeds\' stds; needs >= 2 seeds on both sides). "paper\'s differences seen": of the '
      'paper\'s five metrics, where ours differs from `full` beyond 2 SE in the paper\'s '
      'direction (and where it goes significantly the other way).',
      '- `clm` in this GLM framework: the song-level task only with song_rate 1.0, i.e. every '
      'pre-training example is the whole melody as one left-to-right span given the lyrics.',
      '- `no_alignment` (− 2D alignment): the model has no word/phrase ids at all, so it cannot '
      'say which syllable a note belongs to; the decoder assigns one note per syllable in order '
      'and stops after the last syllable (`model/sampling.py`, `next_syllable`), so the row '
      'measures the encoding with the simplest assignment rule, not another decoder.',
      '', '## Table', '', table(runs), '', '## Runs', '',
      f'- Command (reproduces the table; `--rows=ROW` any one row): `{command}`']
  if all_recs:
    secs = [r['seconds_total'] for r in all_recs]
    shared = sum(r['seconds_prepare_shared'] or 0 for r in all_recs)
    commits = sorted({r['commit'] for r in all_recs})
    out += [f'- Wall time: {sum(secs) / 3600:.2f} h over {len(secs)} runs '
            f'({min(secs) / 60:.1f}-{max(secs) / 60:.1f} min a run) + {shared / 60:.1f} min '
            'preparing the shared data.',
            f'- Commit(s) that produced the runs: {", ".join(commits)}.',
            f'- Validation songs: {first["num_songs"]}, sample sets: {first["num_sample_sets"]}; '
            f'invalid samples: {sum(r["num_invalid"] for r in all_recs)}.']
    ref = {k: first['metrics'].get(f'{k}_reference') for k in ('SBA', 'SPA', 'PEA')}
    out.append('- The human songs\' own values (reference): ' + ', '.join(
        f'{k} {v:.2f}' for k, v in ref.items() if v is not None) + '.')
  else:
    out.append('- Wall time, commit: not yet run.')
  return '\n'.join(out) + '\n'
