"""`pq-dashboard`: start Streamlit on ops_dashboard/app.py, bound to PQ_DASHBOARD_HOST:PORT."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pqueue import Settings, SettingsError, load_settings, setup_logging

APP = Path(__file__).resolve().parent / "app.py"
log = logging.getLogger("ops_dashboard")


def streamlit_args(settings: Settings) -> list[str]:
    """`streamlit run` with the address set explicitly and nothing phoned home."""
    return [
        "run",
        str(APP),
        "--server.address",
        settings.dashboard_host,
        "--server.port",
        str(settings.dashboard_port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # A deployed dashboard does not reload itself when files change.
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        # Errors reach the page as one line (the app catches them); never a traceback.
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "viewer",
    ]


def main() -> None:
    """Console script entry point."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"pq-dashboard: {exc}\n")
        raise SystemExit(2) from None
    setup_logging(settings)
    log.info("dashboard on http://%s:%d", settings.dashboard_host, settings.dashboard_port)
    from streamlit.web import cli

    cli.main(args=streamlit_args(settings), prog_name="streamlit")


if __name__ == "__main__":
    main()
