"""The original documents (docs/seeds/) and the runnable text docs/seeds.md makes of them."""

from __future__ import annotations

import re

from tests.docs.blocks import Block, blocks
from tests.support import REPO

SEEDS = REPO / "docs" / "seeds"
PAGE = REPO / "docs" / "seeds.md"


def document(number: str) -> str:
    """The text of document `number` ("001"), as it was written."""
    (path,) = SEEDS.glob(f"{number}-*.txt")
    return path.read_text()


def code_blocks(text: str, kind: str) -> list[str]:
    """The bodies of the document's fenced blocks of this kind (` ``` python`, ` ```sh` …)."""
    return [m["body"] for m in re.finditer(rf"^``` ?{kind}\s*\n(?P<body>.*?)^```", text, re.S | re.M)]


def section(title: str) -> list[Block]:
    """The blocks of docs/seeds.md under the `## ` heading that starts with `title`."""
    text = PAGE.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    first, last = text[:start].count("\n") + 1, text[: end if end != -1 else len(text)].count("\n") + 1
    return [block for block in blocks(PAGE) if first <= block.line <= last]


def script(title: str) -> str:
    """The section's one Python block."""
    (found,) = [block.body for block in section(title) if block.kind == "python"]
    return found
