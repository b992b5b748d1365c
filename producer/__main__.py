"""`pq-producer` / `python -m producer`: serve the intake with uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
from types import FrameType

import uvicorn

from pqueue import PQError, Settings, load_settings, setup_logging
from producer.app import create_app

log = logging.getLogger("producer")


def parse_args(settings: Settings, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pq-producer", description="HTTP intake: stores every request before it acknowledges it."
    )
    parser.add_argument(
        "--host", default=settings.producer_host, help="address to listen on (PQ_PRODUCER_HOST, default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=settings.producer_port, help="port to listen on (PQ_PRODUCER_PORT, default 8000)"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request (off: only rejections)")
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def startup_problem(settings: Settings, host: str, keys_exist: bool = False) -> str | None:
    """Why the intake must not start with these settings, or None."""
    return settings_problem(settings) or exposure_problem(settings, host, keys_exist)


def settings_problem(settings: Settings) -> str | None:
    """A TLS setting that cannot work (checked before the database is opened)."""
    if bool(settings.tls_certfile) != bool(settings.tls_keyfile):
        return "set both PQ_TLS_CERTFILE and PQ_TLS_KEYFILE to serve HTTPS (only one is set)"
    for name, path in (("PQ_TLS_CERTFILE", settings.tls_certfile), ("PQ_TLS_KEYFILE", settings.tls_keyfile)):
        if path is not None and not path.expanduser().is_file():
            return f"{name}={path} is not a readable file"
    return None


def exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM or SIGINT outside uvicorn's own handling (while the database opens, and when uvicorn
    raises the signal again after its graceful shutdown): exit 0, so Supervisor logs a clean stop
    ("stopped: producer (exit status 0)"), not "terminated by SIGTERM"."""
    raise SystemExit(0)


def exposure_problem(settings: Settings, host: str, keys_exist: bool) -> str | None:
    """An open intake (no key and no PQ_API_TOKEN) on an address others can reach."""
    if not is_loopback(host) and not settings.api_token and not keys_exist and not settings.allow_insecure:
        return (
            f"refusing to listen on {host} without PQ_API_TOKEN or a partner key: anyone who can reach it "
            "could submit jobs. Set PQ_API_TOKEN or create a key (`pq key create`), listen on 127.0.0.1, "
            "or set PQ_ALLOW_INSECURE=1 if the network is trusted"
        )
    return None


def main(argv: list[str] | None = None) -> None:
    """Check the settings, open the database (patiently), and serve until SIGTERM."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, exit_cleanly)
    try:
        settings = load_settings()
    except PQError as exc:
        sys.exit(f"pq-producer: {exc}")
    args = parse_args(settings, argv)
    setup_logging(settings)
    problem = settings_problem(settings)
    if problem:
        sys.exit(f"pq-producer: {problem}")
    try:
        app = create_app(settings)
        keys_exist = app.state.intake.store.keys_required()
    except PQError as exc:
        sys.exit(f"pq-producer: {exc}")
    problem = exposure_problem(settings, args.host, keys_exist)
    if problem:
        app.state.intake.close()
        sys.exit(f"pq-producer: {problem}")
    tls = {}
    if settings.tls_certfile and settings.tls_keyfile:
        tls = {
            "ssl_certfile": str(settings.tls_certfile.expanduser()),
            "ssl_keyfile": str(settings.tls_keyfile.expanduser()),
        }
    scheme = "https" if tls else "http"
    log.info(
        "intake listening on %s://%s:%d (%s)",
        scheme,
        args.host,
        args.port,
        "keys required" if settings.api_token or keys_exist else "open: no key exists and PQ_API_TOKEN is not set",
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,  # keep setup_logging's one-line format
        access_log=args.access_log,
        server_header=False,
        **tls,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
