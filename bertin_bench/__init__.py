"""Shared glue for the three stages (sampling, pretraining, benchmark): data location, atomic file
writes, provenance. Each stage package owns its own logic; this package owns only what all of them
need so that none of them copies it."""

__version__ = "0.1.0"
