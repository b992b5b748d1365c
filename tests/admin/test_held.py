"""`pq show` and `pq list` on a job a consumer holds to start next in its seat (PQ_CLAIM_AHEAD):
it is still `unprocessed` in the database, and pq says who holds it, behind which job, since when."""

from __future__ import annotations

from datetime import datetime

from pqueue import PersistentQ, Status
from tests.admin.cli_support import Jobs, Pq, as_json


def test_show__a_held_job_says_by_whom_behind_which_job_and_since_when(pq: Pq, jobs: Jobs) -> None:
    running, held = jobs.held({"vendor": "acme"})

    result = pq("show", str(held))

    assert result.exit_code == 0, result.output
    assert "unprocessed (held)" in result.stdout
    assert f"held by consumer worker-1 to start right after job {running.id} (since 20" in result.stdout
    plain = pq("show", str(running.id))
    assert "held" not in plain.stdout, "the running job is not held"


def test_show__json_of_a_held_job_has_held_with_worker_job_and_time(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    running, held = jobs.held()

    shown = as_json(pq("show", str(held), "--json"))

    assert shown["status"] == "unprocessed" and shown["attempts"] == 0
    assert list(shown)[-1] == "held"
    assert shown["held"]["worker_id"] == "worker-1"
    assert shown["held"]["behind_job"] == running.id
    held_at = datetime.fromisoformat(shown["held"]["held_at"])
    assert abs((held_at - q.now()).total_seconds()) < 60
    assert "held" not in as_json(pq("show", str(running.id), "--json"))


def test_list__marks_a_held_job_and_only_it(pq: Pq, jobs: Jobs) -> None:
    running, held = jobs.held()
    other = jobs.waiting()

    rows = {line.split()[0]: line for line in pq("list").stdout.splitlines()[1:]}
    assert "unprocessed (held)" in rows[str(held)]
    assert "(held)" not in rows[str(other)] and "(held)" not in rows[str(running.id)]

    listed = {job["id"]: job for job in as_json(pq("list", "--json"))}
    assert listed[held]["held"] == {
        "worker_id": "worker-1",
        "behind_job": running.id,
        "held_at": listed[held]["held"]["held_at"],
    }
    assert "held" not in listed[other] and "held" not in listed[running.id]


def test_show_and_list__a_lapsed_hold_is_no_longer_shown(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    running, held = jobs.held()
    q.update_status(running.id, Status.PROCESSED, lease_id=running.lease_id)  # recorded alone: the hold lapses

    assert "held" not in pq("show", str(held)).stdout
    assert "held" not in as_json(pq("show", str(held), "--json"))
    assert all("held" not in job for job in as_json(pq("list", "--json")))
