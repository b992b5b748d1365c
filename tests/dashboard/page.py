"""Reading the page an AppTest rendered: metrics by label, the job table's ids."""

from __future__ import annotations

from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def deltas(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.proto.delta for metric in app.metric}


def colors(app: AppTest) -> dict[str, str]:
    """Each metric's delta colour, by label: 'red', 'green', 'gray', ..."""
    named = Metric.MetricColor.Name
    return {metric.label: named(metric.proto.color).lower() for metric in app.metric if metric.proto.delta}


def table_ids(app: AppTest) -> list[int]:
    [table] = [frame for frame in app.dataframe if frame.key == "jobs_table"]
    return [int(job_id) for job_id in table.value["id"]]


def texts(app: AppTest, kind: str) -> list[str]:
    """The messages of one kind of alert on the page: error, warning, info, success."""
    return [str(element.value) for element in getattr(app, kind)]


def no_exception(app: AppTest) -> AppTest:
    assert not app.exception, [e.value for e in app.exception]
    return app
