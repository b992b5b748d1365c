"""The one error `pq` raises itself; pqueue's own errors are reported the same way."""

from __future__ import annotations


class AdminError(Exception):
    """An expected failure outside the library (a file that cannot be written): one line, exit 1."""
