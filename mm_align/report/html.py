"""Self-contained HTML pages: inline CSS, SVG and (for interactive tables) script, no
external fetches.

Text is escaped by default: a plain ``str`` passed to any helper is treated as text, and only
:class:`Markup` (what these helpers return) is inserted as HTML. Sample texts and error
reasons come from user data, so "escape unless proven safe" is the only safe default.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from mm_align.rundir.layout import write_atomic

__all__ = [
    "Markup",
    "esc",
    "figure",
    "join",
    "kv_table",
    "note",
    "page",
    "section",
    "svg_figure",
    "table",
    "tag",
]


class Markup(str):
    """A string that already is HTML and must not be escaped again."""


def esc(value: Any) -> Markup:
    """``value`` as HTML: Markup unchanged, anything else escaped text."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Markup:
    return Markup("".join(esc(p) for p in parts))


def tag(name: str, content: Any = "", **attrs: Any) -> Markup:
    """``<name attrs>content</name>``; ``class_`` sets ``class``; None attributes are left out."""
    rendered = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None
    )
    return Markup(f"<{name}{rendered}>{esc(content)}</{name}>")


def section(title: str, *content: Any, anchor: str | None = None) -> Markup:
    return tag("section", join([tag("h2", title), *content]), id=anchor)


def note(text: Any, kind: str = "info") -> Markup:
    """A highlighted paragraph; ``kind`` is ``info`` or ``warn``."""
    return tag("p", text, class_=f"note {kind}")


def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    numeric: Sequence[int] = (),
    caption: Any = None,
    row_ids: Sequence[str] | None = None,
) -> Markup:
    """A table; columns whose index is in ``numeric`` are right-aligned in tabular figures.

    Args:
        row_ids: an ``id`` per row, so links (``#id``) can land on a row.
    """
    head = tag(
        "tr",
        join(tag("th", h, class_="num" if i in numeric else None) for i, h in enumerate(headers)),
    )
    body = join(
        tag(
            "tr",
            join(tag("td", c, class_="num" if i in numeric else None) for i, c in enumerate(row)),
            id=row_ids[n] if row_ids is not None else None,
        )
        for n, row in enumerate(rows)
    )
    cap = tag("caption", caption) if caption is not None else ""
    return tag(
        "div",
        tag("table", join([cap, tag("thead", head), tag("tbody", body)])),
        class_="table-wrap",
    )


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, f"{name}."))
        else:
            items.append((name, value))
    return items


def kv_table(mapping: Mapping[str, Any]) -> Markup:
    """Nested mapping as a two-column table with dotted keys (``model.id``)."""
    rows = []
    for key, value in _flatten(mapping):
        shown = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        )
        rows.append((tag("code", key), shown))
    return table(["Field", "Value"], rows)


def figure(data_uri: str, alt: str, caption: Any = None) -> Markup:
    """An embedded image (``data_uri`` must be a ``data:`` URI) with an optional caption."""
    if not data_uri.startswith("data:"):
        raise ValueError("figures must be embedded as data: URIs to keep the page self-contained")
    cap = tag("figcaption", caption) if caption is not None else ""
    width = _png_width(data_uri)
    size = f' style="--w:{round(width * 0.8)}px"' if width else ""
    return tag("figure", join([Markup(f'<img src="{esc(data_uri)}" alt="{esc(alt)}"{size}>'), cap]))


def _png_width(data_uri: str) -> int | None:
    """The pixel width of a base64 PNG ``data:`` URI (its IHDR chunk), else None."""
    prefix = "data:image/png;base64,"
    if not data_uri.startswith(prefix):
        return None
    head = base64.b64decode(data_uri[len(prefix):len(prefix) + 32])
    return int.from_bytes(head[16:20], "big") if head[:8] == b"\x89PNG\r\n\x1a\n" else None


def svg_figure(svg: str, label: str, caption: Any = None) -> Markup:
    """Inline ``<svg>`` markup (from :func:`mm_align.report.plots.to_inline_svg`) as a figure.

    Inline rather than an ``<img>``: only an inline SVG's links navigate within the page.

    Raises:
        ValueError: ``svg`` is not an ``<svg>`` element or refers to anything outside the page.
    """
    if not svg.lstrip().startswith("<svg"):
        raise ValueError("expected an <svg> element")
    if re.search(r"""(?:href|src)\s*=\s*["'](?!#|data:)|url\(\s*["']?(?!#|data:)""", svg):
        raise ValueError("inline SVG must not refer outside the page (only #anchors, data:)")
    cap = tag("figcaption", caption) if caption is not None else ""
    body = Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{esc(label)}" ', 1))
    return tag("figure", join([body, cap]))


