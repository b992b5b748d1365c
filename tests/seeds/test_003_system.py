"""Document 003, the producer / consumer / admin / dashboard system, in its own words, under a real
supervisord (supervisord.conf as `make run` uses it): a producer generates a random file and
submits it every 5 seconds; a consumer stamps each file (a timestamp line prepended) and updates
its status; the admin CLI lists, resubmits and marks jobs failed; the ops dashboard shows the
statuses and a job's details."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.e2e.system import System
from tests.support import BIN, REPO, wait_until

pytestmark = [pytest.mark.process, pytest.mark.e2e, pytest.mark.timeout(300)]

DASHBOARD = REPO / "ops_dashboard" / "app.py"


@pytest.fixture
def system(db_env: dict[str, str]) -> Iterator[System]:
    """supervisord with the document's producer and consumer: files to stamp. The directory is a
    short one under /tmp (supervisord's socket lives there)."""
    root = Path(tempfile.mkdtemp(prefix="pq-003-"))
    database = {} if "PQ_DB_SCHEMA" not in db_env else {k: db_env[k] for k in ("PQ_DATABASE_URL", "PQ_DB_SCHEMA")}
    running = System(root / "s", {**database, "PQ_DEMO_KIND": "files", "PQ_ALGORITHM": "consumer.algorithms.stamp:run"})
    try:
        yield running.start()
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


def pq(system: System, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "pq"), *args], env=system.env, cwd=system.home, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def jobs(system: System, status: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{system.url}/jobs", params={"status": status}, timeout=30).json()["jobs"]
    return found


def inbox(system: System) -> Path:
    return system.home / "var" / "inbox"


def test_producer_every_5s__consumer_stamps__admin_lists_resubmits_marks_failed__dashboard_shows(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Supervisor manages the processes; the producer of random files is its demo_feeder.
    system.ctl("start", "demo_feeder")
    status = system.ctl("status")
    for program in ("producer", "consumer", "ops_dashboard", "demo_feeder"):
        assert any(line.split()[:2] == [program, "RUNNING"] for line in status.splitlines()), status
    wait_until(lambda: len(jobs(system, "processed")) >= 2, timeout=120, what="two files stamped")
    system.ctl("stop", "demo_feeder")
    assert "every 5.0s" in system.logs("demo_feeder")

    # The consumer prepended a timestamp line to each file and recorded it.
    for done in jobs(system, "processed"):
        job = system.job(done["id"])
        stamped = (inbox(system) / job["payload"]["file"]).read_text().splitlines()
        assert stamped[0] == job["result"]["stamp"]
        datetime.fromisoformat(stamped[0])
        assert len(stamped) > 1

    # Admin: list; a job whose file is missing fails its attempts; resubmit it once the file is there.
    listed = pq(system, "list", "--status", "processed")
    assert all(str(done["id"]) in listed for done in jobs(system, "processed"))
    missing = int(pq(system, "enqueue", json.dumps({"file": "late.txt"})).strip())
    wait_until(lambda: system.job(missing)["status"] == "manual_intervention", timeout=120, what="attempts spent")
    assert "does not exist" in system.job(missing)["error"]
    (inbox(system) / "late.txt").write_text("arrived late\n")
    pq(system, "resubmit", str(missing))
    wait_until(lambda: system.job(missing)["status"] == "processed", timeout=120, what="the resubmitted job")
    assert (inbox(system) / "late.txt").read_text().endswith("\narrived late\n")

    # Admin: mark a waiting job failed; it never runs.
    pq(system, "pause")
    (inbox(system) / "held.txt").write_text("never stamped\n")
    held = int(pq(system, "enqueue", json.dumps({"file": "held.txt"})).strip())
    pq(system, "mark-failed", str(held), "--reason", "operator: not wanted")
    pq(system, "resume")
    shown = system.job(held)
    assert (shown["status"], shown["operator_reason"]) == ("manual_intervention", "operator: not wanted")
    assert (inbox(system) / "held.txt").read_text() == "never stamped\n"
    assert "manual_intervention" in pq(system, "show", str(held))

    # The ops dashboard: served under Supervisor, and showing the statuses and a job's details.
    wait_until(system.dashboard_answers, timeout=120, what="the dashboard to answer")
    for name, value in {**system.env, "PQ_HOME": str(system.home)}.items():
        if name.startswith("PQ_"):
            monkeypatch.setenv(name, value)
    app = AppTest.from_file(str(DASHBOARD), default_timeout=60)
    app.run()
    app.number_input(key="job_id").set_value(held).run()
    assert not app.exception, [e.message for e in app.exception]
    assert f"Job {held} · manual_intervention" in [h.value for h in app.subheader]
    [table] = [
        frame.value for frame in app.dataframe if "status" in frame.value.columns and "id" in frame.value.columns
    ]
    assert {"processed", "manual_intervention"} <= set(table["status"])
