"""The wire between the consumer, the helper and the job processes, without multiprocessing.

One `Channel` class at every end: a Unix stream socket carrying pickled messages
(consumer/messages.py), each framed as multiprocessing's connections frame theirs (a 4-byte
big-endian length, or -1 and an 8-byte one, then the pickle), and a file descriptor passed as
one byte with SCM_RIGHTS. The helper imports no multiprocessing because that imports threading,
whose at-fork hook every forked job process would then run: a third of a millisecond of CPU per
job, on a 2-core machine a cost the next job waits for.
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
_LONGEST_SHORT = 0x7FFFFFFF


class Channel:
    """One end of a Unix stream socket carrying pickled messages."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def from_fd(cls, fd: int) -> Channel:
        """Wrap an inherited socket descriptor (the helper's command channel)."""
        return cls(socket.socket(fileno=fd))

    def fileno(self) -> int:
        """The descriptor to wait on."""
        return self.sock.fileno()

    def send(self, message: Any) -> None:
        """Send one message (OSError when the other end is gone)."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        size = len(data)
        header = _SHORT.pack(size) if size <= _LONGEST_SHORT else _SHORT.pack(-1) + _LONG.pack(size)
        self.sock.sendall(header + data)

    def recv(self) -> Any:
        """Receive one message; EOFError when the other end closed."""
        (size,) = _SHORT.unpack(self._read(_SHORT.size))
        if size == -1:
            (size,) = _LONG.unpack(self._read(_LONG.size))
        return pickle.loads(self._read(size))

    def send_fd(self, fd: int) -> None:
        """Pass a descriptor to the other end (read there with recv_fd)."""
        socket.send_fds(self.sock, [bytes([1])], [fd])

    def recv_fd(self) -> int:
        """Receive a descriptor passed with send_fd; EOFError when the other end closed."""
        data, fds, _flags, _address = socket.recv_fds(self.sock, 1, 1)
        if not data or not fds:
            raise EOFError("the other end closed the channel")
        return fds[0]

    def close(self) -> None:
        """Close this end."""
        self.sock.close()

    def _read(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError("the other end closed the channel")
            data += chunk
        return bytes(data)
