"""Everything about songs, independent of JAX."""
