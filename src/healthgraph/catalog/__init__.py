"""Catalog as code: `healthgraph apply` reads it, `healthgraph export` writes it back."""
