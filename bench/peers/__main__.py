"""`python -m bench.peers SYSTEM TEST --n N --where PATH_OR_URL`: one run, one JSON line on stdout."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from bench.peers import postgres_peers, sqlite_peers

SYSTEMS: dict[str, Callable[[str, int, str], dict[str, Any]]] = {
    "persist-queue": sqlite_peers.persist_queue,
    "huey": sqlite_peers.huey,
    "litequeue": sqlite_peers.litequeue,
    "procrastinate": postgres_peers.procrastinate,
    "pgqueuer": postgres_peers.pgqueuer,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("test", choices=["put_one", "put_batch", "claim_complete", "drain", "drain_cap1"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--where", required=True, help="a directory (SQLite peers) or a PostgreSQL URL")
    args = parser.parse_args()
    print(json.dumps(SYSTEMS[args.system](args.test, args.n, args.where)))


if __name__ == "__main__":
    main()
