"""`pq-dashboard`: start Streamlit on ops_dashboard/app.py, bound to PQ_DASHBOARD_HOST:PORT."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from pqueue import Settings, SettingsError, load_settings, setup_logging

APP = Path(__file__).resolve().parent / "app.py"
log = logging.getLogger("ops_dashboard")


def parse_args(settings: Settings, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pq-dashboard",
        description="The ops dashboard (Streamlit). It reads PQ_DATABASE_URL and the other PQ_* settings.",
    )
    parser.add_argument(
        "--host", default=settings.dashboard_host, help="address to listen on (PQ_DASHBOARD_HOST, default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=settings.dashboard_port, help="port to listen on (PQ_DASHBOARD_PORT, default 8501)"
    )
    return parser.parse_args(argv)


def streamlit_args(host: str, port: int) -> list[str]:
    """`streamlit run` with the address set explicitly and nothing phoned home."""
    return [
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
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


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> None:
    """Console script entry point: check the settings, then hand over to Streamlit."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"pq-dashboard: {exc}\n")
        raise SystemExit(2) from None
    args = parse_args(settings, argv)
    setup_logging(settings)
    if not _is_loopback(args.host) and not settings.dashboard_password:
        log.warning("listening on %s without PQ_DASHBOARD_PASSWORD: anyone who reaches it can act on jobs", args.host)
    log.info("dashboard on http://%s:%d", args.host, args.port)
    from streamlit.web import cli

    cli.main(args=streamlit_args(args.host, args.port), prog_name="streamlit")


if __name__ == "__main__":
    main()
