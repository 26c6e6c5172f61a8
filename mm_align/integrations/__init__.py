"""Integrations with training frameworks: :mod:`mm_align.integrations.transformers` (a
``Trainer`` callback). Each module imports its framework; this package imports none."""
