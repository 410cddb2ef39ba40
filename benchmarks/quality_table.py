r"""Collect quality_bench results into one markdown table.

    .venv/bin/python benchmarks/quality_table.py W1 W2/quality/TAG ... [--sort=OA_PCH]

Each argument is a workdir (every ``W/quality/*/bench.json`` in it) or one run folder
(``W/quality/TAG``). Prints a markdown table, one row per run: the workdir and tag, the model
options it trained with and the sampling it generated with (from the run's bench.json), every metric as mean ± std over its sample sets, invalid songs, and the training
and generation wall times; then the random-human calibration row of the first workdir and the
paper's row; with ``--json`` also a last line holding one JSON object with the rows.
"""

import argparse
import json
import pathlib
import sys

import common  # noqa: F401  (sets sys.path)

COLS = (('OA_A', 'OA(A)'), ('OA_PCH', 'OA(PCH)'), ('OA_IOI', 'OA(IOI)'), ('OA_DD', 'OA(DD)'),
        ('MD', 'MD'), ('AA', 'AA'), ('SBA_generated', 'SBA'), ('SPA_generated', 'SPA'),
        ('PEA_generated', 'PEA'))


def _runs(paths):
  out = []
  for p in map(pathlib.Path, paths):
    if (p / 'bench.json').is_file():
      out.append(p / 'bench.json')
    else:
      out.extend(sorted(p.glob('quality/*/bench.json')))
  return out


def _cell(m, key):
  v = m.get(key)
  if v is None:
    return '-'
  s = m.get(f'{key}_std')
  digits = 3 if key == 'MD' else 2
  return f'{v:.{digits}f}' + (f' ± {s:.{digits}f}' if s is not None else '')


SHORT = {'bar': 'bar', 'position': 'pos', 'duration': 'dur', 'pitch': 'pitch', 'word_id': 'word'}


def compact(overrides: dict) -> str:
  """Overrides in few words: per-field sampling values grouped ('T 1.0 (bar 0.5, pos 0.5); k 0'
  when all five fields are set, else each one named), generate./model. prefixes dropped."""
  groups, rest = {}, []
  for k, v in sorted(overrides.items()):
    parts = k.split('.')
    if len(parts) == 3 and parts[0] == 'generate' and parts[1] in ('temperature', 'top_k',
                                                                   'top_p'):
      groups.setdefault(parts[1], {})[parts[2]] = v
    else:
      rest.append(f'{k.split(".", 1)[-1] if parts[0] in ("generate", "model") else k}={v}')
  out = []
  for name, letter in (('temperature', 'T'), ('top_k', 'k'), ('top_p', 'p')):
    vals = groups.get(name)
    if not vals:
      continue
    common_value = max(set(vals.values()), key=list(vals.values()).count)
    odd = [f'{SHORT.get(f, f)} {v}' for f, v in sorted(vals.items()) if v != common_value]
    if len(vals) == len(SHORT):  # every field set: the usual value, then the others
      out.append(f'{letter} {common_value}' + (f' ({", ".join(odd)})' if odd else ''))
    else:
      out.append(f'{letter} ' + ', '.join(f'{SHORT.get(f, f)} {v}' for f, v in sorted(vals.items())))
  return '; '.join(out + rest)


# the model and schedule of songglm_sample's first runs (until 2026-11-26; most rows of
# docs/quality.md): other sizes and step counts -- its later default too -- are named in the
# model cell, so the cells of the old runs do not change with the config
SAMPLE_SIZE = {'d_model': 256, 'num_layers': 4, 'd_ff': 512}
SAMPLE_STEPS = {'pretrain': 600, 'finetune': 250}


def model_name(m: dict, steps: dict | None = None, dropout: dict | None = None) -> str:
  """The model options a run trained with, in few words; its size ('d192 x 3, FF 384') and
  step counts ('steps 1120 + 466') when they are not SAMPLE_SIZE / SAMPLE_STEPS, and a stage's
  dropout ('fine-tune dropout 0.3') when it is not the model's."""
  if not m:
    return '-'
  parts = ['chain' if m.get('field_conditioning') == 'chain' else 'independent']
  parts += [name for key, name in (('phrase_position', 'phrase'), ('note_syllable_stress',
                                                                   'stress')) if m.get(key)]
  out = ' + '.join(parts)
  if any(m.get(k, v) != v for k, v in SAMPLE_SIZE.items()):
    out += f'; d{m.get("d_model")} x {m.get("num_layers")}, FF {m.get("d_ff")}'
  if steps and any(steps.get(k, v) != v for k, v in SAMPLE_STEPS.items()):
    out += f'; steps {steps.get("pretrain", 0)} + {steps.get("finetune", 0)}'
  for stage, name in (('pretrain', 'pre-train'), ('finetune', 'fine-tune')):
    rate = (dropout or {}).get(stage, m.get('dropout_rate'))
    if rate != m.get('dropout_rate'):
      out += f'; {name} dropout {rate:g}'
  return out


