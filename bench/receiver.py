"""A small callback receiver on 127.0.0.1 (the partner's side): counts deliveries and notes when
the last one arrived."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Answers every POST with 200 and counts distinct job ids."""

    def __init__(self) -> None:
        self.job_ids: set[str] = set()
        self.deliveries = 0
        self.last_at = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                key = self.headers.get("Idempotency-Key", "")
                with receiver._lock:
                    receiver.deliveries += 1
                    receiver.job_ids.add(key.split("-")[0])
                    receiver.last_at = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/results"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self.job_ids.clear()
            self.deliveries = 0
            self.last_at = 0.0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
