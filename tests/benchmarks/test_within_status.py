"""`benchmarks/within.py --status`: the frontier a running search's checkpoint holds, rendered as a finished run's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import within  # noqa: E402


def frontier_row(step: int, reduction: float, lane_drop: float, within_limits: bool) -> dict:
    metrics = dict.fromkeys(within.shared.METRICS, 80.0)
    return {"step": step, "reduction": reduction, "params": 1e6 * (1 - reduction), "macs": 1e9, "latency": None,
            **metrics, "drop": {**dict.fromkeys(within.shared.METRICS, 0.0), "lane_acc": lane_drop},
            "within": within_limits,
            "recovery_rounds": min(step, 1) + (not within_limits)}


def test_status_renders_the_checkpoint_so_far(tmp_path):
    args = argparse.Namespace(limit=1.0, step=0.1, recovery_steps=600, lr=1e-3, bn_batches=100, test_images=500)
    assert within.status(tmp_path, args).startswith(f"no checkpoint at {tmp_path}")
    rows = [frontier_row(0, 0.0, 0.0, True), frontier_row(1, 0.097, 0.4, True), frontier_row(2, 0.198, 1.3, False)]
    torch.save({"frontier": rows[:2], "finished": False}, tmp_path / "state.pt")
    text = within.status(tmp_path, args)
    assert "(in progress, 1 step(s) done)" in text and "Reached: 9.7% fewer parameters" in text
    assert "re-estimated on 100 training batches" in text and "| 1 | 9.7% | 0.90M |" in text
    torch.save({"frontier": rows, "finished": True}, tmp_path / "state.pt")
    text = within.status(tmp_path, args)
    assert "(finished)" in text and "Reached: 9.7%" in text and "| 80.0 (-1.3) |" in text and "| no | 2 |" in text
    assert "validation" not in text
    text = within.status(tmp_path, argparse.Namespace(**vars(args), validate_images=300, eval_every=150))
    assert "step chosen every 150 steps by its worst margin to a limit on 300 validation scenes" in text


def test_task_weights_are_parsed_and_bad_items_refused_by_name(capsys):
    parser = argparse.ArgumentParser(prog="within.py")
    assert within.task_weights("", parser) == {}
    assert within.task_weights("lane=2,det=1.5", parser) == {"lane": 2.0, "det": 1.5}
    for bad in ("lanes=2", "lane=0", "lane=-1", "lane", "lane=x"):
        with pytest.raises(SystemExit) as stop:
            within.task_weights(bad, parser)
        assert stop.value.code == 2
        assert f"got {bad!r}" in capsys.readouterr().err


def test_status_names_the_heads_distillation_the_weights_and_the_protected_layers(tmp_path):
    args = argparse.Namespace(limit=1.0, step=0.1, recovery_steps=600, lr=1e-3, bn_batches=100, test_images=500,
                              heads=True, task_weights="lane=2", protect="lane_head.*")
    torch.save({"frontier": [frontier_row(0, 0.0, 0.0, True)], "finished": False}, tmp_path / "state.pt")
    text = within.status(tmp_path, args)
    assert "distillation of the trunk and the heads' outputs" in text
    assert "conflict_taylor with task weights lane=2" in text and "layers lane_head.* never narrowed" in text
