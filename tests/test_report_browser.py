"""The report in a real headless browser: it loads offline without console errors, every
figure is drawn at a visible size, and a scatter point leads to its sample's row.

Needs Playwright (the ``dev`` extra) and a system Chromium (Debian: ``apt-get install
chromium``; set ``MM_ALIGN_CHROMIUM`` to use another binary). Without either the tests skip
and say which is missing: browsers that Playwright downloads itself are not used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mm_align.report import write_report
from tests.runfactory import make_run

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
CHROMIUM = os.environ.get("MM_ALIGN_CHROMIUM") or shutil.which("chromium")
if not CHROMIUM or not Path(CHROMIUM).is_file():
    pytest.skip(
        "no Chromium binary (apt-get install chromium, or set MM_ALIGN_CHROMIUM)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


class Visit:
    """A page opened from disk with every request outside it blocked and recorded."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport=VIEWPORT)
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)
        self.page.goto(path.as_uri(), wait_until="load")

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()


def _runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    return {
        "full": make_run(root / "full", n=30, controls=["shuffled", "rotate90"]),
        "bare": make_run(root / "bare", n=6, layers=False, images=False, n_errors=0),
    }


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    return {name: write_report(run) for name, run in _runs(tmp_path_factory).items()}


@pytest.mark.parametrize("name", ["full", "bare"])
def test_report_loads_offline_and_shows_every_figure(browser, reports, name):
    visit = Visit(browser, reports[name])
    page = visit.page
    figures = page.locator("figure > img, figure > svg")
    # pipeline, histograms, spectra, scatter; with a sweep and controls: layers, two bar charts
    assert figures.count() == {"full": 7, "bare": 4}[name]
    for k in range(figures.count()):
        fig = figures.nth(k)
        fig.scroll_into_view_if_needed()
        box = fig.bounding_box()
        label = fig.get_attribute("alt") or fig.get_attribute("aria-label")
        assert fig.is_visible() and box and box["width"] > 100 and box["height"] > 100, label
        assert box["width"] <= VIEWPORT["width"], f"{label} overflows the page"
        if fig.evaluate("e => e.tagName") == "IMG":
            assert fig.evaluate("e => e.complete && e.naturalWidth > 0"), f"{label} not decoded"
    thumbs = page.locator("img.thumb")
    for k in range(thumbs.count()):
        assert thumbs.nth(k).evaluate("e => e.complete && e.naturalWidth > 0")
    assert visit.errors == []
    assert visit.outside == []
    page.close()


_COVERED_POINTS = """svg => [...svg.querySelectorAll("a")].filter(a => {
    const r = a.getBoundingClientRect();
    const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    return !(hit && hit.closest("a"));  // grid lines or axes on top would take the click
}).map(a => a.getAttribute("href"))"""


def test_scatter_points_are_clickable_and_lead_to_their_rows(browser, reports):
    page = Visit(browser, reports["full"]).page
    svg = page.locator("figure > svg")
    svg.scroll_into_view_if_needed()
    assert svg.evaluate(_COVERED_POINTS) == []
    point = page.locator("figure > svg a").nth(7)
    href = point.get_attribute("href")
    assert href == "#sample-7"
    point.click(timeout=5000)
    page.wait_for_function(f"location.hash === '{href}'")
    row = page.locator(f"tr{href}")
    box = row.bounding_box()
    nav = page.locator("nav").bounding_box()
    # the row is scrolled into view, below the sticky navigation bar
    assert box and nav["height"] <= box["y"] and box["y"] + box["height"] <= VIEWPORT["height"]
    assert "s007" in row.inner_text()
    page.close()


