"""pq-run's parts that need no running system: what it says about a program's failed start,
the banner's addresses, and the policy lines."""

from __future__ import annotations

from pathlib import Path

import pqueue
from launcher.briefing import policy_lines, where
from launcher.watching import Troubles
from pqueue import QueueInfo


def test_troubles__a_program_that_exits_has_its_fatal_line_said_once(tmp_path: Path) -> None:
    troubles = Troubles(tmp_path)  # pq-run starts before any program writes
    log = tmp_path / "consumer.log"
    log.write_text(
        "2026-12-07 09:16:40,001 INFO consumer event=starting\n"
        "pq-consumer: PQ_ALGORITHM='nope:run': importing nope failed: ModuleNotFoundError: No module named 'nope'\n"
    )
    exited = "2026-12-07 09:16:47,645 WARN exited: consumer (exit status 1; not expected)"

    assert troubles.on_line("2026-12-07 09:16:48,649 INFO spawned: 'consumer' with pid 5878") == []
    assert troubles.on_line(exited) == [
        "  consumer: pq-consumer: PQ_ALGORITHM='nope:run': importing nope failed: "
        "ModuleNotFoundError: No module named 'nope'"
    ]
    assert troubles.on_line(exited) == [], "a crash loop says its cause once"
    assert troubles.on_line("2026-12-07 09:17:47,645 INFO gave up: consumer entered FATAL state, too many") == [
        "  consumer gave up after repeated failed starts: see var/log/consumer.log"
    ]


def test_troubles__the_producers_port_error_is_taken_from_uvicorns_log(tmp_path: Path) -> None:
    troubles = Troubles(tmp_path)
    (tmp_path / "producer.log").write_text(
        "2026-12-07 09:00:00,000 INFO producer database /x/var/pqueue.db opened\n"
        "2026-12-07 09:00:00,100 ERROR uvicorn.error [Errno 98] error while attempting to bind on address "
        "('127.0.0.1', 8000): address already in use\n"
        "2026-12-07 09:00:00,200 INFO uvicorn.error Waiting for application shutdown.\n"
    )
    said = troubles.on_line("WARN exited: producer (exit status 3; not expected)")
    assert said == [
        "  producer: 2026-12-07 09:00:00,100 ERROR uvicorn.error [Errno 98] error while attempting to bind on "
        "address ('127.0.0.1', 8000): address already in use"
    ]


def test_troubles__a_line_an_earlier_start_wrote_is_never_said_as_the_cause(tmp_path: Path) -> None:
    log = tmp_path / "consumer.log"
    log.write_text(
        "2026-12-07 13:09:42,059 WARNING consumer event=finished job=3 status=manual_intervention "
        "error=\"ValueError: readings[0] has no 'vendor'\"\n"
    )
    troubles = Troubles(tmp_path)  # this start begins here
    exited = "2026-12-07 13:10:40,098 WARN exited: consumer (exit status 1; not expected)"

    assert troubles.on_line(exited) == [], "nothing this start wrote says why"
    with log.open("a") as more:
        more.write("pq-consumer: PQ_LEASE_SECONDS='x' is not a number\n")
    assert troubles.on_line(exited) == ["  consumer: pq-consumer: PQ_LEASE_SECONDS='x' is not a number"]


def test_troubles__a_program_killed_by_a_signal_is_said_killed_not_given_its_logs_last_line(tmp_path: Path) -> None:
    (tmp_path / "consumer.log").write_text("2026-12-07 13:09:42,059 ERROR consumer event=old\n")
    troubles = Troubles(tmp_path)
    with (tmp_path / "consumer.log").open("a") as more:
        more.write("2026-12-07 13:10:35,000 INFO consumer event=running job=4\n")

    said = troubles.on_line("2026-12-07 13:10:40,098 WARN exited: consumer (terminated by SIGKILL; not expected)")

    assert said == ["  consumer was killed by SIGKILL; Supervisor starts it again"]


def test_banner__https_when_the_intake_serves_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    settings = pqueue.load_settings(home=tmp_path, tls_certfile=cert, tls_keyfile=key, producer_port=8443)
    lines = where(settings, tmp_path / "supervisord.conf")
    assert "  API        https://127.0.0.1:8443/jobs" in lines
    assert "  dashboard  http://127.0.0.1:8501" in lines


def test_policy_lines__a_new_queue_and_a_stored_one_with_a_setting_it_overrules(tmp_path: Path) -> None:
    settings = pqueue.load_settings(home=tmp_path, job_timeout=5)
    assert policy_lines(settings, None) == [
        "queue default: 1 seat, 3 attempts, 5s job timeout (a timed-out job is not retried), 30s lease, "
        "10s retry backoff "
        "(new: the consumer stores these at its first start)"
    ]
    stored = QueueInfo("default", 1, True, 3, 3600.0, 30.0, 10.0, timeout_retries=1)
    assert policy_lines(settings, stored) == [
        "queue default: 1 seat, 3 attempts, 1h job timeout (1 timeout retry), 30s lease, 10s retry backoff "
        "(stored in the database; `pq queue set default` changes it)",
        "queue default is paused: nothing runs until `pq resume --queue default`",
        "not applied: PQ_JOB_TIMEOUT=5 is overruled by queue 'default''s stored job_timeout 3600 "
        "(`pq queue set default --timeout 5` changes it for every host)",
    ]
