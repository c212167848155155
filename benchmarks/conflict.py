"""Does the gradient-conflict penalty help where tasks really conflict? (issue 25, item 5)

On the two-task colour/texture setting of conflict_setting.py (a shared trunk pooled to 1 number for 6 targets),
for each seed: train the teacher, and the same network on each task alone (negative transfer); check that the tasks'
gradients oppose on the shared channels (median conflict k, the cosine measure `conflict_taylor` uses) and that the
plans differ (share of `task_taylor`'s kept channels that each other criterion keeps too); then prune with every
criterion at the same parameter ratio, recover with the same short fine-tune (the step kept is the best on the
validation split, the unrecovered model included) and report each task's error on the untouched test split. The
seed fixes the teacher's initialisation and data order, the scoring batches and the recovery order: differences are
paired by seed.

    python benchmarks/conflict.py                 # 5 seeds, about 2 CPU-minutes at 1 thread
    python benchmarks/conflict.py --quick         # the whole pipeline on a tiny budget, for a smoke test

Each seed writes benchmarks/results/conflict_runs/seed<n>.json (skipped on a re-run with the same settings); the
summary goes to benchmarks/results/conflict.json and conflict.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, replace
from typing import Any

import torch
from conflict_rank import ConflictRank
from conflict_report import render
from conflict_setting import (
    TASKS,
    Setting,
    TwoTaskNet,
    evaluate,
    make_split,
    negative_transfer,
    standardise,
    tasks,
    train,
)
from harness import RESULTS, done, machine, write_json, write_results
from plan_overlap import RecordingConflict
from torch import nn

import taskprune

CRITERIA = ("taylor", "task_taylor", "conflict_taylor", "conflict_rank")
BASE = "task_taylor"
CHECKS = {"median_conflict_above": 0.3, "overlap_below": 0.95}
QUICK = {"image": 16, "train_images": 512, "validation_images": 128, "test_images": 128, "teacher_steps": 200}


def criterion_of(name: str) -> Any:
    return ConflictRank() if name == "conflict_rank" else taskprune.get_criterion(name)


def shared_conflict(model: nn.Module, example: torch.Tensor, batches: list[dict],
                    task_set: taskprune.Tasks | None = None) -> torch.Tensor:
    """k per channel of the prunable groups that serve both tasks, measured as `conflict_taylor` measures it (the
    model is not changed: the prune that measures it works on a copy)."""
    recorder = RecordingConflict(measure="cosine")
    taskprune.prune(model, example, ratio=0.1, importance=recorder, tasks=task_set or tasks(), data=batches,
                    num_batches=len(batches), round_to=None, progress=False)
    return recorder.shared


def kept_share(base: dict[str, list[int]], other: dict[str, list[int]], widths: dict[str, int]) -> float:
    """The share of the channels `base` keeps that `other` keeps too; a layer missing from a channel map kept all
    its `widths[layer]` channels."""
    layers = sorted(set(base) | set(other))
    mine = [set(base.get(layer, range(widths[layer]))) for layer in layers]
    theirs = [set(other.get(layer, range(widths[layer]))) for layer in layers]
    return sum(len(a & b) for a, b in zip(mine, theirs, strict=True)) / sum(len(a) for a in mine)


def widths_of(model: nn.Module) -> dict[str, int]:
    return {name: module.weight.shape[0] for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))}


def delta_m(errors: dict[str, float], teacher: dict[str, float]) -> float:
    """Mean relative change of the error against the teacher's, in percent; positive is better."""
    return 100 * statistics.fmean((teacher[t] - errors[t]) / teacher[t] for t in TASKS)


