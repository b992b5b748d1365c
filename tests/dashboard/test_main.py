"""`pq-dashboard` starts Streamlit bound where the settings say, with usage statistics off."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ops_dashboard.__main__ import APP, parse_args, streamlit_args
from pqueue import load_settings
from tests.support import BIN


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def streamlit_for(settings_argv: list[str], **settings: object) -> list[str]:
    parsed = parse_args(load_settings(**settings), settings_argv)
    return streamlit_args(parsed.host, parsed.port)


def test_args__bind_loopback_by_default_and_send_no_statistics() -> None:
    args = streamlit_for([])
    assert args[:2] == ["run", str(APP)] and Path(args[1]).is_file()
    assert option(args, "--server.address") == "127.0.0.1"
    assert option(args, "--server.port") == "8501"
    assert option(args, "--browser.gatherUsageStats") == "false"
    assert option(args, "--server.headless") == "true"


def test_args__follow_dashboard_host_and_port() -> None:
    args = streamlit_for([], dashboard_host="0.0.0.0", dashboard_port=9123)
    assert (option(args, "--server.address"), option(args, "--server.port")) == ("0.0.0.0", "9123")


def test_args__command_line_overrides_settings() -> None:
    args = streamlit_for(["--host", "127.0.0.2", "--port", "9124"], dashboard_port=9123)
    assert (option(args, "--server.address"), option(args, "--server.port")) == ("127.0.0.2", "9124")


def test_main__help_prints_usage_and_exits() -> None:
    done = subprocess.run(
        [str(BIN / "pq-dashboard"), "--help"], env={"PATH": str(BIN)}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: pq-dashboard") and "--port" in done.stdout


def test_main__bad_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "pq-dashboard")],
        env={"PATH": str(BIN), "PQ_DASHBOARD_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr == "pq-dashboard: PQ_DASHBOARD_PORT='eighty' is not an integer\n"
