"""IQR outlier analysis of numeric readings grouped by vendor (the default algorithm).

Payload, as rows: {"readings": [{"vendor": "acme", "value": 12.5, ...}, ...], "k": 1.5}
or as columns:    {"readings": {"vendor": ["acme", ...], "value": [12.5, ...]}, "k": 1.5}
(the columns may also sit at the top level: {"vendor": [...], "value": [...]}).

For each vendor: count, q1, median, q3, iqr = q3 - q1, fences q1 - k*iqr and q3 + k*iqr, and
the readings outside the fences (with their index in the input). Quartiles interpolate linearly
between data points (pandas' default; numpy's "linear"; statistics.quantiles "inclusive").
Bad data is refused with a ValueError that names the reading, marked permanent: such a job
goes to manual_intervention at once rather than being retried. A pure function of its payload,
so running it again gives the same result.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pqueue import permanent

DEFAULT_K = 1.5


def run(payload: Any) -> dict[str, Any]:
    """Analyse the readings; see the module docstring for the payload and the result."""
    if not isinstance(payload, dict):
        raise _refused("payload must be an object with 'readings'")
    k = _k(payload.get("k", DEFAULT_K))
    vendors, values = _columns(payload)
    frame = pd.DataFrame({"vendor": vendors, "value": values})
    grouped = frame.groupby("vendor")["value"]
    stats = pd.DataFrame(
        {
            "count": grouped.count(),
            "q1": grouped.quantile(0.25),
            "median": grouped.quantile(0.5),
            "q3": grouped.quantile(0.75),
        }
    )
    stats["iqr"] = stats["q3"] - stats["q1"]
    stats["lower_fence"] = stats["q1"] - k * stats["iqr"]
    stats["upper_fence"] = stats["q3"] + k * stats["iqr"]
    fenced = frame.join(stats[["lower_fence", "upper_fence"]], on="vendor")
    outside = fenced[(fenced["value"] < fenced["lower_fence"]) | (fenced["value"] > fenced["upper_fence"])]
    result: dict[str, Any] = {}
    for vendor, row in sorted(stats.to_dict("index").items()):
        result[str(vendor)] = {
            "count": int(row["count"]),
            **{name: float(row[name]) for name in ("q1", "median", "q3", "iqr", "lower_fence", "upper_fence")},
            "outliers": [
                {"index": int(str(index)), "value": float(value)}
                for index, value in outside.loc[outside["vendor"] == vendor, "value"].items()
            ],
        }
    total = sum(len(stats["outliers"]) for stats in result.values())
    return {"k": k, "readings": len(values), "outliers": total, "vendors": result}


def _refused(message: str) -> ValueError:
    """The error for a payload no retry can fix."""
    return permanent(ValueError(message))


def _k(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise _refused(f"k must be a positive number, got {value!r}")
    return float(value)


def _columns(payload: dict[str, Any]) -> tuple[list[str], list[float]]:
    """(vendors, values) from rows or columns, each checked with a message naming the reading."""
    readings = payload.get("readings")
    if readings is None and "vendor" in payload and "value" in payload:
        readings = {"vendor": payload["vendor"], "value": payload["value"]}
    if isinstance(readings, dict):
        return _from_columns(readings)
    if isinstance(readings, list):
        return _from_rows(readings)
    raise _refused(
        'payload needs \'readings\': a list of {"vendor": ..., "value": ...} objects, '
        'or columns {"vendor": [...], "value": [...]}'
    )


def _from_rows(rows: list[Any]) -> tuple[list[str], list[float]]:
    if not rows:
        raise _refused("readings is empty: there is nothing to analyse")
    vendors, values = [], []
    for index, row in enumerate(rows):
        where = f"readings[{index}]"
        if not isinstance(row, dict):
            raise _refused(f"{where} must be an object with 'vendor' and 'value', got {row!r}")
        for field in ("vendor", "value"):
            if field not in row:
                raise _refused(f"{where} has no {field!r}")
        vendors.append(_vendor(row["vendor"], f"{where}.vendor"))
        values.append(_number(row["value"], f"{where}.value"))
    return vendors, values


def _from_columns(columns: dict[str, Any]) -> tuple[list[str], list[float]]:
    for field in ("vendor", "value"):
        if not isinstance(columns.get(field), list):
            raise _refused(f"column {field!r} is missing or not a list")
    vendor_column, value_column = columns["vendor"], columns["value"]
    if len(vendor_column) != len(value_column):
        raise _refused(f"columns 'vendor' and 'value' differ in length ({len(vendor_column)} and {len(value_column)})")
    if not vendor_column:
        raise _refused("readings is empty: there is nothing to analyse")
    vendors = [_vendor(v, f"vendor[{i}]") for i, v in enumerate(vendor_column)]
    values = [_number(v, f"value[{i}]") for i, v in enumerate(value_column)]
    return vendors, values


def _vendor(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _refused(f"{where} must be a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refused(f"{where} is not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise _refused(f"{where} is not a finite number: {value!r}")
    return number
