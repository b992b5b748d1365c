"""The real thing: `pq-dashboard` on a free port, driven by headless Chromium through Playwright."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from pqueue import PersistentQ
from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, shown_metrics, start_dashboard
from tests.dashboard.seed import Seeded
from tests.programs import Programs
from tests.support import IN_CI, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# Streamlit's table draws on a canvas: rows are ROW_HEIGHT pixels below a header row of the
# same height, with the selection checkbox in the first CHECKBOX_X pixels.
ROW_HEIGHT = 35
CHECKBOX_X = 18


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing: the browser test must run in CI (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
def dashboard_url(db_env: dict[str, str], seeded: Seeded, programs: Programs) -> str:
    """pq-dashboard against the seeded database."""
    return start_dashboard(programs, db_env, programs.logs / "dashboard.log")[1]


def _click_job_row(page: Page, job_id: int) -> None:
    """Tick the row of job_id in the job table (found through the grid's accessible rows)."""
    table = page.locator(".st-key-jobs_table").get_by_test_id("stDataFrame")
    table.locator("tr").nth(1).wait_for(state="attached")
    texts = table.locator("tr").all_inner_texts()
    found = [i for i, text in enumerate(texts) if re.match(rf"\s*{job_id}\s*[a-z_]+", text)]
    assert found, f"job {job_id} is not among the table's visible rows: {texts}"
    index = found[0]
    box = table.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + CHECKBOX_X, box["y"] + ROW_HEIGHT * index + ROW_HEIGHT / 2)


def test_browser__shows_counts_and_opens_a_job(
    chromium: Path, dashboard_url: str, seeded: Seeded, tmp_path: Path
) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.goto(dashboard_url)
            page.get_by_test_id("stMetric").first.wait_for(timeout=60_000)
            wait_until(lambda: len(shown_metrics(page)) == 7, timeout=30, what="seven metrics")
            shown = shown_metrics(page)
            assert (shown["waiting"], shown["running"], shown["processed (1h)"]) == ("4", "1", "3")
            assert (shown["failed runs (1h)"], shown["needs a person"]) == ("2", "1")

            _click_job_row(page, seeded.crashed)
            page.get_by_text(f"Job {seeded.crashed} · crashed").wait_for(timeout=30_000)
            page.get_by_test_id("stCode").filter(has_text="ValueError: bad reading").wait_for()
            page.get_by_role("button", name="Requeue", exact=True).wait_for()

            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()


def test_browser__partners_panel_and_a_jobs_partner(
    chromium: Path, dashboard_url: str, store: PersistentQ, seeded: Seeded
) -> None:
    store.add_partner("acme", weight=2)
    acme_job = store.put_item({"vendor": "acme"}, partner="acme")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.goto(dashboard_url)
            page.get_by_text("partners (2)").wait_for(timeout=60_000)
            panel = page.get_by_test_id("stExpander").filter(has_text="partners (2)").get_by_test_id("stDataFrame")
            panel.locator("tr").nth(2).wait_for(state="attached")
            rows = [
                [cell.strip() for cell in row.locator("th, td").all_inner_texts()] for row in panel.locator("tr").all()
            ]
            header = [cell for cell in rows[0] if cell]  # the grid may add an unnamed first column
            assert header[:5] == ["partner", "weight", "waiting", "running", "seat time (1 hour)"], rows
            acme, default = ([cell for cell in row if cell][:4] for row in rows[1:3])
            assert acme == ["acme", "2", "1", "0"], rows
            assert default == ["default", "1", "4", "1"], rows  # 3 unprocessed, 1 crashed awaiting its retry

            _click_job_row(page, acme_job)
            page.get_by_text(f"Job {acme_job} · unprocessed").wait_for(timeout=30_000)
        finally:
            browser.close()
