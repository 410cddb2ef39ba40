"""Place-in-phrase classes computed inside the model (model/phrase_position.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from songglm_jax.data import masking, records
from songglm_jax.data import tokenizer as tk
from songglm_jax.model import phrase_position as pp
from songglm_jax.music.song import Song


def _song():
  # 7 syllables in phrases 0,0,0 | 1,1 | 2,2; syllable 1 and 5 sung on two notes.
  notes_syl = np.array([0, 1, 1, 2, 3, 4, 5, 5, 6])
  n = len(notes_syl)
  onset = np.arange(n) * 240
  return Song(pitch=np.full(n, 60), onset=onset, offset=onset + 240, velocity=np.full(n, 80),
              note_syllable=notes_syl, syllables=tuple('abcdefg'),
              syllable_phrase=np.array([0, 0, 0, 1, 1, 2, 2]),
              syllable_stress=STRESS)


END = [3, 2, 1, 2, 1, 2, 1]    # 1 + syllables to the phrase's end
STRESS = ('1', '0', '1', '0', '2', '1', '0')
START = [1, 2, 3, 1, 2, 1, 2]  # 1 + syllables from its start


def _example(task):
  song = _song()
  tok = tk.Tokenizer(tk.fit_vocab([song], min_count=1))
  rec = records.SongRecord(tokens=tok.tokenize(song), time_signatures=song.time_signatures,
                           spans_smr=np.zeros((0, 2), np.int32),
                           spans_srr=np.zeros((0, 2), np.int32))
  ex = masking.make_examples([rec, rec], np.arange(2, dtype=np.uint64),
                             masking.MaskingOptions(), task=task)
  # two examples packed in one row: segments 1 and 2
  batch = {k: v[None] for k, v in ex.arrays.items()}
  batch['segment_ids'] = np.repeat(np.arange(1, 3), ex.lengths)[None].astype(np.int32)
  stress_id = [tk.NUM_SPECIAL + tok.vocab.stress.index(x) for x in STRESS]
  return song, {k: jnp.asarray(v) for k, v in batch.items()}, ex, stress_id


def test_lyric_rows_get_their_own_classes():
  _, batch, ex, _ = _example('finetune')
  end, start = pp.lyric_classes(batch['tokens'], batch['phrase_ids'], batch['segment_ids'])
  for b in range(2):
    s0 = int(ex.starts[b])
    assert np.asarray(end[0, s0 + 1:s0 + 8]).tolist() == END
    assert np.asarray(start[0, s0 + 1:s0 + 8]).tolist() == START
    assert int(end[0, s0]) == 0 and int(end[0, s0 + 8]) == 0  # BOS, EOS


def test_note_rows_get_their_syllables_classes_in_both_parts():
  song, batch, ex, _ = _example(None)  # pre-training tasks: notes in Part A and Part B
  end, start = pp.row_classes(batch)
  tokens = np.asarray(batch['tokens'][0])
  word = np.asarray(batch['word_ids'][0])
  seen = 0
  for i in np.flatnonzero(tokens[:, tk.F.type] == tk.NOTE):
    assert int(end[0, i]) == END[word[i]] and int(start[0, i]) == START[word[i]]
    seen += 1
  assert seen == 2 * song.num_notes
  specials = np.isin(tokens[:, tk.F.type], [tk.BOS, tk.EOS, tk.MASK, tk.LMASK, tk.SEP])
  assert np.all(np.asarray(end[0])[specials] == 0)


def test_target_features_are_those_of_the_predicted_notes_syllable():
  _, batch, _, stress_id = _example('finetune')
  got = pp.target_syllable(batch, end_class=True, stress=True)
  tc, ts = np.asarray(got['end_class'][0]), np.asarray(got['stress'][0])
  targets = np.asarray(batch['targets'][0])
  is_note = targets[:, tk.F.type] == tk.NOTE
  w = targets[is_note, tk.F.word_id] - tk.NUM_SPECIAL
  assert tc[is_note].tolist() == [END[x] for x in w]
  assert np.all(tc[~is_note] == 0)
  assert ts[is_note].tolist() == [stress_id[x] for x in w]
  assert np.all(ts[~is_note] == tk.NA)


def test_note_rows_get_their_syllables_stress():
  song, batch, _, stress_id = _example(None)
  col = np.asarray(pp.note_stress(batch)[0])
  tokens = np.asarray(batch['tokens'][0])
  word = np.asarray(batch['word_ids'][0])
  notes = tokens[:, tk.F.type] == tk.NOTE
  assert col[notes].tolist() == [stress_id[w] for w in word[notes]]
  assert len(set(stress_id)) == 3
  assert np.array_equal(col[~notes], tokens[~notes, tk.F.stress])