def sampling(b: dict) -> str:
  """The sampling a run generated with (from its generate_options), in few words; top-p only
  when some field's is below 1 ('p 1.0 (pitch 0.95)')."""
  g = b.get('generate_options') or {}
  kinds = ('temperature', 'top_k') + (
      ('top_p',) if any(v < 1 for v in (g.get('top_p') or {}).values()) else ())
  flat = {f'generate.{k}.{f}': v for k in kinds for f, v in (g.get(k) or {}).items()}
  out = compact(flat)
  if g.get('max_bar_advance', 2) != 2:
    out += f'; max_bar_advance {g["max_bar_advance"]}'
  for key, name in (('stress_beat_bias', 'stress prior'), ('phrase_rest_bias', 'rest prior'),
                    ('stress_duration_bias', 'duration prior'),
                    ('phrase_final_long_bias', 'final-long prior'),
                    ('legato_bias', 'legato prior')):
    if g.get(key, 0):
      out += f'; {name} {g[key]:g}'
  if g.get('duration_offsets'):
    out += f'; duration offsets {g["duration_offsets"]}'
  ckpt = b.get('checkpoint') or {}
  kind = ckpt.get('kind')
  if kind == 'step':
    out += f'; checkpoint of step {ckpt.get("step")}'
  elif kind and kind != 'best':
    out += f'; {kind} checkpoint'
  return out or '-'


def _minutes(b, keys):
  vals = [b['seconds'].get(k) for k in keys]
  return f'{sum(v for v in vals if v) / 60:.1f}' if any(vals) else '-'


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('paths', nargs='+')
  ap.add_argument('--sort', default=None, help='metric to sort rows by (descending)')
  ap.add_argument('--json', action='store_true', help='also print the rows as a JSON last line')
  args = ap.parse_args()
  files = _runs(args.paths)
  if not files:
    print(f'quality_table: no bench.json under {args.paths}', file=sys.stderr)
    sys.exit(1)
  benches = [json.loads(f.read_text()) for f in files]
  if args.sort:
    benches.sort(key=lambda b: -(b['metrics'].get(args.sort) or 0))
  head = ['run', 'model', 'sampling'] + [c for _, c in COLS] + ['invalid', 'train min', 'gen+eval min']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  rows = []
  for b in benches:
    name = f'{pathlib.Path(b["workdir"]).name}/{b["tag"]}'
    model = model_name(b.get('model') or {}, b.get('train_steps'), b.get('train_dropout'))
    cells = [name, model, sampling(b)] + [_cell(b['metrics'], k) for k, _ in COLS] + [
        str(b['num_invalid']), _minutes(b, ('prepare', 'pretrain', 'finetune')),
        _minutes(b, ('generate_evaluate',))]
    lines.append('| ' + ' | '.join(cells) + ' |')
    rows.append({'run': name, 'overrides': b.get('config_overrides'), 'metrics': b['metrics'],
                 'num_invalid': b['num_invalid'], 'seconds': b['seconds']})
  calib = next((b['calibration_random_human'] for b in benches
                if b.get('calibration_random_human')), None)
  if calib:
    lines.append('| random human songs | - | - | ' + ' | '.join(_cell(calib, k) for k, _ in COLS)
                 + ' | - | - | - |')
  paper = benches[0]['paper']
  lines.append('| SongGLM (paper) | - | - | ' + ' | '.join(
      f'{paper[k]:.2f}' if k in paper else '-' for k, _ in COLS) + ' | - | - | - |')
  print('\n'.join(lines))
  if args.json:
    print(json.dumps({'rows': rows, 'random_human': calib, 'paper': paper}))


if __name__ == '__main__':
  main()
