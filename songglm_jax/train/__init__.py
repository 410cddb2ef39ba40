"""Training: optimizer, device mesh and shardings, jit-compiled steps (loop and checkpoints
build on these)."""