_CSS = """
:root { --ink:#1f2430; --muted:#5b6475; --line:#dfe3ea; --bg:#f6f7f9; --card:#fff;
        --accent:#2f5d9e; --warn-bg:#fff4e0; --warn:#8a5300; --info-bg:#eaf1fb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#1f2a3d; color:#fff; padding:24px 40px; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header .sub { color:#c5cedd; font-size:14px; }
nav { background:#fff; border-bottom:1px solid var(--line); padding:8px 40px; font-size:13px;
      position:sticky; top:0; z-index:10; }
nav a { color:var(--accent); margin-right:16px; text-decoration:none; }
main { max-width:1180px; margin:0 auto; padding:16px 40px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px;
          padding:8px 24px 20px; margin:20px 0; }
h2 { font-size:18px; margin:16px 0 12px; font-weight:600; }
h3 { font-size:15px; margin:18px 0 8px; color:var(--muted); font-weight:600; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; margin:8px 0; font-size:14px; }
caption { text-align:left; color:var(--muted); font-size:13px; padding-bottom:4px; }
th, td { border-bottom:1px solid var(--line); padding:6px 12px; text-align:left; vertical-align:top; }
th { background:#f0f2f6; font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
code { font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; color:#4a5568; }
.note { padding:10px 14px; border-radius:6px; margin:12px 0; }
.note.info { background:var(--info-bg); }
.note.warn { background:var(--warn-bg); color:var(--warn); border-left:4px solid #e0a030; }
.cards { display:flex; flex-wrap:wrap; gap:16px; margin:12px 0; }
.card { flex:1 1 200px; border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
.card .label { color:var(--muted); font-size:13px; }
.card .value { font-size:26px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .ci { color:var(--muted); font-size:13px; font-variant-numeric:tabular-nums; }
figure { margin:12px 0; }
figure img, figure svg { max-width:100%; height:auto; }
figure svg a:hover use, figure svg a:focus use { stroke:#000 !important;
                                                 stroke-width:2px !important; }
.table-tools { display:flex; flex-wrap:wrap; gap:8px 12px; align-items:center; margin:8px 0; }
.table-tools input { flex:1 1 220px; font:inherit; padding:4px 8px; border:1px solid var(--line);
                     border-radius:4px; }
.table-tools .count { color:var(--muted); font-size:13px; }
.table-tools button { font:inherit; font-size:13px; padding:4px 10px; border:1px solid var(--line);
                      border-radius:4px; background:#f0f2f6; cursor:pointer; }
[data-interactive] th { cursor:pointer; }
[data-interactive] th[aria-sort=ascending]::after { content:" ▲"; }
[data-interactive] th[aria-sort=descending]::after { content:" ▼"; }
tr[id] { scroll-margin-top:56px; }  /* lands below the sticky nav bar */
tr:target { background:#fff3bf; outline:2px solid #e0a030; }
figcaption { color:var(--muted); font-size:13px; }
.thumb { width:96px; height:96px; object-fit:contain; background:#eef0f4; border-radius:4px;
         display:flex; align-items:center; justify-content:center; color:var(--muted);
         font-size:11px; text-align:center; }
.thumb.small { width:64px; height:64px; }
.sample-text { max-width:560px; font-size:13px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:16px; }
/* Narrow screens (phones): less padding, and figures keep a readable size (about 80 % of
   their drawn size, --w) and pan sideways instead of shrinking their text to a few pixels. */
@media (max-width: 700px) {
  header, nav { padding-left:12px; padding-right:12px; }
  nav { white-space:nowrap; overflow-x:auto; }  /* one line of links that pans */
  main { padding:8px 8px 32px; }
  section { padding:4px 12px 12px; }
  figure { overflow-x:auto; }
  figure img[style] { max-width:none; width:var(--w); }
  figure svg { max-width:none; }
  figcaption { position:sticky; left:0; max-width:calc(100vw - 50px); }
}
"""

_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$css</style>
</head>
<body>
<header><h1>$title</h1><div class="sub">$subtitle</div></header>
<nav>$nav</nav>
<main>
$body
</main>
<footer>$footer</footer>
$script
</body>
</html>
"""
)


def page(
    title: str,
    subtitle: Any,
    sections: Sequence[tuple[str, str, Markup]],
    footer: Any = "",
    script: str = "",
) -> str:
    """A complete HTML document.

    Args:
        sections: ``(anchor, nav label, section markup)``; the nav bar links the anchors.
        script: inline JavaScript run once the page is loaded (none by default).
    """
    nav = join(tag("a", label, href=f"#{anchor}") for anchor, label, _ in sections)
    return _PAGE.substitute(
        title=esc(title),
        subtitle=esc(subtitle),
        css=_CSS,
        nav=nav,
        body=join(s for _, _, s in sections),
        footer=esc(footer),
        script=f"<script>{script}</script>" if script else "",
    )


def save_page(path: Path, html: str) -> Path:
    """Write ``html`` to ``path`` through a temporary file: a reader never sees half a page,
    and an error names the page (:func:`mm_align.rundir.layout.write_atomic`)."""
    write_atomic(path, html)
    return path
