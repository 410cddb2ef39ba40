"""The main job's stages (``python -m songglm_jax.main``): prepare, pretrain, finetune, generate
and evaluate in a workdir, each kept when its output is complete (``stages``, ``eval_stage``)."""
