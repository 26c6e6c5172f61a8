"""Rendering only: the HTML pages of run directories and of a comparison. Statistics are
computed by the pipeline and read from the run's files."""

from mm_align.report.compare import render_compare
from mm_align.report.pages import write_report

__all__ = ["render_compare", "write_report"]
