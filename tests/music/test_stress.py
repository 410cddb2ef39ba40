"""Stress lookup (music/stress.py) and text syllabification (music/syllabify.py)."""

from __future__ import annotations

import pytest

from songglm_jax.music import stress
from songglm_jax.music import syllabify
from tests.conftest import require_sample


def test_cmudict_first_pronunciation_patterns():
  d = stress.load_cmudict()
  assert d['apple'] == '10'
  assert d['alabama'] == '2010'
  assert d['the'] == '0'
  assert d['a'] == '0'  # first of 'a AH0' and 'a(2) EY1'
  assert "don't" in d and 'a(2)' not in d
  assert 'hmm' not in d  # no vowel, no stress
  assert len(d) > 120_000


def test_cmudict_loaded_once():
  # How long the load takes is measured by benchmarks/stress_bench.py, not asserted here.
  stress._load.cache_clear()  # pylint: disable=protected-access
  d = stress.load_cmudict()
  assert stress.load_cmudict() is d


@pytest.mark.parametrize('raw, norm', [
    ('knee.', 'knee'), ('oh,', 'oh'), ("don't", "don't"), ('Hello!', 'hello'), ('/ing', 'ing'),
    ("goin'!", "goin'"), ("knee.'", 'knee'), ('\u201cOh\u201d', 'oh'), ('rock\u2019n', "rock'n"),
    ('...', ''),
])
def test_normalize_word(raw, norm):
  assert stress.normalize_word(raw) == norm


def test_word_stress_variants():
  assert stress.word_stress("'hello'") == stress.word_stress('hello') == '01'
  assert stress.word_stress("rockin'") == stress.word_stress('rocking')
  assert stress.word_stress('well-known') == '11'
  assert stress.word_stress('hmmm') is None


def test_word_mode_gives_each_syllable_its_vowel_in_the_rebuilt_word():
  assert stress.syllable_stress(['al', 'a', 'bam', 'a']) == ('2', '0', '1', '0')
  assert stress.syllable_stress(['from', 'al', 'a', 'bam', 'a', 'with'])[3] == '1'  # bam
  assert stress.syllable_stress(['twin', 'kle', 'lit', 'tle', 'star']) == ('1', '0', '1', '0', '1')


def test_syllable_mode_looks_each_token_up_alone():
  syl = ['al', 'a', 'bam', 'a', 'ban', 'jo']
  assert stress.syllable_stress(syl, 'syllable') == ('1', '0', '1', '0', '1', '1')
  assert stress.syllable_stress(syl, 'word') == ('2', '0', '1', '0', '1', '2')


def test_whole_word_token_keeps_its_whole_pattern():
  assert stress.syllable_stress(['shelter'], 'word') == ('10',)
  assert stress.syllable_stress(['shelter'], 'syllable') == ('10',)


def test_unknown_marker_and_oov_rate():
  s = stress.syllable_stress(['hmmm', 'la', 'blorp', 'love.'])
  assert s == ('?', '1', '?', '1')
  assert stress.oov_rate(s) == 0.5
  assert stress.oov_rate([]) == 0.0


def test_punctuation_ends_a_word():
  assert stress.syllable_stress(['ban', 'jo']) == ('1', '2')
  assert stress.syllable_stress(['ban,', 'jo']) == ('1', '1')
  assert stress.syllable_stress(['ban', '"jo']) == ('1', '1')
  assert stress.syllable_stress(['al', 'a', 'bam', 'a.']) == ('2', '0', '1', '0')  # mark at end


def test_slash_continues_a_word():
  # 'echoing' = EH1 K OW0 IH0 NG: the two-vowel token 'echo' takes '10'.
  assert stress.syllable_stress(['echo', '/ing']) == ('10', '0')


def test_vowel_count_must_match():
  # 'tobe' is one vowel for two syllables: not joined; 'to' and 'be' alone.
  assert stress.syllable_stress(['to', 'be']) == ('1', '1')
  # A multi-vowel token gives up a vowel: every(3) + thing(1) -> everything '102'.
  assert stress.syllable_stress(['every', 'thing']) == ('10', '2')


def test_function_words_are_not_joined_into_names():
  assert stress.syllable_stress(['in', 'a']) == ('0', '0')  # not 'ina' IY1 N AH0
  assert stress.syllable_stress(['in', 'to']) == ('1', '0')  # 'into' is a listed compound
  assert stress.syllable_stress(['some', 'where']) == ('1', '2')


