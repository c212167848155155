"""`benchmarks/within_evidence.py --status`: a running search's frontier, its test drops measured against the
teacher's metrics that evidence.py recorded on the same scenes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import within_evidence  # noqa: E402

METRICS = within_evidence.METRICS


def row(step: int, reduction: float, lane_acc_on_test_b: float, verdict: bool | None) -> dict:
    report = {f"{name}.{m}": 80.0 for name in within_evidence.TESTS for m in METRICS}
    report["test_b.lane_acc"] = lane_acc_on_test_b
    return {"step": step, "ratio": reduction, "reduction": reduction, "remedy": None,
            "drop": {**dict.fromkeys(METRICS, 0.0), "recall": 0.3}, "verdict": verdict,
            "within": bool(verdict), "recovery_rounds": 1, "report": report}


def settings(out: Path) -> argparse.Namespace:
    return argparse.Namespace(limit=1.0, step=0.1, resolution=0.02, recovery_steps=600, images=500,
                              importance="task_taylor", seed=0, out=out)


def test_status_reads_the_checkpoint_and_measures_test_drops_against_the_recorded_teacher(tmp_path):
    checkpoint = tmp_path / "within_checkpoints" / "within_evidence_seed0"
    assert within_evidence.status(checkpoint, settings(tmp_path)).startswith("no checkpoint at")
    checkpoint.mkdir(parents=True)
    torch.save({"frontier": [row(1, 0.1, 79.5, True), row(2, 0.2, 78.0, None)]}, checkpoint / "state.pt")
    text = within_evidence.status(checkpoint, settings(tmp_path))
    assert text.startswith("Still running (checkpoint of 1 evaluated model(s)).")
    assert "| 1 | 10.0% | - | 10.0% | +0.30 (recall) | - | - | held | 1 |" in text  # no teacher recorded yet
    assert "provisional" not in text
    teacher = {name: {m: {"value": 81.0, "low": 80.0, "high": 82.0} for m in METRICS}
               for name in ("validation", *within_evidence.TESTS)}
    (tmp_path / "evidence_teacher.json").write_text(json.dumps({"teacher": teacher}))
    text = within_evidence.status(checkpoint, settings(tmp_path))
    assert "| 1 | 10.0% | - | 10.0% | +0.30 (recall) | +1.00 (recall) | +1.50 (lane_acc) | held | 1 |" in text
    assert "| 2 | 20.0% | - | 20.0% | +0.30 (recall) | +1.00 (recall) | +3.00 (lane_acc) | broken, remedy next" in text
    assert "provisional: against the teacher's metrics in evidence_teacher.json" in text
    remedied = {**row(3, 0.2, 80.0, True), "remedy": "task_weight:lane"}
    torch.save({"frontier": [row(1, 0.1, 80.0, True), remedied, row(4, 0.3, 80.0, True)]}, checkpoint / "state.pt")
    text = within_evidence.status(checkpoint, settings(tmp_path))
    assert "| 3 | 20.0% | task_weight:lane | 20.0% |" in text  # tried at this step
    assert "| 4 | 30.0% | task_weight:lane | 30.0% |" in text  # it held, so later steps keep it
