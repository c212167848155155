"""real_judges.py's report: a recovery below the pruned network on the held-back frames is marked and counted per
judge. No pretrained network needed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import real_judges  # noqa: E402


def test_recoveries_that_end_below_the_pruned_network_are_marked_and_counted_per_judge():
    rows = [{"network": "net", "share": 0.3, "criterion": "taylor", "pruned": 50.0, "none": 40.0, "loss": 50.0,
             "agreement": 60.0, "pruned_judging_frame": 45.0, "loss_judging_frame": 45.0},
            {"network": "net", "share": 0.5, "criterion": "taylor", "pruned": 20.0, "none": 30.0, "loss": 10.0,
             "agreement": 20.0, "pruned_judging_frame": 15.0, "loss_judging_frame": 5.0}]
    text = real_judges.markdown(rows, "cmd", 1.0)
    assert "| net | 30% | taylor | 50.0 | 40.0 (worse) | 50.0 | 60.0 | 45.0 -> 45.0 |" in text
    assert "| net | 50% | taylor | 20.0 | 30.0 | 10.0 (worse) | 20.0 | 15.0 -> 5.0 |" in text
    assert "| none | 1 of 2 | 35.0 |" in text and "| loss | 1 of 2 | 30.0 |" in text
    assert "| agreement | 0 of 2 | 40.0 |" in text and "| (pruned, no recovery) | - | 35.0 |" in text
