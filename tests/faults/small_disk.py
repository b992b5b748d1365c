"""A small tmpfs to hold a SQLite database, and a file that fills it to the last byte.

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the test is skipped, not failed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CHUNKS = (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1)  # bytes: big writes first, then the last crumbs


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (`16m`) mounted at `where` for the duration; unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        mount = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError as exc:  # no mount(8) at all
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip() or mount.returncode})")
    try:
        yield where
    finally:
        # Lazily: a program the test could not stop must not leave the mount behind.
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30, check=False)


def fill(disk: Path) -> Path:
    """Write a file on the disk until no byte more fits; it frees the space when removed."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in CHUNKS:
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def free_bytes(disk: Path) -> int:
    """What the file system still has for us."""
    stat = os.statvfs(disk)
    return stat.f_bavail * stat.f_frsize
