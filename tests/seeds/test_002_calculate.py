"""Document 002, the calculate service, in its own words: `GET /`, `GET /calculate/{number1}/{number2}`
and `GET /get_answer/{identifier}` with its three cases, over real HTTP against pq-producer and
the `adder` consumer exactly as supervisord.conf starts it (its own program, queue and algorithm)."""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.local_system import LocalSystem, local_system
from tests.programs import Programs, stop_program
from tests.support import REPO, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(180)]


def adder_program() -> tuple[list[str], dict[str, str]]:
    """supervisord.conf's `adder`: its command and the environment it adds."""
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read(REPO / "supervisord.conf")
    section = conf["program:adder"]
    env = dict(part.split("=", 1) for part in shlex.split(section["environment"].replace(",", " ")))
    return shlex.split(section["command"]), env


@pytest.fixture
def system(db_env: dict[str, str], programs: Programs, tmp_path: Path) -> Iterator[LocalSystem]:
    env = {**db_env, "PQ_RETRY_BACKOFF_SECONDS": "0.1"}
    with local_system(programs, env, tmp_path / "logs", consumer=False) as running:
        yield running


def get(system: LocalSystem, path: str) -> httpx.Response:
    return httpx.get(f"{system.url}{path}", timeout=30)


def answer(system: LocalSystem, identifier: int) -> dict[str, Any]:
    response = get(system, f"/get_answer/{identifier}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def calculations(system: LocalSystem) -> int:
    return len(get(system, "/jobs?queue=calculate").json()["jobs"])


def test_three_cases__404_please_wait_then_the_answer(system: LocalSystem, programs: Programs) -> None:
    index = get(system, "/")
    assert index.status_code == 200 and index.json()["message"].startswith("pqueue is running")

    created = get(system, "/calculate/2/3.5")
    assert created.status_code == 200, created.text
    identifier = created.json()["unique_identifier"]
    assert created.json()["payload"] == {"number1": 2, "number2": 3.5, "unique_identifier": identifier}

    missing = get(system, f"/get_answer/{identifier + 1000}")
    assert (missing.status_code, missing.json()) == (404, {"detail": "identifier does not exist"})
    waiting = answer(system, identifier)
    assert waiting["message"] == "please wait: the answer is not computed yet" and waiting["answer"] is None

    command, env = adder_program()
    assert command == ["pq-consumer", "--queue", "calculate"]
    adder = programs.start(command[0], *command[1:], env={**system.env, **env}, log="adder.log")
    try:
        wait_until(lambda: answer(system, identifier)["status"] == "processed", timeout=90, what="the answer")
        final = answer(system, identifier)
        assert (final["answer"], final["message"], final["number1"], final["number2"]) == (
            5.5,
            "answer computed",
            2,
            3.5,
        )
        job = get(system, f"/jobs/{identifier}").json()
        assert (job["queue"], job["result"]) == ("calculate", {"sum": 5.5})
    finally:
        stop_program(adder)


def test_only_calculations_have_answers(system: LocalSystem) -> None:
    other = httpx.post(f"{system.url}/jobs", json={"payload": {"number1": 1, "number2": 2}}, timeout=30).json()["id"]
    for identifier in (other, 12345):
        response = get(system, f"/get_answer/{identifier}")
        assert (response.status_code, response.json()) == (404, {"detail": "identifier does not exist"})
    for malformed in ("abc", "-1", "1.5", "99999999999999999999999"):
        response = get(system, f"/get_answer/{malformed}")
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "identifier", response.text


@pytest.mark.parametrize(
    ("path", "field"), [("/calculate/a/b", "number1"), ("/calculate/1/nan", "number2"), ("/calculate/inf/1", "number1")]
)
def test_bad_numbers__422_naming_the_field_and_nothing_stored(system: LocalSystem, path: str, field: str) -> None:
    response = get(system, path)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"{field}: ") and response.json()["errors"][0]["field"] == field
    assert calculations(system) == 0
