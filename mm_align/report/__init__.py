"""HTML report of a run directory and comparison of runs."""

from mm_align.report.compare import DataMismatchError, compare_runs
from mm_align.report.run_page import write_report
from mm_align.report.runfiles import Run, RunDirError, load_run

__all__ = ["DataMismatchError", "Run", "RunDirError", "compare_runs", "load_run", "write_report"]
