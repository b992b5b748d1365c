# mypy: disable-error-code="import-not-found", allow-untyped-decorators
# (it runs in bench/.venv-peers; the project environment lacks these libraries)
"""Draws the PNG plots from results.json. Runs in bench/.venv-peers, which has matplotlib:
`python -m bench.plot OUT_DIR` (reads OUT_DIR/results.json, writes OUT_DIR/plots/*.png)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"sqlite": "#1f77b4", "postgresql": "#d62728"}


def nearest_rank(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def claim_cost(rows: list[dict[str, Any]], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for backend in ("sqlite", "postgresql"):
        for kind, style in (("size_claim", "-o"), ("size_both", "--s")):
            points = sorted(
                (r["extra"]["table_size"], r["runs"]) for r in rows if r["key"].startswith(f"{backend}/{kind}/")
            )
            points = [(size, runs) for size, runs in points if runs]
            if not points:
                continue
            sizes = [p[0] for p in points]
            medians = [sorted(p[1])[len(p[1]) // 2] for p in points]
            low = [m - min(p[1]) for m, p in zip(medians, points, strict=True)]
            high = [max(p[1]) - m for m, p in zip(medians, points, strict=True)]
            label = f"{backend}: " + ("claim (get_item)" if kind == "size_claim" else "claim + complete")
            axis.errorbar(sizes, medians, yerr=[low, high], fmt=style, color=COLOURS[backend], label=label, capsize=3)
    axis.set_xscale("log")
    axis.set_ylim(bottom=0)
    axis.set_xlabel("jobs already in the table")
    axis.set_ylabel("ms per call (median; bars: min–max of runs)")
    axis.set_title("pqueue claim cost against table size")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def latency(rows: list[dict[str, Any]], path: Path) -> None:
    wanted = [
        ("dispatch", "idle dispatch"),
        ("dispatch_long", "dispatch after 6 s idle"),
        ("license_gap", "handoff gap (50 ms jobs)"),
    ]
    labels: list[str] = []
    values: dict[str, list[float]] = {"p50": [], "p99": [], "max": []}
    for backend in ("sqlite", "postgresql"):
        for key, name in wanted:
            row = next((r for r in rows if r["key"] == f"{backend}/{key}" and r["samples"]), None)
            if row is None:
                continue
            labels.append(f"{name}\n{backend}")
            values["p50"].append(nearest_rank(row["samples"], 0.5) * 1000)
            values["p99"].append(nearest_rank(row["samples"], 0.99) * 1000)
            values["max"].append(max(row["samples"]) * 1000)
    for backend in ("sqlite", "postgresql"):
        for clients in (8, 32):
            row = next((r for r in rows if r["key"] == f"{backend}/intake_{clients}" and r["runs"]), None)
            if row is None:
                continue
            labels.append(f"POST /jobs, {clients} clients\n{backend}")
            p50s, p99s = row["extra"]["p50_ms"], row["extra"]["p99_ms"]
            values["p50"].append(sorted(p50s)[len(p50s) // 2])
            values["p99"].append(sorted(p99s)[len(p99s) // 2])
            values["max"].append(max(p99s))
    if not labels:
        return
    figure, axis = plt.subplots(figsize=(max(7, 1.3 * len(labels)), 4.6))
    width = 0.27
    for offset, (name, series) in enumerate(values.items()):
        positions = [i + (offset - 1) * width for i in range(len(labels))]
        axis.bar(positions, series, width, label=name)
    axis.set_xticks(range(len(labels)))
    axis.set_xticklabels(labels, fontsize=7, rotation=25, ha="right")
    axis.set_yscale("log")
    axis.set_ylabel("ms (log scale)")
    axis.set_title("pqueue latency percentiles (intake: median of runs; its 'max' bar is the worst run's p99)")
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    out = Path(sys.argv[1])
    results = json.loads((out / "results.json").read_text())
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    claim_cost(results["rows"], plots / "claim_cost.png")
    latency(results["rows"], plots / "latency.png")


if __name__ == "__main__":
    main()
