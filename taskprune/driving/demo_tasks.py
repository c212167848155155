"""The per-task part of `taskprune demo`: a product that needs only some tasks (`extract`), and pruning as far as
two limits allow (`prune_within`), on the same teacher and scenes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..extract import extract
from ..steps import prune_within
from ..train import FinetuneConfig
from .metrics import evaluate
from .tasks import collate, loader

__all__ = ["show_per_task"]


def show_per_task(teacher: torch.nn.Module, tasks: Any, train: Any, val: Any, example: torch.Tensor, config: Any,
                  console: Any) -> list[Path]:
    """Print what extract and prune_within do for the driving teacher; returns the files written."""
    out = Path(config.out)
    files = []
    parking = extract(teacher, example, keep=["det", "drivable"], tasks=tasks)
    batch = next(iter(loader(val, batch_size=4)))["image"]
    with torch.no_grad():
        full, kept = teacher(batch), parking.model(batch)
    identical = torch.equal(kept["drivable"], full.drivable) and all(
        torch.equal(a, b) for a, b in zip(kept["det"], full.det, strict=True))
    report = parking.report
    lanes = report.removed.get("lane", {"modules": [], "params": 0})
    console.print(f"[bold]per task[/]: a parking camera needs detection and drivable area only; extract() removed "
                  f"{len(lanes['modules'])} modules that served only lanes: {lanes['params']:,} parameters "
                  f"(-{1 - report.params_after / report.params_before:.1%}) and "
                  f"{1 - report.macs_after / report.macs_before:.1%} of the MACs; its det and drivable outputs are "
                  f"{'bit-identical' if identical else 'NOT identical'} to the teacher's")

    def points(model: torch.nn.Module) -> dict[str, float]:
        metrics = evaluate(model, loader(val, batch_size=16))
        return {"map50": 100 * metrics["map50"], "lane_iou": 100 * metrics["lane_iou"]}

    limit = config.within_limit
    console.print(f"[bold]per task[/]: prune_within() removes {config.within_step:.0%} of the parameters per step "
                  f"(up to {config.within_max:.0%}), recovers {config.within_recovery} steps after each, and stops "
                  f"when mAP50 or lane IoU drops more than {limit:g} points on {len(val)} held-out scenes; the lane "
                  "head is never narrowed (protect=['lane_head.*']), and the demo skips the remedies and bisection")
    found = prune_within(teacher, example, tasks=tasks, data=train, collate_fn=collate, evaluate=points,
                         limits={"map50": limit, "lane_iou": limit}, step=config.within_step,
                         max_ratio=config.within_max, resolution=config.within_step, remedies=(), round_to=8,
                         protect=["lane_head.*"],
                         num_batches=config.prune_batches,
                         recovery=FinetuneConfig(epochs=1000, max_steps=config.within_recovery, lr=1e-3,
                                                 warmup_steps=config.within_recovery // 10,
                                                  batch_size=config.batch_size, bn_batches=config.within_bn_batches,
                                                  progress=False, bn_mode="train", keep_best=False,
                                                  judge_start=False),
                         measure_latency=False, progress=True)
    for row in found.frontier[1:]:
        console.print(f"  {row['reduction']:.1%} fewer parameters: mAP50 {row['map50']:.1f} "
                      f"({-row['drop']['map50']:+.1f}), lane IoU {row['lane_iou']:.1f} "
                      f"({-row['drop']['lane_iou']:+.1f})"
                      f" -> {'within' if row['within'] else 'a limit broken: stop'}")
    kept = found.result.report
    console.print(f"  prune_within returned the model with {found.reduction:.1%} fewer parameters "
                  f"({kept.params_before:,} -> {kept.params_after:,}), every limit held"
                  if found.reduction > 0 else
                  "  prune_within returned the unpruned model: already the first step broke a limit")
    (out / "within.json").write_text(json.dumps(json.loads(found.to_json()), indent=2))
    files.append(out / "within.json")
    try:
        files.append(found.plot(out / "within.png"))
    except ImportError:
        pass  # pictures need taskprune[plot]; the demo's first part said so
    return files
