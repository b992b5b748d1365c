"""The code blocks of the README and docs/*.md, and how each is run and compared.

A block's info string says what it is:
- `python`: run as a script in a new empty directory (no PQ_* variables, as a newcomer would).
- `console`: `$ ` lines are commands, run in order against a running system; the lines after a
  command, up to the next one, are its shown output and must match what it prints.
- `bash` / `sh`: a script, run against a running system.
- `json`: must parse (one document, or one per line).
- `text`, `mermaid`: diagrams, log excerpts, synopses: nothing to run.

An HTML comment on the line before a block changes that: `<!-- not-run: why -->` (a block that
cannot run here: supervisord in the foreground, other hosts), `<!-- file: NAME -->` (the block is
saved as NAME in the directory the next blocks of the page run in, for them to use).

Shown output is compared loosely where output varies by nature: whitespace is ignored (tables
realign with their content), `...` and `…` stand for anything, and ages (`49s`, `12m 4s`) and
times (`2025-01-31 09:02:11Z`) match any age or time.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_KINDS = {"python", "console", "bash", "sh"}
DATA_KINDS = {"json"}
PICTURE_KINDS = {"text", "mermaid"}
_FENCE = re.compile(r"^```(?P<kind>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)
_MARK = re.compile(r"<!--\s*(?P<what>not-run|file):\s*(?P<value>.*?)\s*-->\s*$")
# What stands for "anything" in shown output: ellipses, ages, times and dates.
_VARIES = re.compile(
    r"\.\.\.|…"
    r"|\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d(?:\.\d+)?)?Z?"
    r"|(?<![\w.])\d+(?:\.\d+)?[smhd](?: \d+[smhd])*(?![\w(])"
)


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, what it is, and what the line before it says about it."""

    page: Path
    line: int
    kind: str
    body: str
    not_run: str | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


@dataclass
class Command:
    """One `$ ` command of a console block and the output shown under it."""

    text: str
    shown: list[str] = field(default_factory=list)

    @property
    def background(self) -> bool:
        words = shlex.split(self.text, comments=True)
        return bool(words) and words[-1] == "&"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of the page, in order."""
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        found.append(
            Block(
                page=page,
                line=text[: match.start()].count("\n") + 1,
                kind=match["kind"].strip(),
                body=match["body"],
                not_run=mark["value"] if mark and mark["what"] == "not-run" else None,
                file=mark["value"] if mark and mark["what"] == "file" else None,
            )
        )
    return found


def commands(block: Block) -> list[Command]:
    """The commands of a console block, each with its shown output (`# ...` lines are notes)."""
    found: list[Command] = []
    pending: list[str] = []
    for line in block.body.splitlines():
        if pending:
            pending.append(line)
        elif line.startswith("$ "):
            pending = [line[2:]]
        else:
            if line.strip() and not line.startswith("#"):
                assert found, f"{block.where}: output before any command: {line!r}"
                found[-1].shown.append(line)
            continue
        text = "\n".join(pending)
        if not _complete(text):
            continue
        found.append(Command(text))
        pending = []
    assert not pending, f"{block.where}: an unfinished command: {pending}"
    return found


def _complete(text: str) -> bool:
    """Whether a command's lines are all there (no trailing backslash, no open quote)."""
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def matches(shown: list[str], printed: str) -> bool:
    """Whether what a command printed is what the docs show under it (see the module's rules)."""
    pattern = []
    expected = "\n".join(shown)
    start = 0
    for varying in _VARIES.finditer(expected):
        pattern.append(re.escape(_squeezed(expected[start : varying.start()])))
        pattern.append(".*?")
        start = varying.end()
    pattern.append(re.escape(_squeezed(expected[start:])))
    return re.fullmatch("".join(pattern), _squeezed(printed), re.S) is not None


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)
