"""benchmarks/child_runs.py: the row comparing our pipeline with plain torch-pruning, and its line in the
markdown table the two resource benchmarks write."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from child_runs import add_plain, ours_row, table_rows  # noqa: E402


def _run(wall: float, cpu: float, rss: float, **extra) -> dict:
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, "reached": 0.3, **extra}


def test_a_row_holds_the_medians_and_ours_over_plain():
    row = ours_row("m", [_run(1.0, 2.0, 300.0), _run(3.0, 4.0, 500.0), _run(2.0, 9.0, 400.0)])
    assert row["ours"] == {"wall_s": 2.0, "cpu_s": 4.0, "peak_rss_mb": 400.0} and row["reached"] == 0.3
    row = add_plain(row, [_run(4.0, 2.0, 200.0, reached=0.298)], tp_ratio=0.41)
    assert row["ours_over_plain"] == {"wall_s": 0.5, "cpu_s": 2.0, "peak_rss_mb": 2.0}
    assert row["plain_reached"] == 0.298 and row["tp_pruning_ratio"] == 0.41


def test_a_failed_run_of_ours_is_the_row():
    row = ours_row("m", [_run(1.0, 2.0, 300.0), {"error": "the child died (exit 1): boom"}])
    assert row == {"model": "m", "ours_runs": row["ours_runs"], "ours_error": "the child died (exit 1): boom"}


@pytest.mark.parametrize(("seconds", "digits", "ratios", "line"), [
    (("wall_s", "cpu_s"), 2, ("wall_s", "cpu_s", "peak_rss_mb"),
     "| m | 0.300 / 0.298 | 1.00 / 4.00 | 2.00 / 2.00 | 300 / 200 | 0.25x, 1.00x, 1.50x |"),
    (("cpu_s", "wall_s"), 1, ("cpu_s", "peak_rss_mb"),
     "| m | 0.300 / 0.298 | 2.0 / 2.0 | 1.0 / 4.0 | 300 / 200 | 1.00x, 1.50x |"),
])
def test_a_table_line_has_the_measures_in_the_order_asked(seconds, digits, ratios, line):
    row = add_plain(ours_row("m", [_run(1.0, 2.0, 300.0)]), [_run(4.0, 2.0, 200.0, reached=0.298)], 0.4)
    assert table_rows([row], seconds, digits, ratios) == [line]


def test_a_failure_and_a_broken_model_are_said_in_a_full_width_line():
    seconds, ratios = ("wall_s", "cpu_s"), ("wall_s",)
    failed = ours_row("a", [{"error": "boom"}])
    no_plain = {**ours_row("b", [_run(1.0, 2.0, 300.0)]), "plain_error": "stopped"}
    broken = add_plain(ours_row("c", [_run(1.0, 2.0, 300.0)]), [_run(1.0, 1.0, 300.0, broken="KeyError: 3")], 0.4)
    lines = table_rows([failed, no_plain, broken], seconds, 2, ratios)
    assert lines[0] == "| a | ours failed: boom | | | | |"
    assert lines[1] == "| b | 0.300 / - | 1.00 / - | 2.00 / - | 300 / - | torch-pruning: stopped |"
    assert lines[2].endswith("| 1.00x; torch-pruning's model no longer runs: KeyError: 3 |")
    assert all(line.count("|") == 7 for line in lines)  # six columns, as the header has
