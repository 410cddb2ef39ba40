"""KV-cache decoding and constrained sampling (model/decode.py, model/sampling.py)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from songglm_jax.inference import generation
from songglm_jax.inference import lyrics as lyrics_lib
from songglm_jax.data import masking, records
from songglm_jax.data import tokenizer as tk
from songglm_jax.model import ModelConfig
from songglm_jax.model import decode as decode_lib
from songglm_jax.model import sampling
from songglm_jax.model.random_weights import random_params

TEXTS = ('Twinkle, twinkle, little star. How I wonder what you are!',
         'Row, row, row your boat\ngently down the stream',
         'Merrily, merrily, merrily, merrily, life is but a dream.',
         'Oh',
         'Up above the world so high; like a diamond in the sky')
CFG = ModelConfig(d_model=32, num_layers=2, num_heads=4, d_ff=64, dropout_rate=0.0, max_len=256)
CHAIN_CFG = dataclasses.replace(CFG, field_conditioning='chain', chain_hidden=16)
PHRASE_CFG = dataclasses.replace(CHAIN_CFG, phrase_position=True)
SYLLABLE_CFG = dataclasses.replace(PHRASE_CFG, note_syllable_stress=True)
# The "- 2D alignment" ablation: no word/phrase id tables, no word_id head.
NO_ALIGN_CFG = dataclasses.replace(CFG, use_word_ids=False, use_phrase_ids=False,
                                   target_fields=('bar', 'position', 'duration', 'pitch'))
NO_ALIGN_CHAIN_CFG = dataclasses.replace(NO_ALIGN_CFG, field_conditioning='chain',
                                         chain_hidden=16)
ROWS, LENGTH, MAX_NOTES = 10, 32, 80  # one decoder shape for most tests: one compilation


@functools.lru_cache(maxsize=None)
def tiny(max_bars: int = 24, cfg: ModelConfig = CFG):
  """(tokenizer, graphdef, params) of an untrained tiny GLM; the vocabulary is fitted on the
  syllables of TEXTS (placeholder melodies)."""
  songs = []
  for t in TEXTS:
    lyr = lyrics_lib.from_text(t)
    s = lyr.num_syllables
    songs.append(tk.Song(pitch=np.full(s, 60), onset=np.arange(s) * 480,
                         offset=np.arange(s) * 480 + 240, velocity=np.full(s, 80),
                         note_syllable=np.arange(s), syllables=lyr.syllables,
                         syllable_phrase=lyr.syllable_phrase,
                         syllable_stress=lyr.syllable_stress))
  tok = tk.Tokenizer(tk.fit_vocab(songs, min_count=1, max_bars=max_bars))
  return (tok,) + random_params(cfg, tok.field_sizes)


def _lyrics(texts=TEXTS, **kw):
  return [lyrics_lib.from_text(t, **kw) for t in texts]


def _rows(lyrics, *, pitch=(36, 96), per_syllable=8, advance=2):
  s_max = LENGTH - 4
  col = lambda v: jnp.asarray(np.asarray(v, np.int32))
  b = len(lyrics)
  phr = np.stack([np.pad(x.syllable_phrase, (0, s_max - x.num_syllables), mode='edge')
                  for x in lyrics])
  return sampling.Rows(col([x.num_syllables for x in lyrics]), col(phr),
                       col([x.bar_ticks for x in lyrics]), col([pitch[0]] * b),
                       col([pitch[1]] * b), col([per_syllable] * b), col([advance] * b))


def _decode(lyrics, *, seed=0, max_notes=MAX_NOTES, constrained=True, settings=None,
            cfg=CFG, **rows_kw):
  """Decode ROWS rows (``lyrics`` repeated to fill them), row i with key fold_in(seed, i)."""
  tok, graphdef, params = tiny(cfg=cfg)
  lyrics = (list(lyrics) * ROWS)[:ROWS]
  rows_l = [generation.lyric_rows(x, tok) for x in lyrics]
  prompts = decode_lib.build_prompts(rows_l, LENGTH)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(ROWS))
  out = decode_lib.decode(graphdef, params, prompts, _rows(lyrics, **rows_kw),
                          sampling.make_grids(tok.position_grid, tok.duration_grid),
                          settings or generation.GenerateOptions().settings(), keys,
                          max_notes=max_notes, constrained=constrained, record_logits=True)
  return lyrics, rows_l, jax.device_get(out)


def _notes(out, b):
  return np.asarray(out.notes[b, :int(out.num_notes[b])])


@pytest.mark.parametrize('cfg', [CFG, CHAIN_CFG, PHRASE_CFG, SYLLABLE_CFG, NO_ALIGN_CFG,
                                 NO_ALIGN_CHAIN_CFG],
                         ids=['independent', 'chain', 'chain_phrase_position',
                              'chain_phrase_position_stress', 'no_alignment',
                              'no_alignment_chain'])
def test_cached_decoding_matches_full_forward_pass(cfg):
  """Each step's logits equal the model's full pass over the fine-tuning example of the finished
  song (Part A + SEP + notes): tolerance 1e-5 (float32; measured ~1e-7). With the field chain,
  the full pass conditions on the example's targets -- the notes that were drawn -- so this also
  checks that decoding fed each head the fields drawn before it."""
  tok, graphdef, params = tiny(cfg=cfg)
  lyrics, rows_l, out = _decode(_lyrics(TEXTS[:4]), cfg=cfg)  # prompts padded before SEP
  length = LENGTH + MAX_NOTES
  batch = {}
  for b, lyr in enumerate(lyrics[:4]):
    song = generation.notes_to_song(lyr, rows_l[b], _notes(out, b), tok)
    rec = records.SongRecord(tokens=tok.tokenize(song), time_signatures=song.time_signatures,
                             spans_smr=np.zeros((0, 2), np.int32),
                             spans_srr=np.zeros((0, 2), np.int32))
    ex = masking.make_examples([rec], np.zeros(1, np.uint64), masking.MaskingOptions(),
                               task=masking.FINETUNE).example(0)
    ex['segment_ids'] = np.ones(len(ex['position_ids']), np.int32)
    for k, v in ex.items():  # one padded batch: one compilation of the full pass
      batch.setdefault(k, []).append(np.pad(v, [(0, length - len(v))] + [(0, 0)] * (v.ndim - 1)))
  full = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(
      params, {k: np.stack(v) for k, v in batch.items()})
  for b, lyr in enumerate(lyrics[:4]):
    n, sep = int(out.num_notes[b]), lyr.num_syllables + 3  # Part A: [BOS] syllables [EOS] MASK
    assert n >= lyr.num_syllables
    for f in cfg.target_fields:
      # The stop (step n) is the word id SEP; a chained model's later fields there are drawn
      # from anything and never used, while the training row holds SEP in every field.
      m = n + 1 if cfg.field_conditioning == 'none' or f == 'word_id' else n
      np.testing.assert_allclose(out.logits[f][b, :m], np.asarray(full[f][b, sep:sep + m]),
                                 atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('mask', ['MASK', 'LMASK'])
def test_build_prompts_is_the_finetune_layout(mask):
  tok, _, _ = tiny()
  lyr = _lyrics(TEXTS[:1])[0]
  rows = generation.lyric_rows(lyr, tok)
  s = lyr.num_syllables
  got = decode_lib.build_prompts([rows], s + 8, mask)
  song = tk.Song(pitch=np.full(s, 62), onset=np.arange(s) * 240, offset=np.arange(s) * 240 + 120,
                 velocity=np.full(s, 80), note_syllable=np.arange(s), syllables=lyr.syllables,
                 syllable_phrase=lyr.syllable_phrase, syllable_stress=lyr.syllable_stress)
  rec = records.SongRecord(tokens=tok.tokenize(song), time_signatures=song.time_signatures,
                           spans_smr=np.zeros((0, 2), np.int32),
                           spans_srr=np.zeros((0, 2), np.int32))
  ex = masking.make_examples([rec], np.zeros(1, np.uint64),
                             masking.MaskingOptions(finetune_mask=mask),
                             task=masking.FINETUNE).example(0)
  a = s + 3
  assert ex['tokens'][s + 2, tk.F.type] == getattr(tk, mask)  # the cue, after [BOS] syl [EOS]
  for k in decode_lib.PROMPT_KEYS[:-1]:
    np.testing.assert_array_equal(got[k][0, :a], ex[k][:a], err_msg=k)
    np.testing.assert_array_equal(got[k][0, -1], ex[k][a], err_msg=k)  # SEP
  assert got['segment_ids'][0].tolist() == [1] * a + [0] * 4 + [1]
  assert not got['is_part_a'][0, a:].any()


def test_thousand_constrained_samples_from_untrained_model_are_valid():
  tok, _, _ = tiny(max_bars=24)
  base = _lyrics() + _lyrics(TEXTS[:2], time_signature=(3, 4)) + _lyrics(
      TEXTS[2:3], time_signature=(6, 8))
  settings = [generation.GenerateOptions().settings(),  # public SongGLM: 0.9, top-k 10
              sampling.Settings((1.5,) * 5, (0,) * 5, (0.95,) * 5)]  # hot, top-p only
  bad, total = [], 0
  for draw in range(100):
    kw = dict(per_syllable=(8, 1, 3)[draw % 3], advance=(2, 1, 4)[draw % 3],
              pitch=((36, 96), (60, 64), (70, 70))[draw % 3])
    lyrics, rows_l, out = _decode(base[draw % 4:], seed=draw, settings=settings[draw % 2], **kw)
    for b, lyr in enumerate(lyrics):
      total += 1
      reason = generation.invalid_reason(out.notes[b], int(out.num_notes[b]),
                                         bool(out.stopped[b]), lyr.num_syllables,
                                         lyr.bar_ticks, tok, kw['pitch'])
      if reason is None:
        song = generation.notes_to_song(lyr, rows_l[b], _notes(out, b), tok)
        if song.notes_per_syllable.max() > kw['per_syllable']:
          reason = 'too_many_notes_on_a_syllable'
        elif not np.array_equal(song.note_phrase, lyr.syllable_phrase[song.note_syllable]):
          reason = 'phrase'
      if reason is not None:
        bad.append((draw, b, reason))
  assert total == 1000
  assert bad == []


def test_unconstrained_untrained_model_makes_invalid_songs():
  tok, _, _ = tiny()
  lyrics, _, out = _decode(_lyrics(), constrained=False)
  reasons = [generation.invalid_reason(out.notes[b], int(out.num_notes[b]), bool(out.stopped[b]),
                                       x.num_syllables, x.bar_ticks, tok, (36, 96))
             for b, x in enumerate(lyrics)]
  assert sum(r is not None for r in reasons) >= len(lyrics) // 2


def test_one_note_per_syllable_when_the_bound_is_one():
  lyrics, _, out = _decode(_lyrics(), per_syllable=1)
  for b, lyr in enumerate(lyrics):
    assert _notes(out, b)[:, 4].tolist() == list(range(tk.NUM_SPECIAL,
                                                        tk.NUM_SPECIAL + lyr.num_syllables))


def test_stops_after_the_last_syllable_within_the_budget():
  lyrics, _, out = _decode(_lyrics(TEXTS[:3]), max_notes=20)  # 14, 11 and 20 syllables
  assert out.stopped.all()
  for b, lyr in enumerate(lyrics):
    notes = _notes(out, b)
    assert notes[-1, 4] - tk.NUM_SPECIAL == lyr.num_syllables - 1
    assert (out.notes[b, len(notes):] == tk.PAD).all()


def test_same_seed_same_songs_and_rows_independent_of_batch():
  lyrics = _lyrics()
  _, _, a = _decode(lyrics, seed=5)
  _, _, b = _decode(lyrics, seed=5)
  _, _, c = _decode(lyrics, seed=6)
  _, _, other = _decode(lyrics[:1] + lyrics[3:], seed=5)  # row 0 alike, the others differ
  np.testing.assert_array_equal(a.notes, b.notes)
  assert not np.array_equal(a.notes, c.notes)
  np.testing.assert_array_equal(other.notes[0], a.notes[0])


def test_sample_field_respects_mask_top_k_and_greedy():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(64, 30)), jnp.float32)
  allowed = jnp.asarray(np.random.default_rng(1).random((64, 30)) < 0.3).at[:, 0].set(True)
  noise = jax.random.gumbel(jax.random.key(0), (64, 30))
  masked = np.where(allowed, logits, -np.inf)
  best = masked.argmax(-1)
  got = sampling.sample_field(noise, logits, allowed, 1.0, 0, 1.0)
  assert np.asarray(allowed)[np.arange(64), got].all()
  assert (np.asarray(sampling.sample_field(noise, logits, allowed, 1.0, 1, 1.0)) == best).all()
  assert (np.asarray(sampling.sample_field(noise, logits, allowed, 0.0, 10, 1.0)) == best).all()
  assert (np.asarray(sampling.sample_field(noise, logits, allowed, 1.0, 0, 1e-6)) == best).all()
  top3 = np.argsort(-masked, axis=-1)[:, :3]
  got3 = np.asarray(sampling.sample_field(noise, logits, allowed, 5.0, 3, 1.0))
  assert all(g in t for g, t in zip(got3, top3))


def test_make_grids_needs_the_periodic_token_grid():
  g = sampling.make_grids(tk.time_grid(3840), tk.time_grid(3840)[1:])
  assert int(g.step) == 50
  assert np.asarray(g.next_point)[[0, 1, 30, 31, 41, 95, 120]].tolist() == [
      0, 30, 30, 40, 60, 120, 120]
  for bad in ([0, 25, 50], [0, 30, 120, 130]):
    with pytest.raises(ValueError, match='repeat every'):
      sampling.make_grids(np.array(bad), np.array([30]))


def test_chain_decoding_gives_valid_songs():
  tok, _, _ = tiny(cfg=CHAIN_CFG)
  lyrics, rows_l, out = _decode(_lyrics(), cfg=CHAIN_CFG, seed=3)
  for b, lyr in enumerate(lyrics):
    assert generation.invalid_reason(out.notes[b], int(out.num_notes[b]), bool(out.stopped[b]),
                                     lyr.num_syllables, lyr.bar_ticks, tok, (36, 96)) is None


def test_sample_order_is_the_chain_order():
  from songglm_jax.model import chain
  assert sampling.SAMPLE_ORDER == chain.CHAIN


@pytest.mark.parametrize('cfg', [NO_ALIGN_CFG, NO_ALIGN_CHAIN_CFG], ids=['independent', 'chain'])
@pytest.mark.parametrize('constrained', [True, False])
def test_without_a_word_head_one_note_per_syllable_then_stop(cfg, constrained):
  """No alignment head: word ids are forced to 0, 1, ..., S - 1 and the row stops after the last
  syllable; constrained rows are valid songs (unconstrained ones may break the time rules)."""
  tok, _, _ = tiny(cfg=cfg)
  assert not cfg.word_head and CFG.word_head
  lyrics, rows_l, out = _decode(_lyrics(), cfg=cfg, seed=4, constrained=constrained)
  assert 'word_id' not in out.logits
  assert out.stopped.all()
  for b, lyr in enumerate(lyrics):
    notes = _notes(out, b)
    assert notes[:, 4].tolist() == list(range(tk.NUM_SPECIAL, tk.NUM_SPECIAL + lyr.num_syllables))
    assert (out.notes[b, len(notes):] == tk.PAD).all()
    if constrained:
      assert generation.invalid_reason(out.notes[b], int(out.num_notes[b]), bool(out.stopped[b]),
                                       lyr.num_syllables, lyr.bar_ticks, tok, (36, 96)) is None
      song = generation.notes_to_song(lyr, rows_l[b], notes, tok)
      assert song.notes_per_syllable.tolist() == [1] * lyr.num_syllables
