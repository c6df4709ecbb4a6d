"""From the samples each system returned to one table: figures, ratios to us, markdown,
JSON and a chart.

A row is one system on one store. Its B1 figures come from one (submitted, ended) pair per
completed run, in epoch milliseconds; its B2 figures from the times at which each step's
body ran in one long run. Every ratio compares a row with the Stepwise row named as its
``baseline`` (ours on the same kind of store) and reads "how many times we are ahead":

* B1 ``us/peer``: our runs/s divided by the row's;
* B2 ``peer/us``: the row's ms per step divided by ours.

So a ratio above 1 means Stepwise did better, below 1 that the peer did.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _stack import percentile


@dataclass
class Row:
    system: str  # "stepwise", "dbos", ...
    store: str  # "sqlite", "postgres", "redis"
    baseline: str  # the label of the Stepwise row this one is compared with
    version: str = ""
    b1: dict[str, Any] | None = None
    b2: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.system} · {self.store}"


def summarise_b1(samples: Iterable[Sequence[float]], failed: int) -> dict[str, Any]:
    """Runs/s from the first submission to the last end, and event-to-end latencies."""
    pairs = [(float(a), float(b)) for a, b in samples]
    if not pairs:
        return {"completed": 0, "failed": failed, "runs_per_s": None}
    latencies = [end - start for start, end in pairs]
    wall_s = (max(end for _, end in pairs) - min(start for start, _ in pairs)) / 1000
    return {
        "completed": len(pairs),
        "failed": failed,
        "runs_per_s": round(len(pairs) / wall_s, 1) if wall_s > 0 else None,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "wall_s": round(wall_s, 3),
    }


def summarise_b2(step_times: Sequence[float]) -> dict[str, Any]:
    """The gaps between consecutive steps' bodies: their mean over the run, over its first
    ten and over its last ten (flat means the last ten cost what the first ten did), and
    their median (the typical step, which a few long stalls do not move)."""
    gaps = [b - a for a, b in itertools.pairwise(step_times)]
    if not gaps:
        return {"steps": len(step_times), "ms_per_step": None}

    def mean(values: Sequence[float]) -> float:
        return round(sum(values) / len(values), 2)

    return {
        "steps": len(step_times),
        "ms_per_step": mean(gaps),
        "p50_ms": round(percentile(gaps, 50), 2),
        "first10_ms": mean(gaps[:10]),
        "last10_ms": mean(gaps[-10:]),
        "total_ms": round(step_times[-1] - step_times[0], 1),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


def add_ratios(rows: Sequence[Row]) -> None:
    """Sets ``us_per_peer`` in each row's B1 and ``peer_per_us`` in its B2, when both the
    row and its baseline have the figure."""
    by_label = {row.label: row for row in rows}
    for row in rows:
        base = by_label.get(row.baseline)
        if row.b1 is not None:
            ours = base.b1.get("runs_per_s") if base and base.b1 else None
            row.b1["us_per_peer"] = _ratio(ours, row.b1.get("runs_per_s"))
        if row.b2 is not None:
            ours = base.b2.get("ms_per_step") if base and base.b2 else None
            row.b2["peer_per_us"] = _ratio(row.b2.get("ms_per_step"), ours)


COLUMNS = [
    ("system", "left"),
    ("version", "left"),
    ("B1 runs/s", "right"),
    ("us/peer", "right"),
    ("p50 ms", "right"),
    ("p99 ms", "right"),
    ("failed", "right"),
    ("B2 ms/step", "right"),
    ("p50", "right"),
    ("first 10", "right"),
    ("last 10", "right"),
    ("peer/us", "right"),
    ("compared with", "left"),
]


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table_cells(row: Row) -> list[str]:
    b1, b2 = row.b1 or {}, row.b2 or {}
    return [
        row.label,
        row.version,
        _cell(b1.get("runs_per_s")),
        _cell(b1.get("us_per_peer"), 2),
        _cell(b1.get("p50_ms"), 0),
        _cell(b1.get("p99_ms"), 0),
        _cell(b1.get("failed")),
        _cell(b2.get("ms_per_step"), 2),
        _cell(b2.get("p50_ms"), 2),
        _cell(b2.get("first10_ms"), 2),
        _cell(b2.get("last10_ms"), 2),
        _cell(b2.get("peer_per_us"), 2),
        "-" if row.label == row.baseline else row.baseline,
    ]


def markdown_table(rows: Sequence[Row]) -> str:
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---:" if side == "right" else "---" for _, side in COLUMNS) + "|"
    lines = [header, rule]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    """The table, then what ran and each row's notes and errors."""
    parts = [
        f"# Peers, side by side ({meta.get('at', '')})",
        "",
        f"B1: {meta.get('events')} events, each a 3-step run, to completion. "
        f"B2: one run of {meta.get('steps')} steps, the time between consecutive steps' "
        "bodies (mean over the run, median, mean of its first 10 and of its last 10). "
        "`us/peer` (runs/s) and `peer/us` (mean ms/step): "
        "how many times Stepwise is ahead of the row (above 1: ahead), against the Stepwise "
        "row named in the last column.",
        "",
        markdown_table(rows),
        "",
    ]
    load = meta.get("load_average")
    if load:
        parts += [f"Load average (1 min) at start and end: {load[0]} / {load[1]} "
                  f"on {meta.get('cpus')} cores.", ""]  # fmt: skip
    said: set[tuple[str, str]] = set()
    for row in rows:
        for note in row.notes:
            if (row.system, note) not in said:
                said.add((row.system, note))
                parts.append(f"- {row.system}: {note}")
        for error in row.errors:
            parts.append(f"- {row.label}: **not measured**: {error}")
    return "\n".join(parts).rstrip() + "\n"


def write_chart(rows: Sequence[Row], path: Path, title: str) -> None:
    """Two horizontal bar charts: B1 runs/s (higher is better) and B2 ms per step (lower
    is better), our rows in one colour and the peers' in another."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(rows) + 2.2))
    panels = [
        (axes[0], "B1: runs/s (higher is better)", lambda r: (r.b1 or {}).get("runs_per_s")),
        (axes[1], "B2: ms per step (lower is better)", lambda r: (r.b2 or {}).get("ms_per_step")),
    ]
    labels = [row.label for row in rows][::-1]
    for ax, heading, value in panels:
        values = [value(row) for row in rows][::-1]
        colours = ["#2b7bba" if row.system == "stepwise" else "#9a9a9a" for row in rows][::-1]
        bars = ax.barh(labels, [v or 0 for v in values], color=colours)
        for bar, v in zip(bars, values, strict=True):
            text = "not measured" if v is None else f"{v:,.1f}"
            ax.annotate(text, (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)  # fmt: skip
        ax.set_title(heading, fontsize=10)
        ax.margins(x=0.2)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(rows: Sequence[Row], meta: dict[str, Any], out: Path) -> list[Path]:
    """``peers-<at>.json``, ``.md`` and ``.png`` in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"peers-{meta['at']}"
    json_path, md_path, png_path = (stem.with_suffix(s) for s in (".json", ".md", ".png"))
    document = {
        "benchmark": "peers",
        **meta,
        "rows": [{"label": r.label, **asdict(r)} for r in rows],
    }
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    md_path.write_text(markdown_report(rows, meta))
    title = (
        f"Stepwise and its peers, {meta['events']} events / {meta['steps']} steps ({meta['at']})"
    )
    write_chart(rows, png_path, title)
    return [json_path, md_path, png_path]
