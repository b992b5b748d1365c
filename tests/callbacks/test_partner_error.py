"""A partner sees the exception's line of a failure; operators keep the traceback in `pq show`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from admin.cli import app as pq_app
from consumer.loading import describe_exception
from pqueue import Status
from pqueue.partner import partner_error
from tests.callbacks.partner import Partner
from tests.local_system import local_system
from tests.programs import Programs
from tests.support import wait_until

IQR_FAILURE = "ValueError: readings[0] has no 'vendor'"


def _traceback_of(function: Callable[..., object], *args: object) -> str:
    try:
        function(*args)
    except Exception as exc:  # noqa: BLE001 - any failure is what is being described
        return describe_exception(exc)
    raise AssertionError("expected a failure")


def _chained() -> None:
    row: dict[str, float] = {}
    try:
        row["vendor"]
    except KeyError as exc:
        raise ValueError("readings are bad:\nrow 3 has no value") from exc


def test_partner_error__a_traceback_gives_the_exception_lines_only() -> None:
    from consumer.algorithms import iqr

    stored = _traceback_of(iqr.run, {"readings": [{"value": 1}]})
    assert stored.startswith("Traceback") and "iqr.py" in stored
    assert partner_error(stored) == IQR_FAILURE
    assert partner_error(_traceback_of(_chained)) == "ValueError: readings are bad:\nrow 3 has no value"


def test_partner_error__an_error_that_is_not_a_traceback_is_kept() -> None:
    assert partner_error(None) is None
    assert partner_error("lease expired on attempt 3 of 3") == "lease expired on attempt 3 of 3"
    assert partner_error(" partner withdrew it\n") == "partner withdrew it"


def test_partner_error__an_exception_group_gives_its_inner_exception() -> None:
    def group() -> None:
        raise ExceptionGroup("several", [ValueError("readings[0] has no 'vendor'")])

    assert partner_error(_traceback_of(group)) == IQR_FAILURE


@pytest.mark.process
@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_failed_job__callback_and_get_job_carry_one_line_and_pq_show_the_traceback(
    db_env: dict[str, str], partner: Partner, programs: Programs, tmp_path: Path
) -> None:
    env = {**db_env, "PQ_ALGORITHM": "consumer.algorithms.iqr:run", "PQ_MAX_ATTEMPTS": "1"}
    with local_system(programs, env, tmp_path / "logs") as system:
        submitted = httpx.post(
            f"{system.url}/jobs", json={"payload": {"readings": [{"value": 1}]}, "callback_url": partner.url()}
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        [request] = wait_until(partner.requests, timeout=120, what="the failure's callback")
        answer = httpx.get(f"{system.url}/jobs/{job_id}").json()

    body = json.loads(request.body)
    assert (body["id"], body["status"], body["error"]) == (job_id, Status.MANUAL_INTERVENTION, IQR_FAILURE)
    assert (answer["status"], answer["error"]) == (Status.MANUAL_INTERVENTION, IQR_FAILURE)
    for seen in (request.body.decode(), json.dumps(answer)):
        assert "Traceback" not in seen and 'File "' not in seen and "/consumer/" not in seen

    shown = CliRunner().invoke(pq_app, ["show", str(job_id)], env=db_env, prog_name="pq")
    assert shown.exit_code == 0, shown.output
    assert "Traceback (most recent call last)" in shown.stdout and "algorithms/iqr.py" in shown.stdout
    assert IQR_FAILURE in shown.stdout
