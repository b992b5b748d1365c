"""Reading the page an AppTest rendered: metrics by label, the job table's ids."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

_NOTE = re.compile(r"^:(red|orange|green|gray)\[(.*)\]$", re.DOTALL)


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def notes(app: AppTest) -> list[tuple[str, str]]:
    """The metrics' notes (coloured text under them that wraps), in page order, as (colour, text)."""
    found = []
    for element in app.markdown:
        match = _NOTE.match(str(element.value))
        if match:
            found.append((match.group(1), re.sub(r"\\(.)", r"\1", match.group(2))))
    return found


def note(app: AppTest, start: str) -> tuple[str, str]:
    """The one note whose text starts with `start`, as (colour, text)."""
    [found] = [(color, text) for color, text in notes(app) if text.startswith(start)]
    return found


def table_ids(app: AppTest) -> list[int]:
    [table] = [frame for frame in app.dataframe if frame.key == "jobs_table"]
    return [int(job_id) for job_id in table.value["id"]]


def texts(app: AppTest, kind: str) -> list[str]:
    """The messages of one kind of alert on the page: error, warning, info, success."""
    return [str(element.value) for element in getattr(app, kind)]


def no_exception(app: AppTest) -> AppTest:
    assert not app.exception, [e.value for e in app.exception]
    return app