def test_pronoun_i_rules():
  assert stress.syllable_stress(['i', 'go']) == ('1', '1')  # 'igo' IY1 refused
  assert stress.syllable_stress(['and', 'i']) == ('0', '1')  # never ends a word
  assert stress.syllable_stress(['i', 'ron']) == ('1', '0')  # iron starts with AY
  assert stress.syllable_stress(['a', 'mer', 'i', 'ca']) == ('0', '1', '0', '0')


def test_leading_a_must_stay_unstressed():
  assert stress.syllable_stress(['a', 'way']) == ('0', '1')
  assert stress.syllable_stress(['a', 'man']) == ('0', '1')  # 'aman' AA1 refused


def test_greedy_longest_run_wins():
  assert stress.load_cmudict()['any'] == '10' and stress.load_cmudict()['anymore'] == '201'
  assert stress.syllable_stress(['an', 'y']) == ('1', '0')
  assert stress.syllable_stress(['an', 'y', 'more']) == ('2', '0', '1')


def test_one_pattern_per_syllable_and_bad_mode():
  syl = ['oh,', 'su', 'san', 'na', "don't", 'you', 'cry', 'for', 'me.']
  assert len(stress.syllable_stress(syl)) == len(syl)
  assert stress.syllable_stress([]) == ()
  with pytest.raises(ValueError, match='stress_lookup'):
    stress.syllable_stress(syl, 'phoneme')


def test_is_primary():
  assert stress.is_primary('1') and stress.is_primary('10') and stress.is_primary('201')
  assert not stress.is_primary('0') and not stress.is_primary('2')
  assert not stress.is_primary('?')


# Words with their CMU vowel counts (first pronunciation).
WORD_COUNTS = {
    'star': 1, 'love': 1, 'loved': 1, 'strength': 1, 'twinkle': 2, 'little': 2, 'heaven': 2,
    'going': 2, 'quiet': 2, 'poem': 2, 'lion': 2, 'being': 2, 'science': 2, 'create': 2,
    'cruel': 2, 'power': 2, 'hello': 2, 'maybe': 2, 'someone': 2, 'kisses': 2, 'wanted': 2,
    'crying': 2, 'player': 2, 'beautiful': 3, 'family': 3, 'idea': 3, 'area': 3, 'different': 3,
    'camera': 3, 'violet': 3, 'poetry': 3, 'somebody': 3, 'telephone': 3, 'remember': 3,
    'yesterday': 3, 'tomorrow': 3, 'together': 3, 'xylophone': 3, 'alabama': 4,
    'hallelujah': 4, 'naturally': 4, 'america': 4, 'revolution': 4, 'international': 5,
}


def test_word_counts_agree_with_dictionary():
  d = stress.load_cmudict()
  assert all(len(d[w]) == n for w, n in WORD_COUNTS.items())


@pytest.mark.parametrize('word, n', sorted(WORD_COUNTS.items()))
def test_syllabify_word_count_and_concatenation(word, n):
  pieces = syllabify.syllabify_word(word)
  assert len(pieces) == n
  assert ''.join(pieces) == word
  assert all(pieces)


def test_syllabify_word_examples():
  assert syllabify.syllabify_word('twinkle') == ['twin', 'kle']
  assert syllabify.syllabify_word('Twinkle,') == ['twin', 'kle']
  assert syllabify.syllabify_word('maybe') == ['may', 'be']
  assert syllabify.syllabify_word("don't") == ["don't"]
  assert syllabify.syllabify_word("'hello'") == ['hel', 'lo']


def test_syllabify_keeps_one_piece_when_spelling_has_no_second_vowel():
  # fire / our have two CMU vowels (AY ER, AW ER) but one written vowel group.
  assert syllabify.syllabify_word('fire') == ['fire']
  assert syllabify.syllabify_word('our') == ['our']


def test_syllabify_unknown_word_uses_vowel_groups():
  pieces = syllabify.syllabify_word('blorptastic')
  assert stress.word_stress('blorptastic') is None
  assert len(pieces) == 3 and ''.join(pieces) == 'blorptastic'
  assert syllabify.syllabify_word('mmmm') == ['mmmm']
  assert syllabify.syllabify_word('99') == ['99']


