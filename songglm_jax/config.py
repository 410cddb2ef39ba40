"""The base config: every field the programs read, each with a comment.

Config files in ``configs/`` call :func:`base_config` and change what they need; a field that is
not declared here does not exist (``lock_config=True`` rejects typos in ``--config.x=v``).

The defaults are the tiny CPU setting of ``configs/default.py``; the paper configs override sizes
and step counts. ``model.max_len`` follows ``pipeline.seq_len`` (an ml_collections reference), so
``--config.pipeline.seq_len=N`` resizes the position tables too.
"""

from __future__ import annotations

from typing import Sequence

import ml_collections

from songglm_jax.model import config as model_config
from songglm_jax.train.mesh import DEFAULT_RULES

# Every stage name the program knows, in run order. Which of them this version can run is
# decided by the registry in job/stages.py.
STAGE_ORDER = ('prepare', 'pretrain', 'finetune', 'generate', 'evaluate')

# The note fields the model generates (equal to model/sampling.NOTE_COLUMNS; tests/test_main.py
# checks it): config.generate sets temperature, top-k and top-p for each.
GENERATED_FIELDS = ('bar', 'position', 'duration', 'pitch', 'word_id')

SAMPLE_LYRICS = ('Twinkle, twinkle, little star, how I wonder what you are. '
                 'Up above the world so high, like a diamond in the sky. | '
                 'Row, row, row your boat, gently down the stream. '
                 'Merrily, merrily, merrily, merrily, life is but a dream.')


# Fields added after workdirs were first written, with the value that reproduces what such a
# workdir did: a resumed or reused stage whose config.json lacks one is read with this value.
LATER_FIELDS = {**{f'model.{k}': v for k, v in model_config.LATER_FIELDS.items()},
                'pipeline.finetune_mask': 'MASK', 'pretrain.seq_len': 0, 'finetune.seq_len': 0,
                'pretrain.dropout_rate': -1.0, 'finetune.dropout_rate': -1.0,
                'data.records_per_shard': 0}


