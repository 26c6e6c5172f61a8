"""``RUN_DIR/report.html`` for any run directory: the page that fits what the run holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mm_align.report.diff_erank_page import render_diff_erank
from mm_align.report.geometry_page import render_geometry_page
from mm_align.report.html import save_page
from mm_align.report.run_page import render_report
from mm_align.report.scaling_page import render_scaling
from mm_align.report.sweep_page import render_sweep
from mm_align.rundir import Run, RunDirError, load_run, read_series, series_kind
from mm_align.rundir.layout import REPORT

__all__ = ["write_report"]


_PAGES: dict[str, Callable[[Run], str]] = {
    "score": render_report,
    "diff-erank": render_diff_erank,
    "info-gain": render_geometry_page,
    "attribution": render_geometry_page,
}
"""A run's command (:attr:`Run.command`) -> its page; series have their own (below)."""


def _renderer(run: Run) -> Callable[[Run], str]:
    if run.command == "scaling-member":
        raise RunDirError(f"{run.path} is one model of a scaling series, with no page of its own; "
                          f"write the report of the series folder ({run.path.parent.parent})")
    return _PAGES[run.command]


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` from the run's files and return its path: a score run's
    report, a diff-erank run's, an info-gain or attribution run's, or a scaling series', or a sweep's.

    Raises:
        RunDirError: ``run_dir`` holds no finished run.
    """
    root = Path(run_dir)
    kind = series_kind(root)
    if kind == "scaling":
        return save_page(root / REPORT, render_scaling(read_series(root, kind)))
    if kind == "sweep":
        doc = read_series(root, kind)
        members = {m["name"]: load_run(root / m["run"], with_controls=False) for m in doc["members"]}
        for run in members.values():  # the page links each member's own report
            if not (run.path / REPORT).is_file():
                save_page(run.path / REPORT, _renderer(run)(run))
        return save_page(root / REPORT, render_sweep(doc, members))
    run = load_run(root)
    return save_page(run.path / REPORT, _renderer(run)(run))
