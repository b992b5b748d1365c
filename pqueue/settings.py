"""Every PQ_* setting, read once from the environment into one frozen object.

Programs call `load_settings()` at start and pass the result down; nothing else reads
`os.environ`. Each field's description is its one-line meaning in the README table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pqueue.errors import SettingsError
from pqueue.urls import database_url


class Settings(BaseSettings):
    """The configuration of every pqueue program."""

    model_config = SettingsConfigDict(env_prefix="PQ_", frozen=True, extra="ignore")

    home: Path = Field(Path("."), description="where var/ (database, logs, stamped files) lives")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL (postgresql+psycopg://… for PostgreSQL); "
        "default: SQLite file var/pqueue.db under PQ_HOME",
    )
    db_schema: str | None = Field(
        None, description="PostgreSQL schema holding pqueue's tables (several deployments, one DB)"
    )
    db_statement_timeout: float | None = Field(
        None,
        gt=0,
        description="seconds PostgreSQL lets one statement run (or a transaction sit idle) before it "
        "cancels it (default: PQ_LEASE_SECONDS/6, between 2 and 5)",
    )
    db_network_timeout: float | None = Field(
        None,
        gt=0,
        description="seconds a PostgreSQL connection may go unanswered before it counts as dead "
        "(connect timeout, TCP keepalives, tcp_user_timeout; default: PQ_LEASE_SECONDS/6, between 2 and 5)",
    )
    synchronous_commit: bool = Field(
        True,
        description="wait for every commit to reach the disk and, on PostgreSQL, any synchronous standby "
        "(0: faster, but a power cut or a failover may lose the last acknowledged jobs)",
    )
    queue: str = Field("default", description="queue the producer and consumer use by default")
    max_running: int = Field(1, ge=1, description="jobs allowed under_process at once, across all consumers (seats)")
    max_attempts: int = Field(3, ge=1, description="attempts before manual_intervention")
    job_timeout: float = Field(
        3600,
        gt=0,
        description="seconds before a running algorithm is killed (its job then waits in manual_intervention)",
    )
    lease_seconds: float = Field(30, gt=0, description="lease length; a consumer silent this long has lost its job")
    retry_backoff_seconds: float = Field(
        10, ge=0, description="base of the exponential backoff before a crashed job is retried"
    )
    timeout_retries: int = Field(
        0, ge=0, description="times a job that ran into the job timeout is run again (0: never)"
    )
    shutdown_grace: float = Field(30, ge=0, description="seconds a stopping consumer lets its job finish")
    claim_ahead: bool = Field(
        False,
        description="while a job runs, the consumer claims its next job ahead and has it start the moment "
        "the running job's process is gone (1: on)",
    )
    algorithm: str = Field("consumer.algorithms.iqr:run", description="module:function the consumer runs")
    inbox_dir: Path | None = Field(
        None, description="directory the stamp algorithm may touch (default var/inbox under PQ_HOME)"
    )
    demo_kind: Literal["iqr", "files", "add"] = Field(
        "iqr", description="what pq-demo-feeder submits: iqr readings, files for the stamp algorithm, or add"
    )
    producer_host: str = Field("127.0.0.1", description="address the intake listens on")
    producer_port: int = Field(8000, ge=0, le=65535, description="port the intake listens on")
    dashboard_host: str = Field("127.0.0.1", description="address the dashboard listens on")
    dashboard_port: int = Field(8501, ge=0, le=65535, description="port the dashboard listens on")
    api_token: str | None = Field(None, description="bearer token the intake requires when set")
    max_body_bytes: int = Field(1_048_576, ge=1, description="largest request body the intake reads")
    max_queue_depth: int = Field(100_000, ge=1, description="waiting jobs at which the intake answers 503")
    wait_snapshot_seconds: float = Field(
        1.0,
        ge=0,
        description="seconds a queue's predicted line serves every job's wait in a process before it is "
        "simulated again (sooner when a run starts or ends, the queue is paused, partners or consumers change; "
        "0: every wait simulates its queue afresh)",
    )
    callback_secret: str | None = Field(None, description="key that signs callbacks (HMAC-SHA256)")
    callback_allow: str | None = Field(None, description="comma-separated hosts callbacks may go to (unset: any)")
    callback_max_attempts: int = Field(5, ge=1, description="callback delivery attempts")
    callback_backoff_seconds: float = Field(
        10, ge=0, description="base of the exponential backoff between callback delivery attempts"
    )
    callback_timeout: float = Field(10, gt=0, description="seconds to connect to and hear from a partner")
    callback_ca_bundle: Path | None = Field(
        None, description="CA bundle that verifies partners' TLS certificates (default: system)"
    )
    dashboard_password: str | None = Field(None, description="dashboard login gate")
    dashboard_readonly: bool = Field(False, description="hide the dashboard's actions")
    allow_insecure: bool = Field(False, description="allow the intake on a non-loopback address without PQ_API_TOKEN")
    tls_certfile: Path | None = Field(None, description="certificate to serve the intake over HTTPS")
    tls_keyfile: Path | None = Field(None, description="private key to serve the intake over HTTPS")
    retention_days: float = Field(
        30, ge=0, description="finished jobs older than this are purged automatically (0: never)"
    )
    relay_window: int = Field(50, ge=1, description="jobs the broker relay keeps outstanding")
    relay_lease_seconds: float = Field(600, gt=0, description="lease of a job sent to a remote agent")
    relay_queue: str = Field("remote", description="pqueue queue the relay feeds to RabbitMQ")
    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/%2F", description="RabbitMQ the relay talks to")
    write_timeout: float = Field(
        30, gt=0, description="seconds a write waits for a locked SQLite database before giving up (intake: 503)"
    )
    log_level: str = Field("INFO", description="log level of every program")

    @property
    def resolved_home(self) -> Path:
        """PQ_HOME as an absolute path."""
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to var/pqueue.db under PQ_HOME."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'var' / 'pqueue.db'}"

    @property
    def resolved_inbox_dir(self) -> Path:
        """Where the stamp algorithm reads and writes files."""
        return (self.inbox_dir or self.resolved_home / "var" / "inbox").expanduser().resolve()

    @property
    def callback_allowed_hosts(self) -> frozenset[str]:
        """Hosts a callback_url may name; empty means any."""
        if not self.callback_allow:
            return frozenset()
        return frozenset(h.strip().lower() for h in self.callback_allow.split(",") if h.strip())


_TYPE_WORDS = {
    "int_parsing": "is not an integer",
    "float_parsing": "is not a number",
    "bool_parsing": "is not a boolean (use 0 or 1)",
}


def load_settings(**overrides: object) -> Settings:
    """Read PQ_* from the environment; a bad value stops startup with one clear line (a database
    URL pqueue cannot use too: no program retries it as if the database were down)."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "PQ_" + str(err["loc"][0]).upper() if err["loc"] else "PQ_?"
            words = _TYPE_WORDS.get(err["type"], err["msg"])
            problems.append(f"{name}={err.get('input')!r} {words}")
        raise SettingsError("; ".join(problems)) from None
    database_url(settings.resolved_database_url)
    return settings