def _train_section(**kw) -> ml_collections.ConfigDict:
  """The fields shared by the pretrain and finetune sections (see base_config for comments)."""
  s = ml_collections.ConfigDict()
  s.num_train_steps = kw['num_train_steps']  # optimizer updates of the stage
  s.batch_size = kw['batch_size']  # packed rows per update over all processes; a multiple of
                                   # mesh data x fsdp, of the process count and of grad_accum_steps
  s.seq_len = 0                    # tokens per packed row in this stage (0 = pipeline.seq_len);
                                   # at most model.max_len
  s.grad_accum_steps = 1           # micro-batches per update (rows i, i+k, ...; same update)
  s.learning_rate = kw['learning_rate']  # peak of the one-cycle schedule
  s.dropout_rate = -1.0            # dropout while this stage trains, in [0, 1); -1 = the
                                   # model's (model.dropout_rate)
  s.warmup_fraction = 0.2          # share of num_train_steps with linear warm-up
  s.checkpoint_every_steps = 100   # save W/<stage>/checkpoints/<step> this often and at the end
  s.keep_checkpoints = 3           # newest checkpoints kept (older ones are deleted)
  s.log_every_steps = 10           # metrics.jsonl / TensorBoard / console line this often
  s.eval_every_steps = 100         # held-out (valid split) loss this often and at the end; 0 = never
  s.eval_batches = 0               # cap on held-out batches per evaluation (0 = the whole split);
                                   # they are read once and kept in host memory
  return s


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.stages = 'prepare,pretrain,finetune,generate,evaluate'  # subset of STAGE_ORDER, run in order
  c.seed = 0               # one seed for data order, masking, initialisation and sampling

  c.data = d = ml_collections.ConfigDict()
  d.pretrain_source = 'music21'  # folder of songs, one song file, or 'music21' (bundled corpus)
  d.finetune_source = ''   # lyrics->melody corpus; '' = fine-tune on the pre-training data
  d.workers = 2            # reader processes of `prepare` (output does not depend on it)
  d.limit = 0              # use only the first N input files of each source (0 = all)
  d.valid_fraction = 0.05  # share of files held out for evaluation (hash of the file path)
  d.min_count = 2          # a syllable enters the vocabulary when seen this often
  d.stress_lookup = 'word'  # 'word': rebuild words from syllables; 'syllable': public SongGLM
  d.max_syllables = 256    # word-id cap: longer songs are cut into windows at phrase boundaries
  d.max_phrases = 128      # phrase-id cap (same windowing)
  d.max_bars = 512         # bar-field cap (same windowing)
  d.max_bar_ticks = 3840   # longest bar the position grid covers (8 quarters at 480 per quarter)
  d.fit_lexicon = True     # fit the harmonized n-gram lexicon on the pre-training data (the
                           # fine-tuning data is then prepared with it); False: no n-gram spans,
                           # so the n-gram tasks mask T5-style random spans instead
  d.lexicon_max_n = 12     # longest n-gram scored (N in the paper)
  d.lexicon_min_span_n = 2  # shortest n-gram used for spans: every unigram scores 0 by
                           # definition, so selecting unigrams by rank would select by count
  d.lexicon_max_span_n = 4  # longest n-gram used for spans
  d.lexicon_max_rank = 0.3  # n-grams ranked in the best 30% of their length are used
  d.records_per_shard = 10000  # prepared records per shard file (train-00000-of-000NN.array_record,
                           # ...; each process reads a disjoint block of a split); 0 = one file
                           # per split (train.array_record), the layout before sharding

  c.pipeline = p = ml_collections.ConfigDict()
  p.seq_len = 1024          # tokens per packed row; longer songs are windowed at phrase boundaries
  p.chunk_records = 256     # records masked and packed together (first-fit decreasing per chunk)
  p.workers = 0             # Grain worker processes: part of the experiment (the stream and a
                            # saved iterator state depend on it)
  p.worker_buffer = 2       # batches each worker prepares ahead
  p.read_threads = 1        # threads preparing chunks ahead in each process (stream unchanged)
  p.word_rate = 0.15        # share of notes masked by the n-gram tasks
  p.phrase_rate = 0.5       # share of notes masked by the phrase task (whole phrases)
  p.song_rate = 0.5         # share of notes in the single song-level span (long-span MASK)
  p.mean_span_length = 5.0  # random-span fallback when a song's n-grams cannot reach word_rate
  p.shuffle_spans = True    # Part B spans in random order
  p.finetune_mask = 'MASK'  # fine-tuning's (and generation's) cue for the whole melody: 'MASK'
                            # as the public SongGLM code does, or 'LMASK', the token
                            # pre-training shows for its song-level span
  p.task_weights = ml_collections.ConfigDict(  # relative weights of the pre-training tasks
      dict(ngram_smr=1.0, ngram_srr=1.0, phrase=1.0, song=1.0))
  # The batch size is a property of a training stage: config.pretrain/finetune.batch_size.

  c.model = m = ml_collections.ConfigDict()  # the GLM (songglm_jax/model/config.py)
  m.d_model = 128           # width of the residual stream
  m.num_layers = 2          # transformer blocks
  m.num_heads = 4           # attention heads (d_model must be a multiple)
  m.d_ff = 512              # hidden width of the GELU MLP
  m.dropout_rate = 0.1      # on the embedding sum and on both residual branches
  m.max_len = p.get_ref('seq_len')  # rows of the position tables; >= pipeline.seq_len
  m.compute_dtype = 'auto'  # 'float32', 'bfloat16', or 'auto' (bfloat16 on GPU/TPU, float32 on
                            # CPU); parameters, logits and loss stay float32
  m.embed_combine = 'sum'   # 'sum' of d_model-wide field tables, or 'concat' then project
  m.embed_field_dim = 32    # per-field width with 'concat' (unused by 'sum')
  m.use_word_ids = True     # 2D alignment encoding: learned word_id embedding
  m.use_phrase_ids = True   # 2D alignment encoding: learned phrase_id embedding
  m.position_encoding = 'glm2d'  # 'glm2d' (position + block position), '1d' or 'none'
  m.num_word_ids = 256      # rows of the word_id table (the tokenizer's word-id range)
  m.num_phrase_ids = 128    # rows of the phrase_id table (the tokenizer's phrase-id range)
  m.layer_norm_epsilon = 1e-5  # epsilon of every LayerNorm
  m.target_fields = 'bar,position,duration,pitch,word_id'  # fields with an output head
  m.field_conditioning = 'none'  # 'none': the note fields are predicted (and sampled)
                            # independently from one hidden state; 'chain': each field's head
                            # also sees the fields drawn before it (word, bar, position,
                            # duration, pitch; model/chain.py)
  m.chain_hidden = 0        # hidden width of the chain's per-field MLPs (0 = d_model)
  m.phrase_position = False  # embed each syllable's distance to its phrase's end and start
                            # (and a note's, of its syllable; model/phrase_position.py)
  m.note_syllable_stress = False  # note rows embed their syllable's stress; the chain's later
                            # fields see the predicted note's syllable's stress
  m.attention = 'auto'      # 'xla_library' (jax.nn.dot_product_attention), 'explicit', or 'auto'
                            # (the library on GPU/TPU; explicit on CPU, where it is faster)
  m.remat = False           # recompute the blocks' activations in the backward pass (less memory)

  c.optim = o = ml_collections.ConfigDict()  # AdamW after global-norm clipping (train/optim.py)
  o.b1 = 0.9                # Adam beta1
  o.b2 = 0.98               # Adam beta2
  o.eps = 1e-6              # Adam epsilon
  o.weight_decay = 0.01     # decoupled weight decay on matrices only
  o.clip_norm = 1.0         # global gradient-norm clip
  o.end_lr_fraction = 0.0   # the cosine decays to this share of the peak learning rate

  # Training stages (train/loop.py). Each writes W/<stage>/{checkpoints,metrics.jsonl,events}.
  c.pretrain = _train_section(num_train_steps=300, batch_size=8, learning_rate=1e-3)
  c.finetune = _train_section(num_train_steps=150, batch_size=8, learning_rate=5e-4)
  c.finetune.init_from = ''  # pre-trained start: '' = W/pretrain of this workdir; or another
                             # workdir, its <stage>/checkpoints folder, or one step folder in it;
                             # 'none' = train from scratch

  c.mesh = h = ml_collections.ConfigDict()  # device mesh (train/mesh.py); -1 = the rest
  h.data = 1                # data-parallel axis (batch split)
  h.fsdp = -1               # fully-sharded axis (batch split; parameters and Adam moments
                            # sharded on their d_model axis)
  h.tensor = 1              # tensor-parallel axis (MLP hidden and attention heads)
  h.rules = DEFAULT_RULES   # logical axis name -> mesh axes ('name=a+b, other=', one place)

  # Generation (songglm_jax/generate.py, inference/generation_rules.GenerateOptions); the
  # generate stage sings these lyrics with the checkpoint g.checkpoint chooses into
  # W/samples/sample_K/.
  c.generate = g = ml_collections.ConfigDict()
  g.lyrics = SAMPLE_LYRICS  # plain text; '|' separates songs; lines and . , ! ? ; : end phrases
  g.lyrics_from = ''        # or a folder of songs whose lyrics to sing (instead of lyrics)
  g.stage = ''              # checkpoint stage: '' = finetune when it has one, else pretrain
  g.checkpoint = 'best'     # 'best' = the lowest held-out loss checkpoint of the stage when it
                            # has one (W/<stage>/best.json), else the newest; 'latest' = the newest
  g.num_samples = 2         # samples per song (the public SongGLM setting is 10)
  g.batch_size = 20         # decoded rows per jitted call (rows are padded to one shape)
  g.temperature = _per_field(0.9)  # per note field; <= 0 is greedy
  g.top_k = _per_field(10)         # per note field; 0 = off
  g.top_p = _per_field(1.0)        # per note field; 1.0 = off
  g.constrained = True      # alignment / time / range constraints as logit masks
  g.max_notes_per_syllable = 8  # the constraint then moves on to the next syllable
  g.max_notes = 512         # note budget of one lyrics window
  g.pitch_low = 36          # lowest MIDI pitch allowed (constrained)
  g.pitch_high = 96         # highest MIDI pitch allowed (constrained)
  g.max_bar_advance = 2     # a note starts at most this many bars after the previous one
  g.velocity = 80           # MIDI velocity of written notes
  g.stress_beat_bias = 0.0  # lyric-melody prior: + on strong beats for a stressed syllable's
                            # first note, - for an unstressed one (position logits; 0 = off)
  g.phrase_rest_bias = 0.0  # + on onsets leaving a rest >= an eighth before a phrase (0 = off)
  g.stress_duration_bias = 0.0  # + on durations ending on a strong beat before a stressed
                                # syllable, - before an unstressed one (0 = off)
  g.phrase_final_long_bias = 0.0  # + on durations >= a quarter for a phrase-final syllable's
                                  # notes (0 = off)
  g.legato_bias = 0.0       # melody prior: + on the bar and position where a note starts right
                            # at the previous note's end, inside phrases (0 = off)
  g.duration_offsets = ''    # 'ticks:offset,...' added to those durations' logits for every
                            # note ('' = off; benchmarks/duration_calibration.py measures them)
  g.plot = True             # also a piano-roll PNG per song

  # Evaluation on the validation split (songglm_jax/job/eval_stage.py): its songs' lyrics are sung
  # with config.generate's settings and compared with the songs (songglm_jax/evaluate.py
  # metrics) in W/eval/{reference,generated,result.json,plots}.
  c.evaluate = e = ml_collections.ConfigDict()
  e.num_songs = 0           # validation songs used (the first ones by name; 0 = all)
  e.num_samples = 3         # sample sets (the paper reports mean +- std over them)
  e.workers = 1             # processes for reading files and the DTW
  e.plots = True            # PNGs comparing the distributions
  return c


