"""Every code block of README.md and docs/*.md runs, and shows what it prints, so the docs cannot
drift: Python blocks in an empty directory, console and shell blocks against a running system
(pq-producer and pq-consumer on a SQLite file under tmp_path, on free ports). See
tests/docs/blocks.py for how blocks are read and compared."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.blocks import (
    DATA_KINDS,
    PAGES,
    PICTURE_KINDS,
    RUN_KINDS,
    Block,
    Command,
    blocks,
    commands,
    matches,
)
from tests.local_system import LocalSystem, local_system
from tests.programs import Programs, stop_program
from tests.support import BIN, free_port, wait_until

ALL = [block for page in PAGES for block in blocks(page)]
# Every block that is not run, by page and first line, with the reason its mark gives: a block
# marked not-run (or unmarked) elsewhere fails test_not_run_blocks__are_exactly_these.
NOT_RUN = {
    ("README.md", "make run     # start the whole system on SQLite: producer, consumer, adder, dashboard"),
    ("README.md", "export PQ_DATABASE_URL=postgresql+psycopg://pqueue:secret@db.internal:5432/pqueue"),
    ("architecture.md", "export PQ_HOME=$(mktemp -d) PQ_LEASE_SECONDS=4 PQ_RETRY_BACKOFF_SECONDS=0 \\"),
    ("architecture.md", "scripts/test tests/faults -rA | grep figures"),
    ("architecture.md", "psql -c \"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (standby1, standby2)'\""),
    ("architecture.md", 'touch "$PGDATA/standby.signal"      # it starts in recovery: read-only, whatever it had'),
    ("consumer.md", "pq-consumer                 # run until SIGTERM / SIGINT (what Supervisor runs)"),
    ("dashboard.md", "pq-dashboard                                  # what Supervisor runs"),
    ("dashboard.md", ".venv/bin/pytest tests/dashboard -n 2"),
    ("producer.md", "pq-producer                       # or: python -m producer"),
    ("producer.md", "pq-demo-feeder                          # or: python -m producer.demo"),
    ("producer.md", "PQ_HOME=/tmp/bench .venv/bin/pq migrate"),
    ("relay.md", 'pq-relay                        # feeds PQ_RELAY_QUEUE ("remote") to RabbitMQ at PQ_AMQP_URL'),
    ("seeds.md", "PQ_TLS_CERTFILE=intake.pem PQ_TLS_KEYFILE=intake.key PQ_CALLBACK_SECRET=s3cret make run"),
    ("seeds.md", "PQ_DEMO_KIND=files PQ_ALGORITHM=consumer.algorithms.stamp:run make run"),
    ("seeds.md", 'pq-relay --backlog 100 --wait-for-go &         # "a backlog of 100 work-units were created"'),
}
# The system the console blocks run against: quick retries so a failing job reaches
# manual_intervention in a moment, and the callback secret the README's receiver checks.
SYSTEM_ENV = {"PQ_RETRY_BACKOFF_SECONDS": "0.1", "PQ_CALLBACK_BACKOFF_SECONDS": "0.2", "PQ_CALLBACK_SECRET": "s3cret"}
DOC_PORTS = ("8000", "9000")  # the intake's port in the docs, and the README's partner's
READ_ONLY = re.compile(r"^(curl -s [^-]|(\S*/)?pq (list|show|stats|workers)\b)")
COMMAND_SECONDS = 60


def _first_line(block: Block) -> tuple[str, str]:
    return block.page.name, block.body.splitlines()[0]


def _run_pages() -> list[Path]:
    return [page for page in PAGES if any(b.kind in RUN_KINDS and not b.not_run for b in blocks(page))]


def test_every_block_says_what_it_is() -> None:
    known = RUN_KINDS | DATA_KINDS | PICTURE_KINDS
    unlabelled = [block.where for block in ALL if block.kind not in known]
    assert not unlabelled, f"give these blocks one of {sorted(known)} after the ```: {unlabelled}"
    marked_wrongly = [block.where for block in ALL if block.not_run is not None and block.kind not in RUN_KINDS]
    assert not marked_wrongly, f"only runnable blocks can be not-run: {marked_wrongly}"
    assert all(block.not_run for block in ALL if block.not_run is not None), "a not-run mark says why"


def test_not_run_blocks__are_exactly_these() -> None:
    found = {_first_line(block): block.not_run for block in ALL if block.not_run is not None}
    assert set(found) == NOT_RUN, "a block is not run that this test does not list (or no longer is)"


def test_json_blocks__parse() -> None:
    for block in (b for b in ALL if b.kind == "json"):
        try:
            json.loads(block.body)
        except ValueError:
            for line in block.body.splitlines():  # JSON Lines: one document a line
                json.loads(line)


@pytest.mark.process
@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", _run_pages(), ids=lambda page: page.name)
def test_page__every_block_runs_and_shows_what_it_prints(page: Path, programs: Programs, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with contextlib.ExitStack() as stack:
        system: LocalSystem | None = None
        ports = {"8000": "8000", "9000": str(free_port())}
        for block in blocks(page):
            if block.not_run or block.kind not in RUN_KINDS:
                continue
            if block.file:
                (workdir / block.file).write_text(block.body)
            elif block.kind == "python":
                _run_python(block, tmp_path)
            else:
                if system is None:
                    system = stack.enter_context(_system(programs, tmp_path))
                    ports["8000"] = str(system.port)
                env = {**system.env, "PYTHONPATH": str(workdir)}
                for command in _commands(block):
                    text = re.sub(rf"(?<=[:= ])({'|'.join(DOC_PORTS)})\b", lambda m: ports[m[1]], command.text)
                    text = text.replace(".venv/bin/", f"{BIN}/")
                    if command.background:
                        stack.enter_context(_background(programs, block, text, env, workdir))
                    else:
                        _run_command(block, Command(text, command.shown), env, workdir)


def _commands(block: Block) -> list[Command]:
    if block.kind == "console":
        return commands(block)
    return [Command(block.body)]  # a bash / sh block: one script, nothing shown


@contextlib.contextmanager
def _system(programs: Programs, tmp_path: Path) -> Iterator[LocalSystem]:
    home = tmp_path / "home"
    env = {"PQ_HOME": str(home), "PQ_DATABASE_URL": f"sqlite:///{home / 'var' / 'pqueue.db'}", **SYSTEM_ENV}
    base = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    env = {**base, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with local_system(programs, env, tmp_path / "logs") as system:
        yield system


def _run_python(block: Block, tmp_path: Path) -> None:
    """A Python block as a newcomer runs it: a script in a new empty directory, no PQ_* set."""
    directory = tmp_path / f"python-{block.line}"
    directory.mkdir()
    (directory / "block.py").write_text(block.body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    done = subprocess.run(
        [str(BIN / "python"), "block.py"], cwd=directory, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{block.where} failed:\n{done.stdout}{done.stderr}"


def _run_command(block: Block, command: Command, env: dict[str, str], workdir: Path) -> None:
    """Run a command; it must succeed and print what is shown under it. A read (curl GET, pq
    list/show/stats) is run again until it does, as a person would look again a moment later."""
    outcomes: list[tuple[bool, str]] = []

    def run_once() -> bool:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command.text],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_SECONDS,
            start_new_session=True,
        )
        ok = done.returncode == 0 and (not command.shown or matches(command.shown, done.stdout))
        outcomes.append((ok, f"exit {done.returncode}:\n{done.stdout}"))
        return ok

    if command.shown and READ_ONLY.match(command.text):
        with contextlib.suppress(AssertionError):
            wait_until(run_once, timeout=COMMAND_SECONDS, interval=0.2)
    else:
        run_once()
    ok, printed = outcomes[-1]
    shown = "\n".join(command.shown) or "(nothing shown: it must succeed)"
    assert ok, f"{block.where}: `{command.text}`\nthe docs show:\n{shown}\nit printed ({printed})"


@contextlib.contextmanager
def _background(programs: Programs, block: Block, text: str, env: dict[str, str], workdir: Path) -> Iterator[None]:
    """A `... &` command: started in its own session, waited for until its --port listens (when
    it names one), and stopped with its process group when the page is done."""
    log = workdir / f"background-{block.line}.log"
    process = programs.start(["bash", "-c", text], env=env, log=log, cwd=workdir)
    try:
        port = re.search(r"--port (\d+)", text)
        if port:
            wait_until(lambda: _listening(int(port[1])), timeout=30, what=f"{block.where}: `{text}` to listen")
        yield
    finally:
        stop_program(process)
        with contextlib.suppress(ProcessLookupError):  # what it started in the background (`… &`) too
            os.killpg(process.pid, signal.SIGKILL)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_shown_output__loose_only_where_output_varies() -> None:
    assert matches(["id  age  last", "1   49s  ok"], "id  age    last\n1   1m 3s  ok")  # tables realign
    assert matches(['{"a":1,...}'], '{"a":1,"b":2}') and matches(["at 2025-01-31 09:02:11Z"], "at 2026-12-03 07:23:38Z")
    assert not matches(['{"a":1,...}'], '{"a":2,"b":2}')
    assert not matches(["q1 1.75"], "q1 1.76") and not matches(["job 2"], "job 1") and not matches(["ok"], "ok!")


def test_console_commands__continuation_lines_notes_and_background() -> None:
    body = '$ curl -s x \\\n    -d \'{"a":\n     1}\'\n{"id":1}\n# a note, not output\n$ pq-x --port 9 &   # bg\n'
    first, second = commands(Block(page=PAGES[0], line=1, kind="console", body=body))
    assert first.text.count("\n") == 2 and first.shown == ['{"id":1}'] and not first.background
    assert second.shown == [] and second.background


def test_tools_the_docs_use__are_installed() -> None:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    assert not missing, f"the docs' commands need {missing}: install them (apt-get install {' '.join(missing)})"
