"""The database URLs pqueue accepts, checked before anything connects.

A URL pqueue can never use (another database, another PostgreSQL driver, `postgres://`, a
malformed list of hosts) is a configuration error: one line naming the accepted forms, so a
program stops at once instead of retrying it as if the database were down.

PostgreSQL with a standby is reached through a URL naming several hosts, which people spell in
three ways: libpq's `USER@H1:P1,H2:P2/DB`, SQLAlchemy's `?host=H1:P1&host=H2:P2`, and libpq's
keyword lists `?host=H1,H2&port=P1,P2` (one port may serve every host). SQLAlchemy parses only the
last two, and its first one loses the ports once rendered back to a string, so every spelling is
brought to the keyword lists, which both SQLAlchemy's psycopg dialect and libpq read.
"""

from __future__ import annotations

import re

from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from pqueue.errors import DatabaseUrlError

DRIVER = "postgresql+psycopg"
ACCEPTED = (
    "use sqlite:///PATH, or postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DB "
    "(a primary and its standbys: USER@HOST1:PORT1,HOST2:PORT2/DB, "
    "or /DB?host=HOST1,HOST2&port=PORT1,PORT2)"
)
# A host in a list: a name or IPv4 address, or an IPv6 address in brackets, each with an optional port.
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.%]+\]|[^\[\]:/,]*)(?::(?P<port>[^:]*))?$")
_PORT = re.compile(r"^\d{1,5}$")
# SQLAlchemy's HOST:PORT item of a host= list (not a socket directory, not a bare IPv6 address).
_PAIR = re.compile(r"^(\[[0-9A-Fa-f:.%]+\]|[^\[\]:/,]+):\d*$")


def _refused(url: str, why: str) -> DatabaseUrlError:
    return DatabaseUrlError(f"database URL {hide_password(url)!r} cannot be used: {why}; {ACCEPTED}")


def database_url(url: str) -> URL:
    """The URL to connect with: SQLite's as given, PostgreSQL's on the psycopg driver with its
    hosts and ports as keyword lists. Raises DatabaseUrlError for any other."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise _refused(url, "it is not a URL")
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite+pysqlite"):
        return _sqlite(url)
    if scheme == "postgres":
        raise _refused(url, f"SQLAlchemy does not load libpq's postgres:// alias; write {DRIVER}://")
    if scheme not in ("postgresql", DRIVER):
        if scheme.startswith("postgresql+"):
            raise _refused(url, f"pqueue talks to PostgreSQL through psycopg 3 only; write {DRIVER}://")
        raise _refused(url, f"pqueue runs on SQLite or PostgreSQL, not {scheme.split('+')[0]}")
    return _postgres(url, rest)


def _sqlite(url: str) -> URL:
    parsed = _parse(url)
    if not parsed.database or parsed.database == ":memory:":
        raise _refused(url, "pqueue needs a SQLite file, not an in-memory database")
    return parsed


def _postgres(url: str, rest: str) -> URL:
    authority, slash, tail = rest.partition("/")
    userinfo, at, hostlist = authority.rpartition("@")
    if "," not in hostlist:
        parsed = _parse(f"{DRIVER}://{rest}", url)
    else:  # libpq's USER@H1:P1,H2:P2/DB, which SQLAlchemy cannot parse: hosts go to the query
        lists = _split_pairs(url, hostlist.split(","))
        parsed = _parse(f"{DRIVER}://{userinfo}{at}{slash}{tail}", url)
        if "host" in parsed.query or "port" in parsed.query:
            raise _refused(url, "it names hosts both before the database and in host=")
        parsed = parsed.update_query_dict(lists)
    return _hosts_as_lists(url, parsed)


def _hosts_as_lists(url: str, parsed: URL) -> URL:
    """Bring ?host=H1:P1&host=H2:P2, ?host=H1&host=H2&port=P1&port=P2 and ?host=H1,H2&port=P
    (libpq: one port for every host) to ?host=H1,H2&port=P1,P2; refuse lists that do not pair up."""
    host, port = parsed.query.get("host"), parsed.query.get("port")
    if host is None:
        if port is not None and not isinstance(port, str):
            raise _refused(url, "it gives several ports without host=")
        return parsed
    hosts = list(host) if isinstance(host, tuple) else host.split(",")
    if any(_PAIR.match(h) for h in hosts):
        if port is not None:
            raise _refused(url, "it gives ports both in host=HOST:PORT and in port=")
        return parsed.update_query_dict(_split_pairs(url, hosts))
    ports = [] if port is None else list(port) if isinstance(port, tuple) else port.split(",")
    if len(ports) == 1 and len(hosts) > 1:
        ports = ports * len(hosts)
    if ports and len(ports) != len(hosts):
        raise _refused(url, f"it names {len(hosts)} hosts but {len(ports)} ports")
    for value in ports:
        if value and not _PORT.match(value):
            raise _refused(url, f"port {value!r} is not a number")
    return parsed.update_query_dict(_lists(hosts, ports))


def _split_pairs(url: str, items: list[str]) -> dict[str, str]:
    """HOST[:PORT] items as libpq's comma lists of hosts and of ports (an empty port: the default)."""
    hosts, ports = [], []
    for item in items:
        match = _HOST_PORT.match(item)
        if not match or not match["host"]:
            raise _refused(url, f"{item!r} is not HOST or HOST:PORT")
        port = match["port"] or ""
        if port and not _PORT.match(port):
            raise _refused(url, f"port {port!r} of {match['host']} is not a number")
        hosts.append(match["host"].strip("[]"))
        ports.append(port)
    return _lists(hosts, ports)


def _lists(hosts: list[str], ports: list[str]) -> dict[str, str]:
    query = {"host": ",".join(hosts)}
    if any(ports):
        query["port"] = ",".join(ports)
    return query


def _parse(text: str, given: str | None = None) -> URL:
    try:
        parsed = make_url(text)
        parsed.port  # noqa: B018 - a port that is not a number fails here, not at the first connection
    except (ArgumentError, ValueError) as exc:
        raise _refused(given or text, str(exc).rstrip(".")) from None
    return parsed


def describe(url: URL) -> str:
    """The URL for a log line, without its password, several hosts written as libpq's
    USER@H1:P1,H2:P2/DB (the keyword lists' commas would be percent-encoded)."""
    host, port = url.query.get("host"), url.query.get("port")
    if not isinstance(host, str) or "," not in host or url.host:
        return url.render_as_string(hide_password=True)
    ports = port.split(",") if isinstance(port, str) else [""] * host.count(",")
    pairs = [
        (f"[{h}]" if ":" in h else h) + (f":{p}" if p else "") for h, p in zip(host.split(","), ports, strict=False)
    ]
    rest = url.difference_update_query(["host", "port"]).set(host="HOSTS").render_as_string(hide_password=True)
    return rest.replace("@HOSTS", "@" + ",".join(pairs), 1).replace("//HOSTS", "//" + ",".join(pairs), 1)


def hide_password(url: str) -> str:
    """The URL as written, its password (if any) replaced by ***: for messages about a URL that
    may not parse."""
    return re.sub(r"^([^:/?#]+://[^:/?#@]*):[^@/]*@", r"\1:***@", url)
