"""Rendering only: the HTML pages of a run directory and of a comparison. Statistics are
computed by the pipeline and read from the run's files."""

from mm_align.report.compare import render_compare
from mm_align.report.run_page import write_report

__all__ = ["render_compare", "write_report"]
