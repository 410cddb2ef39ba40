"""Everything between songs and batches; NumPy only (never imports flax)."""