def melody_quality(c: ml_collections.ConfigDict, stress: bool = True) -> ml_collections.ConfigDict:
  """The model options and per-field sampling chosen on the sample's validation split
  (docs/quality.md): each note field conditioned on the ones drawn before it, place-in-phrase
  embeddings (and, with ``stress``, the note's syllable stress); bar and position sampled at
  temperature 0.5, duration, pitch and the syllable (word id) at 1.0, no top-k. Changes
  ``c`` in place and returns it; ``configs/songglm_sample.py`` and ``configs/default.py`` use
  it, ``base_config()`` keeps the public SongGLM code's choices (independent heads, T 0.9,
  top-k 10)."""
  c.model.update(field_conditioning='chain', phrase_position=True, note_syllable_stress=stress)
  c.generate.temperature.update(bar=0.5, position=0.5, duration=1.0, pitch=1.0, word_id=1.0)
  c.generate.top_k.update({f: 0 for f in GENERATED_FIELDS})
  return c


def _per_field(value) -> ml_collections.ConfigDict:
  """One sampling setting per generated note field."""
  return ml_collections.ConfigDict({f: value for f in GENERATED_FIELDS})


def parse_stages(config: ml_collections.ConfigDict, available: Sequence[str]) -> list[str]:
  """The stages to run in :data:`STAGE_ORDER` order, checked against the ``available`` ones."""
  stages = [s.strip() for s in str(config.stages).split(',') if s.strip()]
  unknown = [s for s in stages if s not in available]
  if unknown:
    raise ValueError(f'config.stages: unknown stage(s) {unknown}; this version runs '
                     f'{tuple(available)}')
  if not stages:
    raise ValueError('config.stages: empty')
  return sorted(stages, key=STAGE_ORDER.index)
