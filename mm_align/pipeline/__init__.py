"""Scoring runs: a model, a data set and the metrics meet here and only here."""

from mm_align.pipeline.diff_erank import diff_erank
from mm_align.pipeline.runfiles import RunDirError
from mm_align.pipeline.score import ScoreError, format_table, score

__all__ = ["RunDirError", "ScoreError", "diff_erank", "format_table", "score"]