def run_seed(setting: Setting, args: argparse.Namespace, seed: int) -> dict:
    started = time.process_time()
    splits = [make_split(setting.train_images, seed, setting.image),
              make_split(setting.validation_images, 10_000 + seed, setting.image),
              make_split(setting.test_images, 20_000 + seed, setting.image)]
    standardise(splits)
    data, validation, test = splits
    torch.manual_seed(seed)
    teacher = train(TwoTaskNet(setting), data, setting.teacher_steps, setting.lr, seed, setting.batch_size)
    teacher_test, teacher_validation = evaluate(teacher, test), evaluate(teacher, validation)
    batches = data.batches(setting.batch_size, seed=100 + seed)[:args.scoring_batches]
    example = data.images[:2]
    k = shared_conflict(teacher, example, batches)
    plans, rows = {}, {}
    for name in CRITERIA:
        torch.manual_seed(seed)
        result = taskprune.prune(teacher, example, ratio=args.ratio, importance=criterion_of(name), tasks=tasks(),
                                 data=batches, num_batches=len(batches), round_to=None, progress=False, seed=seed)
        plans[name] = result.channel_map
        pruned_test = evaluate(result.model, test)
        student = train(result.model, data, args.recovery_steps, args.recovery_lr, seed, setting.batch_size,
                        validation=validation, judge=lambda errors: -delta_m(errors, teacher_validation),
                        every=args.eval_every)
        recovered = evaluate(student, test)
        rows[name] = {"params": result.report.params_after, "pruned_mse": pruned_test, "recovered_mse": recovered,
                      "pruned_delta_m": delta_m(pruned_test, teacher_test),
                      "delta_m": delta_m(recovered, teacher_test)}
    widths = widths_of(teacher)
    overlap = {name: kept_share(plans[BASE], plans[name], widths) for name in CRITERIA if name != BASE}
    transfer = negative_transfer(setting, data, test, teacher, seed) if seed in args.transfer_seeds else {}
    return {"seed": seed, "teacher_mse": teacher_test, "teacher_params": sum(p.numel() for p in teacher.parameters()),
            "negative_transfer": transfer,
            "conflict": {"channels": k.numel(), "median": float(k.median()), "mean": float(k.mean()),
                         "p10": float(torch.quantile(k, 0.1)), "p90": float(torch.quantile(k, 0.9))},
            "overlap_with_task_taylor": overlap, "criteria": rows, "cpu_seconds": time.process_time() - started}


def summarise(runs: list[dict]) -> dict:
    """Checks per seed, and every criterion's Delta_m minus task_taylor's, paired by seed."""
    checks = [{"seed": r["seed"], "median_conflict": r["conflict"]["median"],
               "conflict_taylor_overlap": r["overlap_with_task_taylor"]["conflict_taylor"],
               "passed": r["conflict"]["median"] > CHECKS["median_conflict_above"]
               and r["overlap_with_task_taylor"]["conflict_taylor"] < CHECKS["overlap_below"]} for r in runs]
    pairs = {}
    for name in CRITERIA:
        if name == BASE:
            continue
        diffs = [r["criteria"][name]["delta_m"] - r["criteria"][BASE]["delta_m"] for r in runs]
        pairs[name] = {"mean": statistics.fmean(diffs), "std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
                       "min": min(diffs), "max": max(diffs), "per_seed": diffs,
                       "verdict": "ahead" if min(diffs) > 0 else "behind" if max(diffs) < 0 else "within spread"}
    return {"checks": checks, "minus_task_taylor": pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--ratio", type=float, default=0.6, help="share of the parameters removed")
    parser.add_argument("--scoring-batches", type=int, default=16)
    parser.add_argument("--recovery-steps", type=int, default=200)
    parser.add_argument("--recovery-lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--transfer-seeds", type=lambda text: [int(s) for s in text.split(",") if s], default=[0],
                        help="seeds whose teacher is also compared with single-task networks (negative transfer)")
    parser.add_argument("--quick", action="store_true", help="tiny budget; writes conflict_quick.*")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setting = Setting()
    stem = "conflict"
    if args.quick:
        setting = replace(setting, **QUICK)
        args.recovery_steps, args.scoring_batches, args.seeds, stem = 40, 4, "0,1", "conflict_quick"
    settings = {"setting": asdict(setting), **{k: v for k, v in vars(args).items() if k not in ("seeds", "threads")}}
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        path = RESULTS / f"{stem}_runs" / f"seed{seed}.json"
        if not done(path, settings):
            write_json(path, {"settings": settings, "machine": machine(), "run": run_seed(setting, args, seed)})
        runs.append(json.loads(path.read_text())["run"])
    record = {"settings": settings, "command": "python benchmarks/conflict.py" + (" --quick" if args.quick else ""),
              "machine": machine(), "runs": runs, **summarise(runs)}
    write_results(RESULTS, stem, record, render(record))
    print(render(record))


if __name__ == "__main__":
    main()
