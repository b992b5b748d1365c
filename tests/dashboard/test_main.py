"""`pq-dashboard` starts Streamlit bound where the settings say, with usage statistics off."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ops_dashboard.__main__ import APP, streamlit_args
from pqueue import load_settings
from tests.support import BIN


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_args__bind_loopback_by_default_and_send_no_statistics() -> None:
    args = streamlit_args(load_settings())
    assert args[:2] == ["run", str(APP)] and Path(args[1]).is_file()
    assert option(args, "--server.address") == "127.0.0.1"
    assert option(args, "--server.port") == "8501"
    assert option(args, "--browser.gatherUsageStats") == "false"
    assert option(args, "--server.headless") == "true"


def test_args__follow_dashboard_host_and_port() -> None:
    args = streamlit_args(load_settings(dashboard_host="0.0.0.0", dashboard_port=9123))
    assert (option(args, "--server.address"), option(args, "--server.port")) == ("0.0.0.0", "9123")


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
