"""What a scoring run returns to Python: the same numbers a CLI run writes to its directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ScoreResult"]


@dataclass
class ScoreResult:
    """A finished run.

    Attributes:
        summary: ``summary.json``'s content (dataset eRanks, ratios, intervals, provenance).
        results: per-sample records (``results.jsonl``), in data set order.
        errors: per-sample error records (``errors.jsonl``), in data set order.
        controls: control / perturbation / baseline name -> its result.
        out: the run directory, or None for a run kept in memory.
    """

    summary: dict[str, Any]
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    controls: dict[str, ScoreResult] = field(default_factory=dict)
    out: Path | None = None

    def to_pandas(self) -> Any:
        """The per-sample results as a ``pandas.DataFrame`` (one row per sample)."""
        import pandas as pd

        return pd.json_normalize(self.results)

    def __repr__(self) -> str:
        where = f", out={str(self.out)!r}" if self.out else ""
        controls = f", controls={sorted(self.controls)}" if self.controls else ""
        return (
            f"ScoreResult(n_samples={self.summary.get('n_samples')}, "
            f"n_errors={self.summary.get('n_errors')}{controls}{where})"
        )
