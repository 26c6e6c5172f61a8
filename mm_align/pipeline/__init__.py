"""Scoring runs: a model, a data set and the metrics meet here and only here."""