def test_syllabify_text_lines_and_punctuation_end_phrases():
  text = ('Twinkle, twinkle, little star,\nHow I wonder what you are!\n\n'
          '  Up above the world so high')
  assert syllabify.syllabify_text(text) == [
      ['Twin-', 'kle,'], ['twin-', 'kle,'], ['lit-', 'tle', 'star,'],
      ['How', 'I', 'won-', 'der', 'what', 'you', 'are!'],
      ['Up', 'a-', 'bove', 'the', 'world', 'so', 'high'],
  ]


def test_syllabify_text_marks_quotes_and_hyphens():
  assert syllabify.syllabify_text('"Oh," she said?! Don\'t go... well-known') == [
      ['Oh,'], ['she', 'said?'], ["Don't", 'go.'], ['well-', 'known']]
  assert syllabify.syllabify_text('') == []
  assert syllabify.syllabify_text(' , \n ; ') == []


def test_text_then_stress_round_trip():
  flat = [s for p in syllabify.syllabify_text('Twinkle, twinkle little star\nalabama') for s in p]
  assert stress.syllable_stress(flat) == ('1', '0', '1', '0', '1', '0', '1', '2', '0', '1', '0')


def test_shared_pretrain_corpus_oov_and_modes():
  symusic = pytest.importorskip('symusic')
  folder = require_sample('pretrain')
  songs = [[ly.text for ly in symusic.Score(str(p)).tracks[0].lyrics]
           for p in sorted(folder.glob('*.mid'))]
  word = [p for syl in songs for p in stress.syllable_stress(syl, 'word')]
  syl = [p for syl in songs for p in stress.syllable_stress(syl, 'syllable')]
  assert len(word) == len(syl) == sum(map(len, songs)) > 50_000
  assert 0.0 <= stress.oov_rate(word) < 0.01 and 0.0 <= stress.oov_rate(syl) < 0.01
  differ = sum(a != b for a, b in zip(word, syl)) / len(word)
  assert 0.02 < differ < 0.2  # measured 8.4%
  primary = lambda ps: sum(map(stress.is_primary, ps)) / len(ps)
  assert primary(word) < primary(syl)  # rebuilt words expose their unstressed syllables


# ---- lyrics in other languages and scripts (issue 13) -----------------------------------------------
def test_syllabify_text_cjk_kana_hangul_one_syllable_per_character():
  assert syllabify.syllabify_text('一闪一闪亮晶晶，满天都是小星星') == [
      ['一', '闪', '一', '闪', '亮', '晶', '晶,'], ['满', '天', '都', '是', '小', '星', '星']]
  # a small kana stays with the kana before it; hangul blocks; full-width marks end phrases
  assert syllabify.syllabify_text('きょうは ラーメン。안녕하세요！') == [
      ['きょ', 'う', 'は', 'ラ', 'ー', 'メ', 'ン.'], ['안', '녕', '하', '세', '요!']]
  assert syllabify.syllabify_text('I love北京') == [['I', 'love', '北', '京']]


def test_syllabify_text_keeps_the_users_spelling():
  assert syllabify.syllabify_text('Schöne Straße, I Don’t know CAFÉ-Bar') == [
      ['Schöne', 'Straße,'], ['I', 'Don’t', 'know', 'CA-', 'FÉ-', 'Bar']]
  assert syllabify.words_of(['Twin-', 'kle,', 'lit-', 'tle', '一', '闪']) == [
      'Twinkle,', 'little', '一闪']


def test_syllabify_language_chooses_the_hyphenation_dictionary():
  # English rules give German words one syllable (a silent final e); German patterns split them
  assert syllabify.syllabify_text('schöne Straße') == [['schöne', 'Straße']]
  assert syllabify.syllabify_text('schöne Straße, Liebe am Abend', 'de') == [
      ['schö-', 'ne', 'Stra-', 'ße,'], ['Lie-', 'be', 'am', 'A-', 'bend']]
  assert syllabify.syllabify_text('Canción del corazón', 'es') == [
      ['Can-', 'ción', 'del', 'co-', 'ra-', 'zón']]
  assert syllabify.language_dictionary('en') == 'en_US'
  with pytest.raises(ValueError, match=r"^--language 'xx': no hyphenation dictionary; pyphen "):
    syllabify.syllabify_text('la', 'xx')


def test_stress_reads_the_hyphen_mark_as_a_word_going_on():
  assert stress.syllable_stress(['Twin-', 'kle,', 'Al-', 'a-', 'ba-', 'ma']) == (
      '1', '0', '2', '0', '1', '0')
  assert stress.syllable_stress(['a-', 'bove']) == ('0', '1')
