"""`pq fail` through the installed console script on both backends: the reason is stored beside
the last error (`pq show`, `--json`), and `pq stats` counts operator-failed jobs apart from those
still waiting for a person."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.admin.cli_support import Jobs
from tests.support import BIN, REPO

pytestmark = pytest.mark.process
TRACEBACK = "Traceback (most recent call last):\n  File \"iqr.py\", line 3, in run\nKeyError: 'vendor'"


def _pq(db_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")} | db_env
    done = subprocess.run([str(BIN / "pq"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def test_pq_fail__show_keeps_the_traceback_beside_the_reason(db_env: dict[str, str], jobs: Jobs) -> None:
    job_id = jobs.manual({"vendor": None}, error=TRACEBACK)

    _pq(db_env, "fail", str(job_id), "--reason", "partner sent a bad field")
    shown = _pq(db_env, "show", str(job_id)).stdout
    detail = json.loads(_pq(db_env, "show", str(job_id), "--json").stdout)

    assert "failed by an operator:\n  partner sent a bad field" in shown
    assert "last error:\n  Traceback (most recent call last):" in shown
    assert "KeyError: 'vendor'" in shown
    assert (detail["status"], detail["error"], detail["operator_reason"]) == (
        "manual_intervention",
        TRACEBACK,
        "partner sent a bad field",
    )
    assert detail["events"][-1]["message"] == "partner sent a bad field"


def test_pq_stats__operator_failed_apart_from_those_needing_a_person(db_env: dict[str, str], jobs: Jobs) -> None:
    jobs.manual(error=TRACEBACK)
    jobs.manual(error=TRACEBACK)
    decided = jobs.manual(error=TRACEBACK)
    _pq(db_env, "fail", str(decided), "--reason", "partner sent a bad field")

    data = json.loads(_pq(db_env, "stats", "--json").stdout)
    table = _pq(db_env, "stats").stdout.splitlines()

    assert data["totals"]["manual_intervention"] == 3
    assert data["manual_intervention"] == {"default": {"waiting_for_a_person": 2, "failed_by_an_operator": 1}}
    rows = {line.rsplit(maxsplit=2)[0].strip(): line.split()[-2:] for line in table if line.startswith("manual:")}
    assert rows == {"manual: needs a person": ["2", "2"], "manual: failed by an operator": ["1", "1"]}


def test_pq_cancel__a_crashed_job_keeps_its_traceback_beside_the_reason(db_env: dict[str, str], jobs: Jobs) -> None:
    job_id = jobs.crashed({"vendor": None}, error=TRACEBACK)

    _pq(db_env, "cancel", str(job_id), "--reason", "partner withdrew it")
    shown = _pq(db_env, "show", str(job_id)).stdout
    detail = json.loads(_pq(db_env, "show", str(job_id), "--json").stdout)

    assert "cancelled by an operator:\n  partner withdrew it" in shown
    assert "last error:\n  Traceback (most recent call last):" in shown
    assert (detail["status"], detail["error"], detail["operator_reason"]) == (
        "cancelled",
        TRACEBACK,
        "partner withdrew it",
    )


def test_pq_list__says_which_jobs_an_operator_failed_or_cancelled_and_why(db_env: dict[str, str], jobs: Jobs) -> None:
    waiting_for_a_person = jobs.manual(error=TRACEBACK)
    failed = jobs.manual(error=TRACEBACK)
    cancelled = jobs.crashed(error=TRACEBACK)
    _pq(db_env, "fail", str(failed), "--reason", "partner sent a bad field")
    _pq(db_env, "cancel", str(cancelled), "--reason", "partner withdrew it")

    listed = _pq(db_env, "list").stdout.splitlines()
    row = {int(line.split()[0]): line for line in listed[1:]}

    assert "failed by an operator: partner sent a bad field · KeyError: 'vendor'" in row[failed]
    assert "cancelled by an operator: partner withdrew it · KeyError: 'vendor'" in row[cancelled]
    assert "by an operator" not in row[waiting_for_a_person] and "KeyError: 'vendor'" in row[waiting_for_a_person]
