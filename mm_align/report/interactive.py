"""A table the reader can sort, filter and download as CSV: a few lines of inline
JavaScript (no library, no network), so the page stays one offline file.

The page works without the script (the table is plain HTML); with it, a click on a header
sorts by that column (numbers as numbers, "–" last; again: descending), the search box keeps
the rows whose text contains every typed word, and "Download CSV" saves the rows shown,
neutralising cells a spreadsheet would evaluate (a leading ``'``, as the CSV export does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mm_align.report.html import Markup, esc, join, table, tag

__all__ = ["SCRIPT", "interactive_table"]

SCRIPT = """
document.querySelectorAll("[data-interactive]").forEach(function (box) {
  var tbl = box.querySelector("table"), body = tbl.tBodies[0];
  var heads = Array.prototype.slice.call(tbl.tHead.rows[0].cells);
  var search = box.querySelector("input[type=search]"), count = box.querySelector(".count");
  var rows = function () { return Array.prototype.slice.call(body.rows); };
  var shown = function () { return rows().filter(function (r) { return !r.hidden; }); };
  var cell = function (r, i) { return r.cells[i].textContent.replace(/\\s+/g, " ").trim(); };
  var numeric = function (t) { var v = parseFloat(t.replace("\\u2212", "-")); return isNaN(v) ? null : v; };
  var update = function () { count.textContent = shown().length + " of " + rows().length + " rows"; };
  heads.forEach(function (th, i) {
    if (th.querySelector("[data-nosort]")) return;
    th.tabIndex = 0;
    var sort = function () {
      var down = th.getAttribute("aria-sort") === "ascending", num = th.classList.contains("num");
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var sign = down ? -1 : 1;
      rows().sort(function (a, b) {
        var x = cell(a, i), y = cell(b, i);
        if (num) {
          x = numeric(x); y = numeric(y);
          if (x === null || y === null) return (x === null) - (y === null);
          return sign * (x - y);
        }
        return sign * x.localeCompare(y, undefined, {numeric: true});
      }).forEach(function (r) { body.appendChild(r); });
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
  });
  search.addEventListener("input", function () {
    var words = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    rows().forEach(function (r) {
      var text = r.textContent.toLowerCase();
      r.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
    update();
  });
  box.querySelector("button").addEventListener("click", function () {
    var cols = heads.map(function (h, i) { return i; }).filter(function (i) { return !heads[i].querySelector("[data-nocsv]"); });
    var safe = function (t) {
      if (/^[=+@\\t\\r]/.test(t) || (/^-/.test(t) && isNaN(Number(t)))) t = "'" + t;
      return /[",\\n\\r]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
    };
    var lines = [cols.map(function (i) { return safe(heads[i].textContent.trim()); }).join(",")];
    shown().forEach(function (r) { lines.push(cols.map(function (i) { return safe(cell(r, i)); }).join(",")); });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {type: "text/csv"}));
    link.download = box.getAttribute("data-interactive") + ".csv";
    document.body.appendChild(link); link.click(); link.remove();
  });
  update();
});
"""


def interactive_table(name: str, headers: Sequence[Any], rows: Sequence[Sequence[Any]],
                      numeric: Sequence[int] = (), caption: Any = None,
                      row_ids: Sequence[str] | None = None, no_data: Sequence[int] = ()) -> Markup:
    """:func:`~mm_align.report.html.table` with a search box, sortable headers and a CSV
    download named ``NAME.csv``; columns in ``no_data`` (thumbnails) are neither sorted
    nor downloaded. The page must include :data:`SCRIPT` (``page(..., script=SCRIPT)``)."""
    heads = [tag("span", h, **({"data-nosort": "", "data-nocsv": ""} if i in no_data else {}))
             for i, h in enumerate(headers)]
    toolbar = tag("div", join([
        Markup(f'<input type="search" placeholder="Search rows (id, text, values)" '
               f'aria-label="search the {esc(name)} table">'),
        tag("span", f"{len(rows)} of {len(rows)} rows", class_="count"),
        tag("button", "Download CSV", type="button"),
    ]), class_="table-tools")
    return tag("div", join([toolbar, table(heads, rows, numeric, caption, row_ids)]),
               **{"data-interactive": name})
