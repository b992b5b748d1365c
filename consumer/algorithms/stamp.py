"""Prepend a timestamp line to a file in the inbox directory, atomically.

Payload: {"file": "report.txt"} (a name relative to PQ_INBOX_DIR, default var/inbox under PQ_HOME).
The new contents go to a temporary file in the same directory, which then replaces the original
in one rename: a reader sees the old file or the new one, never half of it.

Running it twice for one job (at-least-once delivery: the consumer died after the rename but
before recording the result) prepends a second timestamp line; the file is never damaged or
truncated, and each line records one run.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pqueue import Settings, permanent


def run(payload: Any, settings: Settings) -> dict[str, Any]:
    """Stamp the file; returns its name, the stamp written and the new size."""
    inbox = settings.resolved_inbox_dir
    target = inbox_file(payload, inbox)
    stamp = datetime.now(UTC).isoformat()
    original = target.read_bytes()
    replace_atomically(target, stamp.encode() + b"\n" + original)
    return {"file": str(target.relative_to(inbox)), "stamp": stamp, "bytes": len(original) + len(stamp) + 1}


def inbox_file(payload: Any, inbox: Path) -> Path:
    """The payload's file, resolved; refused for good (no retry can help) when the payload names
    none, or one outside the inbox or not a regular file; a missing file is retried."""
    if not isinstance(payload, dict) or not isinstance(payload.get("file"), str) or not payload["file"].strip():
        raise permanent(ValueError('payload must be an object like {"file": "name.txt"} naming a file in the inbox'))
    name: str = payload["file"]
    target = (inbox / name).resolve()
    if not target.is_relative_to(inbox):
        raise permanent(ValueError(f"file {name!r} is outside the inbox directory {inbox}; refused"))
    if not target.exists():  # not permanent: the file may still be on its way
        raise ValueError(f"file {name!r} does not exist in the inbox directory {inbox}")
    if not target.is_file():
        raise permanent(ValueError(f"{name!r} in the inbox directory {inbox} is not a regular file"))
    return target


def replace_atomically(target: Path, content: bytes) -> None:
    """Write content to a temporary file beside target, flush it to disk, and rename it over target."""
    mode = target.stat().st_mode & 0o7777
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power loss
    finally:
        os.close(directory)
