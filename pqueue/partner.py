"""What a partner is shown of a failed job: the exception's own line, not the traceback.

The stored error keeps the traceback's tail for operators (`pq show`, the dashboard); a partner's
callback and `GET /jobs/{id}` get only what went wrong, without the server's file paths and code.
"""

from __future__ import annotations

import re

# "ValueError: ..." or "pkg.mod.Error: ..." once a group's box drawing ("  | ", "+-") is taken off.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*: ")


def partner_error(error: str | None) -> str | None:
    """The partner's view of a stored error.

    A traceback ends with its frames (indented) and then the exception's lines at the left
    margin: those are kept whole, so a message of several lines stays intact. An error that is
    not a traceback (an operator's reason, an expired lease) is shown as it is.
    """
    if error is None:
        return None
    lines = error.strip().splitlines()
    if not any(line.lstrip(" |").startswith('File "') for line in lines):
        return error.strip()
    last_frame = max(n for n, line in enumerate(lines) if line.startswith(" "))
    tail = [line for line in lines[last_frame + 1 :] if line.strip()]
    if tail:
        return "\n".join(tail)
    named = [line.strip(" |+-") for line in lines if _EXCEPTION_LINE.match(line.strip(" |+-"))]
    return named[-1] if named else lines[-1].strip()