@pytest.mark.slow
def test_sweep_report_loads_offline_with_its_trend_and_member_links(browser, tmp_path, tiny_checkpoints):
    """A real sweep's page: the trend and per-layer figures drawn, no page-wide overflow from
    the wide members table, and every member link opens that member's own report."""
    import mm_align

    out = tmp_path / "sweep"
    for step in (1, 2):
        shutil.copytree(tiny_checkpoints["llava"], tmp_path / f"ckpt-{step}")
    mm_align.sweep(str(tmp_path / "ckpt-*"), "data/sample", out, limit=3, n_boot=20, layers="all",
                   metrics="rankme", progress=False)
    visit = Visit(browser, out / "report.html")
    page = visit.page
    figures = page.locator("figure > img, figure > svg")
    assert figures.count() == 2  # the trend, the per-layer curves
    for k in range(figures.count()):
        box = figures.nth(k).bounding_box()
        assert box and 100 < box["width"] <= VIEWPORT["width"] and box["height"] > 100
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    links = page.locator("#members table a")
    assert links.count() == 2
    for k in range(2):
        target = (out / links.nth(k).get_attribute("href")).resolve()
        assert target.is_file() and target.parent.parent == (out / "members").resolve()
    assert visit.errors == [] and visit.outside == []
    page.close()


def _column(page, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "[data-interactive] tbody tr:not([hidden])", f"rows => rows.map(r => r.cells[{index}].textContent.trim())")


def test_per_sample_table_sorts_searches_and_downloads(browser, reports, tmp_path):
    import csv
    import json

    visit = Visit(browser, reports["full"])
    page = visit.page
    results = [json.loads(line) for line in (reports["full"].parent / "results.jsonl").read_text().splitlines()]
    align = {r["id"]: r["image_text_alignment"] for r in results}
    wrap = page.locator("[data-interactive] .table-wrap")
    assert wrap.evaluate("e => e.scrollHeight <= e.clientHeight + 1")  # no scroll box of its own
    header = page.locator("[data-interactive] th", has_text="Alignment")
    header.click()
    ids = _column(page, 1)
    assert ids == sorted(ids, key=align.get) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert _column(page, 1) == sorted(ids, key=align.get, reverse=True)
    page.locator("[data-interactive] th", has_text="Id").click()
    assert _column(page, 1) == sorted(ids)
    search = page.locator("[data-interactive] input[type=search]")
    search.fill("s01")
    assert _column(page, 1) == [i for i in sorted(ids) if "s01" in i] and len(_column(page, 1)) == 10
    assert page.locator("[data-interactive] .count").inner_text() == f"10 of {len(ids)} rows"
    with page.expect_download() as info:
        page.locator("[data-interactive] button", has_text="Download CSV").click()
    path = tmp_path / "rows.csv"
    info.value.save_as(path)
    assert info.value.suggested_filename == "per-sample.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [r["Id"] for r in rows] == [i for i in sorted(ids) if "s01" in i]
    assert list(rows[0]) == ["Id", "eRank3 image", "eRank4 text", "Alignment", "Text"]
    for r in rows:
        assert float(r["Alignment"]) == pytest.approx(align[r["Id"]], abs=5e-4)
    search.fill("")
    assert len(_column(page, 1)) == len(ids)
    assert visit.errors == [] and visit.outside == []
    page.close()


def test_report_at_phone_width_keeps_figures_readable(browser, reports, tmp_path):
    """At 390 px the page does not overflow, figures keep 80 % of their drawn size (they pan
    sideways) and the screenshot is kept for a person to look at."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(reports["full"].as_uri(), wait_until="load")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    images = page.locator("figure > img")
    for k in range(images.count()):
        img = images.nth(k)
        shown, natural = img.evaluate("e => [e.getBoundingClientRect().width, e.naturalWidth]")
        assert shown == pytest.approx(0.8 * natural, abs=1), img.get_attribute("alt")
    svg = page.locator("figure > svg")
    assert svg.bounding_box()["width"] > 390  # the scatter keeps its size and pans
    page.locator("#distributions figure").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "phone.png"))
    shot = os.environ.get("MM_ALIGN_SCREENSHOT")
    if shot:
        shutil.copy(tmp_path / "phone.png", shot)
    page.close()
