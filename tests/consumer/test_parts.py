"""The consumer's small parts: algorithm loading, error text, log lines, exit descriptions, waiting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import pytest

from consumer.channel import Channel
from consumer.loading import (
    TRACEBACK_LINES,
    AlgorithmUnavailable,
    call_algorithm,
    describe_exception,
    load_algorithm,
    parse_spec,
    wants_settings,
)
from consumer.logs import format_event
from consumer.messages import Forked, Payload
from consumer.processes import HasFileno, describe_exit, readable, wait_readable


@pytest.mark.parametrize("spec", ["", "module", "module:", ":run", "a.b:not-a-name", "a.b:run:x"])
def test_parse_spec__refuses_anything_but_module_colon_function(spec: str) -> None:
    with pytest.raises(AlgorithmUnavailable, match="is not 'module:function'"):
        parse_spec(spec)


def test_load_algorithm__finds_the_function_and_names_what_is_missing() -> None:
    assert load_algorithm("consumer.algorithms.add:run")({"a": 1, "b": 2}) == {"sum": 3}
    with pytest.raises(AlgorithmUnavailable, match="importing nowhere.at_all failed: ModuleNotFoundError"):
        load_algorithm("nowhere.at_all:run")
    with pytest.raises(AlgorithmUnavailable, match="consumer.algorithms.add has no function nothing"):
        load_algorithm("consumer.algorithms.add:nothing")


def test_wants_settings__only_when_the_function_takes_a_second_argument() -> None:
    def one(payload: Any) -> None: ...
    def two(payload: Any, settings: Any) -> None: ...
    def optional(payload: Any, settings: Any = None) -> None: ...
    def keyword_only(payload: Any, *, settings: Any = None) -> None: ...

    assert [wants_settings(f) for f in (one, two, optional, keyword_only)] == [False, True, True, False]


def test_call_algorithm__passes_settings_when_given_and_reports_json_text() -> None:
    assert call_algorithm(lambda p: {"x": p}, 1, None) == ("ok", '{"x": 1}')
    assert call_algorithm(lambda p, s: [p, s], 1, "S") == ("ok", '[1, "S"]')
    kind, text = call_algorithm(lambda p: float("nan"), 1, None)
    assert kind == "error" and text.startswith("TypeError: the algorithm's result is not JSON")


def test_call_algorithm__system_exit_is_an_error_too() -> None:
    def leave(payload: Any) -> None:
        raise SystemExit(4)

    kind, text = call_algorithm(leave, None, None)
    assert kind == "error" and text.splitlines()[-1] == "SystemExit: 4"


def test_describe_exception__keeps_the_tail_ending_with_the_exception() -> None:
    def nested(n: int) -> None:
        if n == 0:
            raise KeyError("root")
        try:
            nested(n - 1)
        except KeyError as exc:
            raise KeyError(f"level {n}") from exc

    try:
        nested(20)
    except KeyError as exc:
        text = describe_exception(exc)
    lines = text.splitlines()
    assert lines[0] == "…" and len(lines) == TRACEBACK_LINES + 1
    assert lines[-1] == "KeyError: 'level 20'"


def test_format_event__one_line_with_the_job_and_quoted_values() -> None:
    line = format_event("finished", 42, status="crashed", error="ValueError: bad\nline", seconds=1.5, extra=None)
    assert line == 'event=finished job=42 status=crashed error="ValueError: bad\\nline" seconds=1.5 extra=-'
    assert format_event("started", worker="vm:12:ab") == "event=started job=- worker=vm:12:ab"


def test_describe_exit__says_code_or_signal() -> None:
    assert describe_exit(3 << 8) == "exited with code 3"
    assert describe_exit(signal.SIGSEGV) == "was killed by SIGSEGV (signal 11)"
    assert describe_exit(0) == "exited with code 0"


def test_wait_readable__returns_what_has_data_or_hung_up_and_nothing_after_the_timeout() -> None:
    ours, theirs = socket.socketpair()
    ours_conn, theirs_conn = Connection(ours.detach()), Connection(theirs.detach())
    read_end, write_end = os.pipe()
    both: list[int | HasFileno] = [ours_conn, read_end]
    try:
        started = time.monotonic()
        assert wait_readable(both, 0.05) == []
        assert time.monotonic() - started >= 0.04
        assert not readable(ours_conn)
        theirs_conn.send("hello")
        os.write(write_end, b"!")
        assert sorted(wait_readable(both, None), key=id) == sorted(both, key=id)
        assert ours_conn.recv() == "hello"
        assert wait_readable(both, 0) == [read_end]
        theirs_conn.close()  # the other end going away counts as readable: the read says EOF
        assert readable(ours_conn)
        with pytest.raises(EOFError):
            ours_conn.recv()
    finally:
        ours_conn.close()
        os.close(read_end)
        os.close(write_end)


def test_channel__carries_messages_of_any_size_and_a_descriptor() -> None:
    ours, theirs = socket.socketpair()
    channel, other = Channel(ours), Channel(theirs)
    big = {"readings": list(range(20_000))}  # sent in more than one piece
    read_end, write_end = os.pipe()
    try:
        channel.send(Forked(42))
        channel.send_fd(write_end)
        channel.send(big)
        assert other.recv() == Forked(42)
        passed = other.recv_fd()
        assert other.recv() == big
        os.write(passed, b"through the passed descriptor")
        os.close(passed)
        assert os.read(read_end, 100) == b"through the passed descriptor"
        other.send(Payload(7, big))
        match channel.recv():
            case Payload(job_id, payload):
                assert (job_id, payload) == (7, big)
            case unexpected:
                pytest.fail(f"not a Payload: {unexpected!r}")
        other.close()
        with pytest.raises(EOFError):
            channel.recv()
    finally:
        channel.close()
        os.close(read_end)
        os.close(write_end)


def test_helper__imports_neither_multiprocessing_nor_threading() -> None:
    """Each job process is forked from the helper: threading's at-fork hook would run in every one."""
    check = "import sys, consumer.helper; print(sorted({'multiprocessing', 'threading'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
