"""The export table (:mod:`mm_align.pipeline.export`) as text: CSV, JSON, Markdown or LaTeX.

CSV and JSON hold every column at full precision. Markdown and LaTeX show a paper's table:
the text columns, then each metric with its interval, and of the controls' differences the
two ratios with their p-values; every eRank and ratio is printed to ``digits`` significant
figures (default 4), its interval bounds to the same decimal places.

CSV cells are safe to open in a spreadsheet: a text cell that starts with ``=``, ``+``,
``@``, a tab, a carriage return, or ``-`` when it is not a number gets a leading ``'``
(OWASP's rule against formula injection), in every column.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CI_HI", "CI_LO", "DIGITS", "FORMATS", "INTERVALS", "neutralise", "render", "to_latex", "to_markdown"]

CI_LO, CI_HI = "_ci95_lo_bootstrap", "_ci95_hi_bootstrap"
"""Suffixes of the interval columns: 95 % level, percentile bootstrap over samples."""
FORMATS = ("csv", "markdown", "json", "latex")
INTERVALS = ("pm", "brackets")
"""How Markdown and LaTeX show an interval: ``pm`` (value ± half-width, or +up/−down when the
interval is not symmetric) or ``brackets`` (``value [lo, hi]``)."""
DIGITS = 4
SHORT = {
    "erank_vision": "eRank1 vision", "erank_projector": "eRank2 projector",
    "erank_image": "eRank3 image", "erank_text": "eRank4 text", "erank_joint": "eRank5 joint",
    "image_reduction_ratio": "Reduction ratio", "image_text_alignment": "Alignment",
    "diff_erank": "Diff-eRank (a)", "diff_erank_mean": "Diff-eRank (b)",
    "erank_trained": "eRank M1 trained", "erank_untrained": "eRank M0 untrained",
}
RATIOS = ("image_reduction_ratio", "image_text_alignment")
RUN_TEXT = ("run", "member", "step", "model", "revision", "data", "n")
COMPARE_TEXT = ("run", "against", "mode", "n_shared")
_FORMULA_START = ("=", "+", "@", "\t", "\r")
_NUMBER = re.compile(r"-\s*(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: Any) -> Any:
    """A CSV cell a spreadsheet will not evaluate: text starting with ``=``, ``+``, ``@``,
    tab, CR, or ``-`` not followed by a number, gets a leading ``'``; other values stay.

    >>> neutralise('=HYPERLINK("evil","y")'), neutralise("-1.5"), neutralise("-x"), neutralise(3)
    ('\\'=HYPERLINK("evil","y")', '-1.5', "'-x", 3)
    """
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(_FORMULA_START) or (value[0] == "-" and not _NUMBER.fullmatch(value)):
        return "'" + value
    return value


def _decimals(value: float, digits: int) -> int:
    """Decimal places that show ``value`` to ``digits`` significant figures."""
    if value == 0:
        return digits - 1
    return max(0, min(12, digits - 1 - math.floor(math.log10(abs(value)))))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _p(p: Any, latex: bool) -> str:
    if not _finite(p):
        return ""
    from mm_align.metrics.bootstrap import format_p  # here: `mm-align --help` stays light

    text = format_p(p)  # the console's and the report's format
    return f" (${text}$)" if latex else f" ({text})"


def _value(row: Mapping[str, Any], key: str, digits: int, intervals: str, latex: bool) -> str:
    """A value with its interval (and p-value, where the row has one) as a table cell."""
    value: Any = row.get(key)
    lo: Any = row.get(key + CI_LO)
    hi: Any = row.get(key + CI_HI)
    if not _finite(value):
        return "–"
    d = _decimals(value, digits)
    text = f"{value:.{d}f}"
    if _finite(lo) and _finite(hi):
        up, down = f"{hi - value:.{d}f}", f"{value - lo:.{d}f}"
        if intervals == "brackets":
            text += f" [{lo:.{d}f}, {hi:.{d}f}]"
        elif up == down:
            text += (r" \pm " if latex else " ± ") + up
        else:
            text += f"^{{+{up}}}_{{-{down}}}" if latex else f" +{up}/−{down}"
    if latex:
        text = f"${text}$"
    return text + _p(row.get(f"{key}_p"), latex)


def _columns(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[tuple[str, str]]]:
    """The text columns and the (header, key) value columns of a paper table: the metrics
    and, of the controls' differences, the two ratios; a compare table shows every
    difference."""
    keys = list(rows[0])
    if "against" in keys:
        text = [k for k in COMPARE_TEXT if k in keys]
        return text, [(f"Δ {SHORT[k[5:]]}", k) for k in keys if k.startswith("diff_") and k[5:] in SHORT]
    text = [k for k in RUN_TEXT if k in keys]
    values = [(SHORT[k], k) for k in keys if k in SHORT]
    for key in keys:
        for ratio in RATIOS:
            if key.startswith("diff_") and key.endswith(f"_{ratio}"):  # diff_<name>_<ratio>
                values.append((f"Δ {SHORT[ratio]} {key[len('diff_'):-len(ratio) - 1]}", key))
    return text, values


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "–"
    return Path(str(value)).name if key == "data" else str(value)


def _md_escape(text: str) -> str:
    """A Markdown table cell: pipes escaped, line breaks as ``<br>`` (one row stays one line)."""
    return re.sub(r"\r\n|\r|\n", "<br>", text.replace("\\", "\\\\").replace("|", "\\|"))


def to_markdown(rows: Sequence[Mapping[str, Any]], digits: int = DIGITS, intervals: str = "brackets") -> str:
    """A Markdown table of export rows: the text columns, then each value with its 95 %
    interval and, for differences, the p-value."""
    if not rows:
        return ""
    text, values = _columns(rows)
    lines = ["| " + " | ".join(_md_escape(h) for h in [*text, *(h for h, _ in values)]) + " |",
             "|" + "---|" * len(text) + "---:|" * len(values)]
    for row in rows:
        cells = [_text(row, k) for k in text] + [_value(row, k, digits, intervals, False) for _, k in values]
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    return "\n".join(lines)


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "\\": r"\textbackslash{}", "Δ": r"$\Delta$", "–": "--"}


def _tex(text: str) -> str:
    text = re.sub(r"\s+", " ", text)  # a line break would end the row
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(rows: Sequence[Mapping[str, Any]], digits: int = DIGITS, intervals: str = "pm") -> str:
    """A booktabs ``tabular`` (``\\usepackage{booktabs}``) of export rows: values with their
    95 % intervals as ± (or ``[lo, hi]``), in math mode; text escaped."""
    if not rows:
        return ""
    text, values = _columns(rows)
    head = [*text, *(h for h, _ in values)]
    lines = [r"\begin{tabular}{" + "l" * len(text) + "r" * len(values) + "}", r"\toprule",
             " & ".join(_tex(h) for h in head) + r" \\", r"\midrule"]
    for row in rows:
        cells = [_tex(_text(row, k)) for k in text]
        cells += [_value(row, k, digits, intervals, True).replace("–", "--") for _, k in values]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def render(rows: Sequence[Mapping[str, Any]], fmt: str, digits: int = DIGITS,
           intervals: str | None = None) -> str:
    """The rows as ``csv``, ``markdown``, ``json`` (a list of flat objects) or ``latex`` text;
    ``digits`` and ``intervals`` (:data:`INTERVALS`; Markdown default ``brackets``, LaTeX
    ``pm``) shape the Markdown and LaTeX values."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if intervals is not None and intervals not in INTERVALS:
        raise ValueError(f"unknown interval style {intervals!r}; choose from {', '.join(INTERVALS)}")
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    if fmt == "markdown":
        return to_markdown(rows, digits, intervals or "brackets") + "\n"
    if fmt == "latex":
        return to_latex(rows, digits, intervals or "pm") + "\n"
    if fmt == "json":
        return json.dumps(list(rows), indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[neutralise(k) for k in (rows[0] if rows else [])],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({neutralise(k): neutralise(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()
