r"""Inspect a fitted harmonized n-gram lexicon: what melody/stress patterns it learned.

    python -m songglm_jax.lexicon --lexicon=OUT/lexicon.json [--top=20] [--kind=smr,srr] [--n=0]

For each kind (SMR: melodic peaks, SRR: rhythm skeleton) it prints the coverage of the fitting
corpus, the per-length table (windows counted, distinct n-grams, selected, tied scores), how many
of the corpus's spans would differ under the public code's collapsed score, and the ``--top``
best n-grams (all lengths >= 2 by score, or one length with ``--n``) with score, count, the most
frequent stress patterns sung on them, and two example renderings (syllables, stress, pitches).
A bad path or file prints one error line on stderr and exits with status 1.
"""

from __future__ import annotations

from typing import Sequence

from absl import flags

from songglm_jax import cli
from songglm_jax.data import lexicon as lexicon_lib
from songglm_jax.music import skeleton

_LEXICON = flags.DEFINE_string('lexicon', None,
                               'lexicon JSON file (prepare writes OUT/lexicon.json)')
_TOP = flags.DEFINE_integer('top', 20, 'n-grams shown per kind', lower_bound=0)
_KIND = flags.DEFINE_list('kind', list(skeleton.KINDS), 'kinds to show: smr, srr')
_N = flags.DEFINE_integer('n', 0, 'show only n-grams of this length (0: every length >= 2)',
                          lower_bound=0)
flags.mark_flag_as_required('lexicon')

_TITLES = {'smr': 'SMR: syllable stress <-> melodic peaks',
           'srr': 'SRR: syllable stress <-> rhythm skeleton'}


def _percent(x: float) -> str:
  return f'{100 * x:.1f}%'


def best_ngrams(kl: lexicon_lib.KindLexicon, top: int, n: int = 0
                ) -> list[lexicon_lib.NGram]:
  """The ``top`` stored n-grams by score (ties: count, then length and groups), of length ``n``
  (0: every length >= 2; unigrams all score 0 by definition)."""
  pool = [g for g in kl.ngrams if (g.n == n if n else g.n >= 2)]
  pool.sort(key=lambda g: (-g.s, -g.count, g.n, g.groups))
  return pool[:top]


def render_kind(lex: lexicon_lib.Lexicon, kind: str, top: int, n: int = 0) -> list[str]:
  """The report of one kind as lines of text."""
  kl = lex.kinds[kind]
  st = kl.stats
  out = [f'== {_TITLES.get(kind, kind)} ==']
  if 'coverage' in st:
    out.append(f'coverage of the fitting corpus: {_percent(st["coverage"])} of notes inside '
               f'spans; {st.get("spans_per_song", 0):.1f} spans per song; '
               f'{st.get("units", "?")} distinct syllable groups')
  cmp = st.get('score_comparison')
  if cmp:
    out.append(f'spans that differ under the {cmp["other_score"]} score: {cmp["differ"]} '
               f'({cmp["only_this"]} of {cmp["spans"]} spans lost, {cmp["only_other"]} of '
               f'{cmp["spans_other"]} gained) in {cmp["songs_differ"]} songs; selected n-grams '
               f'that differ: {cmp["selected_ngrams_differ"]}')
  out.append('   n   windows  distinct  selected  tied scores')
  for row in kl.lengths:
    out.append(f'  {row.get("n", "?"):>2}  {row.get("windows", "?"):>8}  '
               f'{row.get("distinct", "?"):>8}  {row.get("selected", "?"):>8}  '
               f'{row.get("tied_scores", "?"):>11}')
  best = best_ngrams(kl, top, n)
  which = f'of length {n}' if n else 'of length >= 2'
  out.append(f'best {len(best)} n-grams {which} (of {len(kl.ngrams)} stored), by score:')
  for i, g in enumerate(best, start=1):
    mark = 'selected' if g.selected else 'not selected'
    out.append(f'{i:>4}. {kl.features_text(g)}')
    out.append(f'      s={g.s:.3f} t={g.t:.3f} c={g.c:.3f} lyric_t={g.lyric_t:.3f} '
               f'count={g.count} rank={g.rank:.4f} ({mark})')
    if g.lyrics:
      out.append('      stress sung on it: ' + ', '.join(f"'{text}' x{c}" for text, c in g.lyrics))
    for e in g.examples:
      out.append(f'      e.g. "{e.syllables}" ({e.stress}) on {e.pitches}   [song {e.song}]')
  return out


def render(lex: lexicon_lib.Lexicon, path: str, kinds: Sequence[str], top: int,
           n: int = 0) -> str:
  p, c = lex.params, lex.corpus
  lines = [f'lexicon {path} (format version {lexicon_lib.VERSION})',
           f'fitted on {c.get("songs", "?")} songs, {c.get("syllables", "?")} syllables, '
           f'{c.get("notes", "?")} notes; syllables with unknown stress: '
           f'{c.get("unknown_stress_syllables", "?")}',
           f'params: max_n={p.max_n} span lengths {p.min_span_n}..{p.max_span_n} '
           f'max_rank={p.max_rank} '
           f'lyric_mean={p.lyric_mean} unknown_stress={p.unknown_stress} score={p.score} '
           f'stress_mode={p.stress_mode}', '']
  for kind in kinds:
    lines += render_kind(lex, kind, top, n) + ['']
  return '\n'.join(lines)


def main(argv: Sequence[str]) -> None:
  del argv
  kinds = [k.strip() for k in _KIND.value if k.strip()]
  bad = [k for k in kinds if k not in skeleton.KINDS]
  if bad or not kinds:
    raise ValueError(f'--kind: expected a list of {", ".join(skeleton.KINDS)}, got {_KIND.value}')
  lex = lexicon_lib.load_lexicon(_LEXICON.value)
  missing = [k for k in kinds if k not in lex.kinds]
  if missing:
    raise ValueError(f'{_LEXICON.value}: the lexicon has no {", ".join(missing)} kind')
  print(render(lex, _LEXICON.value, kinds, _TOP.value, _N.value))


if __name__ == '__main__':
  cli.run(main)
