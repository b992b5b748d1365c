"""The shipped algorithms on good and bad input, called directly (no consumer involved)."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from consumer.algorithms import add, iqr, sleep, stamp
from pqueue import Settings, load_settings

READINGS: dict[str, list[float]] = {
    "acme": [10.0, 12.0, 11.5, 13.0, 12.2, 11.8, 45.0, -20.0],
    "globex": [100, 101, 99, 102, 98, 100],
    "initech": [7.5],
}


def expected_stats(values: list[float], k: float) -> dict[str, Any]:
    """Quartiles computed independently: statistics.quantiles, 'inclusive' = linear interpolation."""
    if len(values) == 1:
        q1 = median = q3 = values[0]
    else:
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    iqr_ = q3 - q1
    lower, upper = q1 - k * iqr_, q3 + k * iqr_
    return {"q1": q1, "median": median, "q3": q3, "iqr": iqr_, "lower": lower, "upper": upper}


def rows() -> list[dict[str, Any]]:
    return [{"vendor": v, "value": x, "site": "s1"} for v, values in READINGS.items() for x in values]


@pytest.mark.parametrize("k", [1.5, 3.0])
def test_iqr__matches_independently_computed_quartiles_and_fences(k: float) -> None:
    result = iqr.run({"readings": rows(), "k": k})
    assert result["k"] == k and result["readings"] == sum(len(v) for v in READINGS.values())
    index = 0
    for vendor, values in READINGS.items():
        want = expected_stats([float(v) for v in values], k)
        got = result["vendors"][vendor]
        assert got["count"] == len(values)
        for name in ("q1", "median", "q3", "iqr"):
            assert got[name] == pytest.approx(want[name])
        assert got["lower_fence"] == pytest.approx(want["lower"])
        assert got["upper_fence"] == pytest.approx(want["upper"])
        outliers = [
            {"index": index + i, "value": float(v)}
            for i, v in enumerate(values)
            if v < want["lower"] or v > want["upper"]
        ]
        assert got["outliers"] == outliers
        index += len(values)
    assert result["outliers"] == sum(len(s["outliers"]) for s in result["vendors"].values())


def test_iqr__finds_the_obvious_outliers_with_the_default_k() -> None:
    result = iqr.run({"readings": rows()})
    assert [o["value"] for o in result["vendors"]["acme"]["outliers"]] == [45.0, -20.0]
    assert result["vendors"]["globex"]["outliers"] == []
    assert result["vendors"]["initech"]["iqr"] == 0.0


def test_iqr__accepts_columns_nested_or_at_the_top_level() -> None:
    vendors = [r["vendor"] for r in rows()]
    values = [r["value"] for r in rows()]
    by_rows = iqr.run({"readings": rows()})
    assert iqr.run({"readings": {"vendor": vendors, "value": values}}) == by_rows
    assert iqr.run({"vendor": vendors, "value": values}) == by_rows


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "payload must be an object with 'readings'"),
        ({}, "payload needs 'readings'"),
        ({"readings": []}, "readings is empty"),
        ({"readings": [{"vendor": "a"}]}, "readings[0] has no 'value'"),
        ({"readings": [{"value": 1}]}, "readings[0] has no 'vendor'"),
        (
            {"readings": [{"vendor": "a", "value": 1}, {"vendor": "a", "value": "12,5"}]},
            "readings[1].value is not a number",
        ),
        ({"readings": [{"vendor": "a", "value": True}]}, "readings[0].value is not a number"),
        ({"readings": [{"vendor": "a", "value": None}]}, "readings[0].value is not a number"),
        ({"readings": [{"vendor": "", "value": 1}]}, "readings[0].vendor must be a non-empty string"),
        ({"readings": [{"vendor": 5, "value": 1}]}, "readings[0].vendor must be a non-empty string"),
        ({"readings": ["a"]}, "readings[0] must be an object"),
        ({"readings": [{"vendor": "a", "value": 1}], "k": 0}, "k must be a positive number"),
        ({"readings": [{"vendor": "a", "value": 1}], "k": "wide"}, "k must be a positive number"),
        ({"readings": {"vendor": ["a"], "value": [1, 2]}}, "differ in length (1 and 2)"),
        ({"readings": {"vendor": [], "value": []}}, "readings is empty"),
        ({"readings": {"vendor": ["a"]}}, "column 'value' is missing"),
        ({"vendor": ["a"], "value": ["x"]}, "value[0] is not a number"),
    ],
)
def test_iqr__bad_data_is_refused_with_a_message_naming_it(payload: Any, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        iqr.run(payload)
    assert message in str(raised.value)


def test_add__adds_two_numbers() -> None:
    assert add.run({"a": 2, "b": 3}) == {"sum": 5}
    assert add.run({"a": 0.5, "b": -1}) == {"sum": -0.5}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"a": 1}, "no 'b'"),
        ({"a": "1", "b": 2}, "a must be a number"),
        ({"a": True, "b": 2}, "a must be a number"),
        ([1, 2], "payload must be an object"),
    ],
)
def test_add__bad_input_is_refused(payload: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add.run(payload)


@pytest.fixture
def inbox_settings(tmp_path: Path) -> Settings:
    (tmp_path / "var" / "inbox").mkdir(parents=True)
    return load_settings(home=tmp_path)


def test_stamp__prepends_an_iso_timestamp_line_and_keeps_the_mode(inbox_settings: Settings) -> None:
    target = inbox_settings.resolved_inbox_dir / "report.txt"
    target.write_text("line 1\nline 2\n")
    target.chmod(0o640)
    result = stamp.run({"file": "report.txt"}, inbox_settings)
    first, rest = target.read_text().split("\n", 1)
    assert first == result["stamp"] and first.endswith("+00:00") and "T" in first
    assert rest == "line 1\nline 2\n"
    assert result["file"] == "report.txt" and result["bytes"] == target.stat().st_size
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["report.txt"]  # no temporary file left


def test_stamp__running_twice_prepends_a_second_line_and_loses_nothing(inbox_settings: Settings) -> None:
    target = inbox_settings.resolved_inbox_dir / "sub" / "a.txt"
    target.parent.mkdir()
    target.write_text("data\n")
    first = stamp.run({"file": "sub/a.txt"}, inbox_settings)["stamp"]
    second = stamp.run({"file": "sub/a.txt"}, inbox_settings)["stamp"]
    assert target.read_text() == f"{second}\n{first}\ndata\n"


def test_stamp__refuses_paths_outside_the_inbox(inbox_settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("keep me\n")
    inbox = inbox_settings.resolved_inbox_dir
    os.symlink(outside, inbox / "link.txt")
    for name in ("../../secret.txt", str(outside), "link.txt"):
        with pytest.raises(ValueError, match="outside the inbox") as refused:
            stamp.run({"file": name}, inbox_settings)
        assert getattr(refused.value, "pq_permanent", False), "no retry can bring the file inside: refused for good"
    assert outside.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("payload", "message", "for_good"),
    [
        ({}, "payload must be an object", True),
        ({"file": ""}, "payload must be an object", True),
        ({"file": "missing.txt"}, "does not exist", False),  # it may still be on its way: retried
        ({"file": "."}, "not a regular file", True),
    ],
)
def test_stamp__bad_payload_is_refused(inbox_settings: Settings, payload: Any, message: str, for_good: bool) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        stamp.run(payload, inbox_settings)
    assert getattr(refused.value, "pq_permanent", False) == for_good


@pytest.mark.parametrize(("payload", "result"), [({"seconds": 0}, {"slept": 0}), ({"seconds": 0.05}, {"slept": 0.05})])
def test_sleep__takes_the_time_it_is_told(payload: Any, result: Any) -> None:
    assert sleep.run(payload) == result


@pytest.mark.parametrize("payload", [{"seconds": -1}, {"seconds": "ten"}, {"seconds": True}, [], {"seconds": 1e9}])
def test_sleep__a_payload_it_cannot_sleep_by_is_refused_for_good(payload: Any) -> None:
    with pytest.raises(ValueError, match="payload must be an object like") as refused:
        sleep.run(payload)
    assert getattr(refused.value, "pq_permanent", False)
