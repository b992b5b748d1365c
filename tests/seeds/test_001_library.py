"""Document 001, the persistent-queue library, in its own words: its pseudo code runs as a script
(docs/seeds.md) on a fresh database, and `pqueue.persistentQ` does what each of its calls says,
over the real library (whose get_item() and update_status(id, status) need nothing more)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import pqueue
from pqueue import InvalidInput, InvalidTransition, LeaseLost, PersistentQ
from pqueue.original import Consumer, Manager, Producer, persistentQ
from tests.seeds.documents import code_blocks, document, script
from tests.support import BIN

Config = dict[str, Any]

# The lines of 001's code blocks the script changes (each marked `# 001:` there), and the prose
# its consumer block holds between its code lines.
CHANGED = {
    'pq = persistentQ({name: "db_name", type: "sqlite"})',
    'q = persistentQ({name: "db_name", type: "sqlite"})',
    "id = pq.put_item(item:str)",
}
PROSE = (
    "Questions to answer:",
    "# How do we know if there are items in the Q?",
    "q.get_item() checks the no. of records in the Q,",
    "The consumer sleep(10) and try q.get_item() unless the process is terminated",
)


@pytest.fixture
def config(backend: str, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """What persistentQ is given for a fresh test database; PQ_* of the test in the environment."""
    for name, value in db_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PQ_RETRY_BACKOFF_SECONDS", "0")
    if backend == "sqlite":
        return {"name": str(tmp_path / "db_name"), "type": "sqlite"}
    return {"type": "postgresql", "url": db_env["PQ_DATABASE_URL"]}


@pytest.fixture
def opened() -> Any:
    handles: list[Any] = []
    yield handles
    for handle in handles:
        handle.close()


@pytest.fixture
def open_q(config: Config, opened: list[Any]) -> Callable[..., Any]:
    def open_one(kind: type[persistentQ] = persistentQ) -> Any:
        handle = kind(config)
        opened.append(handle)
        return handle

    return open_one


# -- the script --------------------------------------------------------------------------------


def test_script__holds_every_line_of_code_of_001_unchanged_but_the_marked_ones() -> None:
    lines = {re.split(r"  # (001|here):", line)[0].strip() for line in script("001").splitlines()}
    marked = [line for line in script("001").splitlines() if "# 001:" in line]
    code = [line.strip() for block in code_blocks(document("001"), "python") for line in block.splitlines()]
    code = [line for line in code if line and not line.startswith(PROSE)]
    missing = [line for line in code if line not in lines and line not in CHANGED]
    assert not missing, f"001's lines the script lost: {missing}"
    assert len(marked) >= len(CHANGED), "each change is marked"


@pytest.mark.process
@pytest.mark.timeout(120)
def test_script__runs_as_a_newcomer_runs_it(backend: str, db_env: dict[str, str], tmp_path: Path) -> None:
    text = script("001")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    if backend == "postgresql":  # the same script, pointed at the test's schema
        text = text.replace('{"name": "db_name", "type": "sqlite"}', f'{{"url": "{db_env["PQ_DATABASE_URL"]}"}}')
        env["PQ_DB_SCHEMA"] = db_env["PQ_DB_SCHEMA"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "script.py").write_text(text)
    done = subprocess.run(
        [str(BIN / "python"), "script.py"], cwd=work, env=env, capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "report-2024-01.csv",
        "report-2024-02.csv",
        "1 processed 1 report-2024-01.csv",
        "2 processed 1 report-2024-02.csv",
        "3 crashed 1 report-2024-03.csv",
        "1 left",
    ]
    assert (work / "db_name").exists() == (backend == "sqlite")


# -- persistentQ, call by call -------------------------------------------------------------------


def test_persistentq__creates_the_queue_and_hands_items_out_in_order(open_q: Callable[..., Any]) -> None:
    producer, consumer = open_q(Producer), open_q(Consumer)
    assert consumer.get_item() == (None, None)
    first = producer.put_item("file-1")
    producer.put_item({"file": "file-2"})
    assert consumer.get_item() == (first, "file-1")
    assert consumer.update_status(first, "processed") == "processed"
    item_id, item = consumer.get_item()
    assert item == {"file": "file-2"}
    items = producer.get_all_items()
    assert [(i["id"], i["item"], i["status"], i["submission_count"]) for i in items] == [
        (first, "file-1", "processed", 1),
        (item_id, {"file": "file-2"}, "under_process", 1),
    ]
    assert {"timestamp", "started_at", "finished_at", "result", "error", "queue"} <= items[0].keys()
    assert producer.get_all_items("under_process") == items[1:]


def test_state_diagram__crashed_goes_back_while_submission_count_is_under_3(open_q: Callable[..., Any]) -> None:
    q = open_q()
    item_id = q.put_item("flaky")
    seen = []
    for _ in range(3):
        got, _item = q.get_item()
        assert got == item_id
        seen.append(q.update_status(item_id, "crashed"))
    assert seen == ["crashed", "crashed", "manual_intervention"]
    assert q.get_item() == (None, None)
    assert q.get_all_items()[0]["submission_count"] == 3


def test_update_status__an_unknown_word_is_one_clear_error_and_changes_nothing(open_q: Callable[..., Any]) -> None:
    q = open_q()
    item_id = q.put_item("x")
    q.get_item()
    before = q.get_all_items(), q.store.events(item_id)
    with pytest.raises(InvalidInput, match="'DONE' is not an outcome; use processed, crashed"):
        q.update_status(item_id, "DONE")
    assert (q.get_all_items(), q.store.events(item_id)) == before
    assert q.update_status(item_id, "processed") == "processed"  # the handle still holds its lease


def test_update_q__the_manager_moves_an_orphan_and_puts_failed_items_back(open_q: Callable[..., Any]) -> None:
    worker, manager = open_q(Consumer), open_q(Manager)
    orphan = worker.put_item("orphan")
    worker.get_item()  # and the worker dies
    with pytest.raises(InvalidTransition, match="update_q needs an orphan, and its lease runs until"):
        manager.update_q(orphan, "crashed")  # its lease still runs: the worker may be alive
    manager.store.clock_offset = timedelta(seconds=manager.store.settings.lease_seconds * 2)
    assert manager.update_status(orphan, "crashed") == "crashed"  # the Manager's update_status is update_q
    assert manager.update_q(orphan, "manual_intervention") == "manual_intervention"
    assert manager.update_q(orphan, "unprocessed") == "unprocessed"
    assert manager.update_q(orphan, "cancelled") == "cancelled"
    with pytest.raises(InvalidInput, match="the manager moves an item to crashed, unprocessed"):
        manager.update_q(orphan, "processed")
    events = [(e.from_status, e.to_status, e.actor) for e in manager.store.events(orphan)][2:]
    assert events == [
        ("under_process", "crashed", "manager"),
        ("crashed", "manual_intervention", "manager"),
        ("manual_intervention", "unprocessed", "manager"),
        ("unprocessed", "cancelled", "manager"),
    ]


@pytest.mark.parametrize("duration", [3600, timedelta(hours=1), "1h", "60m"])
def test_purge__takes_a_duration_and_a_status_word(open_q: Callable[..., Any], duration: Any) -> None:
    q = open_q()
    done, failed = q.put_item("done"), q.put_item("failed")
    for status in ("processed", "crashed"):
        item_id, _ = q.get_item()
        q.update_status(item_id, status)
    q.update_q(failed, "cancelled")
    assert q.purge(duration, status="processed") == 0  # finished just now
    q.store.clock_offset = timedelta(hours=2)
    assert q.purge(duration, status="processed") == 1
    assert [i["id"] for i in q.get_all_items()] == [failed]
    assert q.purge(duration, status=["processed", "cancelled"]) == 1
    assert done not in [i["id"] for i in q.get_all_items()]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"name": "x", "type": "mysql"}, "'mysql' is not a database type; use sqlite or postgresql"),
        ({"name": "x", "typ": "sqlite"}, "unknown key 'typ'; use name, type, url"),
        ({"name": ""}, "name: must be a non-empty string"),
        ("db_name", 'expected {"name": ..., "type": "sqlite"}'),
    ],
)
def test_persistentq__a_bad_configuration_is_one_clear_error(bad: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("{", r"\{").replace("(", r"\(")):
        persistentQ(bad)


def test_bad_arguments__one_clear_error(open_q: Callable[..., Any]) -> None:
    q = open_q()
    with pytest.raises(InvalidInput, match="item: must not be None"):
        q.put_item(None)
    with pytest.raises(InvalidInput, match="'a week' is not a duration"):
        q.purge("a week", status="processed")
    with pytest.raises(InvalidInput, match="is not a job status"):
        q.purge(0, status="DONE")
    assert q.get_all_items() == []


def test_ellipsis__means_the_queue_opened_before(open_q: Callable[..., Any], opened: list[Any]) -> None:
    first = open_q()
    first.put_item("x")
    for same in (persistentQ(...), persistentQ({...})):
        opened.append(same)
        assert same.db_info == first.db_info and len(same.get_all_items()) == 1


# -- the real library's two defaults -------------------------------------------------------------


def test_get_item_without_a_worker_id__claims_as_this_process_registered(q: PersistentQ) -> None:
    job_id = q.put_item({"n": 1})
    job = q.get_item()
    assert job is not None and job.id == job_id and job.worker_id == f"{os.uname().nodename}:{os.getpid()}"
    (worker,) = q.workers()
    seen = (worker.id, worker.kind, worker.pid, worker.current_job_id)
    assert seen == (job.worker_id, "library", os.getpid(), job_id)
    assert q.get_item() is None
    q.close()
    assert pqueue.connect(settings=q.settings).workers() == []  # a closed handle leaves the registry


def test_update_status_without_a_lease__uses_this_handles_claim(make_queue: Callable[..., PersistentQ]) -> None:
    mine, other = make_queue(), make_queue()
    job_id = mine.put_item("x")
    mine.get_item()
    with pytest.raises(InvalidInput, match=f"lease_id: this handle did not claim job {job_id}.*pass lease_id="):
        other.update_status(job_id, "processed")
    assert other.get_job(job_id).status == "under_process"
    done = mine.update_status(job_id, "processed", result={"ok": True})
    assert (done.status, done.result) == ("processed", {"ok": True})
    with pytest.raises(InvalidInput, match="pass lease_id="):
        mine.update_status(job_id, "processed")  # the claim is over


def test_update_status_without_a_lease__a_lost_lease_is_still_refused(make_queue: Callable[..., PersistentQ]) -> None:
    slow, rescuer = make_queue(), make_queue(retry_backoff_seconds=0)
    job_id = slow.put_item("x")
    slow.get_item("slow-worker")
    rescuer.clock_offset = timedelta(seconds=slow.settings.lease_seconds * 2)
    assert rescuer.rescue_expired() == [(job_id, "crashed")]
    newer = rescuer.get_item("next-worker")
    assert newer is not None and newer.id == job_id
    with pytest.raises(LeaseLost):
        slow.update_status(job_id, "processed")
    assert rescuer.get_job(job_id).status == "under_process"
    assert rescuer.update_status(job_id, "processed").status == "processed"
