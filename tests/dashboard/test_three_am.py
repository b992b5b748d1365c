"""The dashboard as an operator finds it at 3 a.m., in headless Chromium at 1366x768 and
1920x1080: nothing an operator needs is cut, hidden off the edge, folded or missing on the first
look. Each check reads the page (an element's scrollWidth against its clientWidth, the text
shown); a screenshot of each state is saved beside the test's temp dir for a person to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, sync_playwright

from ops_dashboard.table import COLUMNS
from pqueue import PersistentQ
from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, shown_metrics, start_dashboard
from tests.dashboard.seed import ThreeAm, seed_three_am
from tests.programs import Programs
from tests.support import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# Every element under a root (itself included) whose text is wider than its box: cut or scrolled.
CUT = """root => [root, ...root.querySelectorAll('*')]
  .filter(el => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
  .map(el => `${el.tagName}: ${(el.innerText || el.textContent || '').slice(0, 80)}`)"""
# Every text of a chart (tick labels, axis titles, legend) that reaches past the chart's own box.
OUTSIDE = """root => { const box = root.getBoundingClientRect();
  return [...root.querySelectorAll('svg text')].filter(t => { const r = t.getBoundingClientRect();
    return r.width > 0 && (r.right > box.right + 1 || r.left < box.left - 1); }).map(t => t.textContent); }"""
# The width of the row-selection checkbox column the job table draws before its first column.
SELECT_COLUMN = 40


@pytest.fixture
def night(store: PersistentQ) -> ThreeAm:
    return seed_three_am(store)


@pytest.fixture
def night_url(db_env: dict[str, str], night: ThreeAm, programs: Programs) -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return start_dashboard(programs, db_env, programs.logs / "dashboard.log")[1]


def cut(element: Locator) -> list[str]:
    found: list[str] = element.evaluate(CUT)
    return found


def shoot(page: Page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


@pytest.mark.parametrize("viewport", [(1366, 768), (1920, 1080)], ids=["1366x768", "1920x1080"])
def test_three_am__nothing_cut_hidden_or_missing(
    viewport: tuple[int, int], night_url: str, night: ThreeAm, tmp_path: Path
) -> None:
    width, height = viewport
    shots = tmp_path / f"screens-{width}x{height}"
    shots.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(night_url)
            page.get_by_test_id("stMetric").first.wait_for(timeout=60_000)
            wait_until(lambda: len(shown_metrics(page)) == 7, timeout=30, what="seven metrics")
            _header(page, night)
            _charts(page)
            shoot(page, shots, "1-header-and-charts")
            _workers(page)
            shoot(page, shots, "2-workers")
            _job_table(page)
            shoot(page, shots, "3-job-table")
            _detail(page, night)
            shoot(page, shots, "4-failed-job")
            page.get_by_test_id("stCode").filter(has_text="row 1287").evaluate("e => e.scrollIntoView({block: 'end'})")
            shoot(page, shots, "4b-failed-job-last-error")
            _processed(page, night)
            shoot(page, shots, "5-processed-job")
        finally:
            browser.close()


def _header(page: Page, night: ThreeAm) -> None:
    """Every label, value and note whole; runs counted as runs; the red note read to its end."""
    shown = shown_metrics(page)
    assert (shown["failed runs (1h)"], shown["needs a person"]) == ("3", "2"), shown
    assert (shown["consumers"], shown["oldest waiting"]) == ("at risk", "15m")
    for metric in page.get_by_test_id("stMetric").all():
        assert cut(metric) == [], metric.inner_text()
    notes = {
        "note_consumers": f"job {night.running}: lease ",
        "note_gone": "3 of 4 registered are gone",
        "note_person": "requeue or fail",
        "note_operator_failed": "1 failed by an operator",
        "note_oldest": "15m ",
    }
    for key, beginning in notes.items():
        box = page.locator(f".st-key-{key}")
        assert box.inner_text().strip().startswith(beginning), (key, box.inner_text())
        assert cut(box) == [], key
    consumers = page.locator(".st-key-note_consumers").inner_text().strip()
    assert consumers.endswith(("expired", "s")), f"the red note read to its end: {consumers!r}"


def _charts(page: Page) -> None:
    """The waiting depth is drawn on the first look, with whole jobs on its axis; no tick label,
    axis title or legend label is cut at a chart's edge."""
    assert page.get_by_text("the line appears after").count() == 0
    charts = page.get_by_test_id("stVegaLiteChart")
    wait_until(lambda: charts.count() == 3, timeout=30, what="three charts")
    depth = [text.strip() for text in charts.nth(0).locator("svg text").all_text_contents()]
    assert "jobs waiting" in depth
    ticks = [text for text in depth if text.replace(".", "").isdigit()]
    assert ticks and all(text.isdigit() for text in ticks), f"whole jobs on the y-axis: {depth}"
    for n in range(3):
        assert charts.nth(n).evaluate(OUTSIDE) == [], f"chart {n}: text cut at its edge"
    legend = [text.strip() for text in charts.nth(1).locator("svg text").all_text_contents()]
    assert "manual_intervention" in legend, legend
    assert not [text for text in legend if text.endswith("…")], legend


def _workers(page: Page) -> None:
    """The panel's title says how many are gone, and each gone worker's row says so."""
    title = page.get_by_text("workers (1 alive, 3 gone)")
    title.click()
    panel = page.get_by_test_id("stExpander").filter(has_text="workers (1 alive, 3 gone)")
    table = panel.get_by_test_id("stDataFrame")
    table.locator("tr").nth(4).wait_for(state="attached")
    rows = table.locator("tr").all_inner_texts()[1:]
    assert "alive" in rows[0] and all("gone: not seen for" in row for row in rows[1:]), rows
    assert not [row for row in rows if "None" in row or ".000000" in row], rows
    panel.evaluate("e => e.scrollIntoView({block: 'start'})")


def _job_table(page: Page) -> None:
    """The error column comes right after the status, inside the table's visible width."""
    table = page.locator(".st-key-jobs_table")
    table.evaluate("e => e.scrollIntoView({block: 'start'})")
    header = [cell.strip() for cell in table.locator("tr").first.locator("th").all_inner_texts() if cell.strip()]
    assert header[:3] == ["id", "status", "error"], header
    visible = table.locator(".dvn-scroller").evaluate("e => e.clientWidth")
    widths = [COLUMNS[name]["width"] for name in ("id", "status", "error")]
    assert all(isinstance(width, int) for width in widths), widths
    right_edge = SELECT_COLUMN + sum(int(str(width)) for width in widths)
    assert right_edge <= visible, f"the error column ends at {right_edge} px of {visible} px shown"


def _open(page: Page, job_id: int, status: str) -> None:
    field = page.get_by_label("open job id")
    field.fill(str(job_id))
    field.press("Enter")
    page.get_by_text(f"Job {job_id} · {status}").wait_for(timeout=30_000)
    page.get_by_text(f"Job {job_id} · {status}").evaluate("e => e.scrollIntoView({block: 'start'})")


def _detail(page: Page, night: ThreeAm) -> None:
    """The operator's reason beside the whole traceback, wrapped; the payload open to its last
    value; no result said as such; the run's own length, not the time until the fail."""
    _open(page, night.failed, "manual_intervention")
    codes = page.get_by_test_id("stCode")
    reason = codes.filter(has_text="partner sent a bad field")
    error = codes.filter(has_text="row 1287 of the uploaded file)")
    error.wait_for(timeout=30_000)  # the page streams in: the subheader may come first
    assert reason.count() == error.count() == 1
    for block in (reason, error):
        assert cut(block) == [], block.inner_text()
    payload = page.get_by_test_id("stJson").first
    shown = payload.inner_text()
    assert '"n/a"' in shown and "12.5" in shown, f"the payload opens whole: {shown!r}"
    assert page.get_by_text("none: the job ended manual_intervention without one").count() == 1
    fields = page.locator(".st-key-job_fields")
    shown = fields.inner_text()
    assert "last run took 2s" in shown, f"its run took 2 s; the fail came ten minutes later: {shown!r}"
    assert cut(fields) == [], shown


def _processed(page: Page, night: ThreeAm) -> None:
    _open(page, night.processed, "processed")
    result = page.get_by_test_id("stJson").filter(has_text="outliers")
    result.wait_for(timeout=30_000)
    assert '"outliers"' in result.inner_text()
    assert page.get_by_text("none yet").count() == 0
