"""Make docs/dashboard.png: an hour of made-up traffic, the dashboard on it, one job opened.

    .venv/bin/python -m tests.dashboard.screenshot docs/dashboard.png

Time is moved with the store's clock_offset (as the library's tests do), so the hour of history
takes seconds to write. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

import pqueue
from pqueue import PersistentQ, Status
from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, start_dashboard
from tests.programs import stop_program

VENDORS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne"]
WORKER = "consumer-host1-4242"


def _one_job(store: PersistentQ, rng: random.Random) -> None:
    vendor = rng.choice(VENDORS)
    store.put_item({"vendor": vendor, "readings": [round(rng.gauss(10, 3), 2) for _ in range(5)]})
    job = store.get_item(WORKER)  # the new job, or an earlier crash whose retry came due
    assert job is not None
    job_id = job.id
    run = rng.lognormvariate(2.3, 0.4)
    store.clock_offset += timedelta(seconds=run)
    if rng.random() < 0.08:
        store.update_status(
            job_id,
            Status.CRASHED,
            lease_id=job.lease_id,
            error="Traceback (most recent call last):\n"
            f'  File "iqr.py", line 41, in run\nValueError: no readings for vendor {vendor!r}',
        )
    else:
        store.update_status(job_id, Status.PROCESSED, lease_id=job.lease_id, result={"vendor": vendor, "outliers": []})


def seed_history(store: PersistentQ, rng: random.Random) -> int:
    """About an hour of jobs, one at a time as the license allows, ending now."""
    store.clock_offset = -timedelta(minutes=62)
    while store.clock_offset < -timedelta(minutes=1):
        _one_job(store, rng)
        store.clock_offset += timedelta(seconds=rng.expovariate(1 / 25))
    store.clock_offset = timedelta(0)
    failed = store.put_item({"vendor": "initech", "readings": []}, max_attempts=1, priority=-1)
    claim = store.get_item(WORKER)
    assert claim is not None and claim.id == failed
    store.update_status(
        failed,
        Status.CRASHED,
        lease_id=claim.lease_id,
        error="Traceback (most recent call last):\n  File \"iqr.py\", line 22, in run\nKeyError: 'readings'",
    )
    return failed


def main(target: str) -> None:
    with tempfile.TemporaryDirectory(prefix="pq-screenshot-") as home:
        shoot(Path(home), str(Path(target).resolve()))


def shoot(home: Path, target: str) -> None:
    """Seed a database under home, start the dashboard on it, and save the page to target."""
    rng = random.Random(7)
    settings = pqueue.load_settings(home=home, retry_backoff_seconds=3600, job_timeout=600)
    store = pqueue.connect(settings=settings, migrate=True)
    store.register_worker(WORKER, kind="consumer", queue="default", host="host1", pid=4242)
    failed = seed_history(store, rng)
    env = {"PQ_HOME": str(home), "PQ_JOB_TIMEOUT": "600"}
    process, url = start_dashboard(None, env, home / "dashboard.log")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 2300})
            page.goto(url)
            page.get_by_test_id("stMetric").first.wait_for(timeout=60_000)
            page.get_by_test_id("stSelectbox").first.click()
            page.get_by_role("option", name="2 s").click()
            running = None
            for _ in range(12):  # a burst arrives while the page refreshes: the depth line rises
                for _burst in range(rng.randint(1, 4)):
                    store.put_item({"vendor": rng.choice(VENDORS), "readings": [1.5, 2.5, 40.0]})
                if running is None:
                    running = store.get_item(WORKER)
                else:
                    store.heartbeat(running.id, running.lease_id)
                store.touch_worker(WORKER)
                time.sleep(2)
            opener = page.locator(".st-key-job_id input")
            opener.fill(str(failed))
            opener.press("Enter")
            opener.blur()
            page.get_by_text(f"Job {failed} · manual_intervention").wait_for(timeout=30_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=target, full_page=True)
            browser.close()
    finally:
        stop_program(process)
        store.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png")
