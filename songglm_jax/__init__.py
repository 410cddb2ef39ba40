"""songglm_jax: lyric-to-melody generation with 2D alignment encoding and multi-task GLM
pre-training (a JAX/Flax reproduction and extension of SongGLM, arXiv 2412.18107)."""
