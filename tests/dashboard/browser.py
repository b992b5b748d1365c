"""What the browser tests share: headless Chromium's path and flags, the real `pq-dashboard`
started the one way (tests/programs.py) and waited for, and the page's metrics as shown."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from playwright.sync_api import Page

from tests.programs import Process, Programs, start_program, wait_healthy
from tests.support import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HEALTH = "/_stcore/health"  # Streamlit's own


def start_dashboard(programs: Programs | None, env: Mapping[str, str], log: Path) -> tuple[Process, str]:
    """pq-dashboard on a free port, answering its health check; the process and its URL. Without
    `programs` (a script, not a test) the caller stops it."""
    port = free_port()
    full = {**env, "PQ_DASHBOARD_PORT": str(port)}
    if programs is None:
        process = start_program("pq-dashboard", full, log)
    else:
        process = programs.start("pq-dashboard", env=full, log=log)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, path=HEALTH, log_path=log)
    return process, url


def shown_metrics(page: Page) -> dict[str, str]:
    """The page's metrics, label to value, as they are drawn."""
    shown = {}
    for metric in page.get_by_test_id("stMetric").all():
        label = metric.get_by_test_id("stMetricLabel").inner_text().strip()
        shown[label] = metric.get_by_test_id("stMetricValue").inner_text().strip()
    return shown
