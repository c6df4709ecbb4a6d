"""The peers benchmark's arithmetic and report (bench/peers/report.py), on made-up samples:
no benchmark runs here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))  # last, so that no bench/ script shadows another module

from peers.report import (  # noqa: E402
    Row,
    add_ratios,
    markdown_report,
    markdown_table,
    summarise_b1,
    summarise_b2,
    write_report,
)


def test_b1_counts_runs_per_second_from_first_submission_to_last_end() -> None:
    # Five runs submitted at 0..400 ms, the last ending at 2,500 ms: 5 runs in 2.5 s.
    samples = [(0, 100), (100, 400), (200, 900), (300, 2000), (400, 2500)]
    summary = summarise_b1(samples, failed=1)
    assert summary["completed"] == 5
    assert summary["failed"] == 1
    assert summary["runs_per_s"] == 2.0
    assert summary["wall_s"] == 2.5
    assert summary["p50_ms"] == 700.0  # latencies 100, 300, 700, 1700, 2100
    assert summary["p99_ms"] == 2100.0


def test_b1_without_a_completed_run_has_no_rate() -> None:
    assert summarise_b1([], failed=3) == {"completed": 0, "failed": 3, "runs_per_s": None}


def test_b2_reports_the_gap_between_steps_over_the_run_and_at_both_ends() -> None:
    # 21 steps: the first ten gaps are 1 ms, the last ten 3 ms.
    times = [0.0]
    for gap in [1.0] * 10 + [3.0] * 10:
        times.append(times[-1] + gap)
    summary = summarise_b2(times)
    assert summary["steps"] == 21
    assert summary["ms_per_step"] == 2.0
    assert summary["p50_ms"] == 3.0  # gaps 1 x10, 3 x10: the nearest rank of the median
    assert summary["first10_ms"] == 1.0
    assert summary["last10_ms"] == 3.0
    assert summary["total_ms"] == 40.0


def test_b2_of_a_single_step_has_no_gap() -> None:
    assert summarise_b2([5.0]) == {"steps": 1, "ms_per_step": None}


def rows() -> list[Row]:
    ours = Row("stepwise", "sqlite", baseline="stepwise · sqlite", version="stepwise 0.1.0")
    ours.b1 = {"runs_per_s": 400.0, "failed": 0}
    ours.b2 = {"ms_per_step": 2.0}
    dbos = Row("dbos", "sqlite", baseline="stepwise · sqlite", version="dbos 3.4.0")
    dbos.b1 = {"runs_per_s": 50.0, "failed": 0}
    dbos.b2 = {"ms_per_step": 7.0}
    celery = Row("celery", "redis", baseline="stepwise · sqlite", notes=["as configured"])
    celery.errors = ["RuntimeError: Redis not reachable"]
    orphan = Row("procrastinate", "postgres", baseline="stepwise · postgres")
    orphan.b1 = {"runs_per_s": 80.0, "failed": 0}
    return [ours, dbos, celery, orphan]


def test_ratios_say_how_many_times_we_are_ahead_of_each_row() -> None:
    ours, dbos, celery, orphan = table = rows()
    add_ratios(table)
    assert ours.b1 == {"runs_per_s": 400.0, "failed": 0, "us_per_peer": 1.0}
    assert ours.b2 == {"ms_per_step": 2.0, "peer_per_us": 1.0}
    assert dbos.b1 is not None and dbos.b1["us_per_peer"] == 8.0  # 400 / 50 runs/s
    assert dbos.b2 is not None and dbos.b2["peer_per_us"] == 3.5  # 7 / 2 ms per step
    assert celery.b1 is None and celery.b2 is None  # not measured: nothing to compare
    assert orphan.b1 is not None and orphan.b1["us_per_peer"] is None  # no baseline row


def test_the_table_has_a_row_per_system_and_dashes_where_nothing_was_measured() -> None:
    table = rows()
    add_ratios(table)
    lines = markdown_table(table).splitlines()
    assert lines[0].startswith("| system | version | B1 runs/s | us/peer |")
    assert len(lines) == 2 + len(table)
    cells = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert cells[:4] == ["dbos · sqlite", "dbos 3.4.0", "50.0", "8.00"]
    assert cells[7] == "7.00" and cells[11] == "3.50" and cells[12] == "stepwise · sqlite"
    assert lines[2].split("|")[-2].strip() == "-"  # our own row is its baseline
    celery = [cell.strip() for cell in lines[4].strip("|").split("|")]
    assert set(celery[2:12]) == {"-"}


def test_the_report_names_what_was_not_measured_and_each_note_once() -> None:
    table = rows()
    table.append(Row("celery", "redis", baseline="stepwise · sqlite", notes=["as configured"]))
    text = markdown_report(table, {"at": "T", "events": 10, "steps": 5, "cpus": 2,
                                   "load_average": [3.0, 4.0]})  # fmt: skip
    assert "- celery · redis: **not measured**: RuntimeError: Redis not reachable" in text
    assert text.count("- celery: as configured") == 1
    assert "Load average (1 min) at start and end: 3.0 / 4.0 on 2 cores." in text


def test_a_run_writes_json_markdown_and_a_png_chart(tmp_path: Path) -> None:
    table = rows()
    add_ratios(table)
    meta = {"at": "20260101T000000Z", "events": 10, "steps": 5, "cpus": 2}
    paths = write_report(table, meta, tmp_path)
    assert [p.name for p in paths] == [
        "peers-20260101T000000Z.json",
        "peers-20260101T000000Z.md",
        "peers-20260101T000000Z.png",
    ]
    document = json.loads(paths[0].read_text())
    assert document["benchmark"] == "peers" and document["events"] == 10
    assert [r["label"] for r in document["rows"]] == [r.label for r in table]
    assert document["rows"][1]["b1"]["us_per_peer"] == 8.0
    assert paths[1].read_text().startswith("# Peers, side by side (20260101T000000Z)")
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
