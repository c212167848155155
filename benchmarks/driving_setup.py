"""What the driving benchmarks share: the trained teacher, its tasks, the synthetic scenes, pruning with gradients
from the training scenes, and fine-tuning a student with the same budget.

Used by benchmarks/ablation.py and benchmarks/latency_tasks.py; within.py and recovery_drift.py take the names,
the size, the heads' output layers and `points` from here.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from harness import ROOT

import taskprune
from taskprune import driving
from taskprune.driving.pretrained import weights_path

METRICS = ("recall", "map50", "drivable_miou", "lane_acc", "lane_iou")
SIZE = (192, 320)  # the shipped teacher's image size
TEST_SEED, VALIDATION_SEED = 20_000, 10_000  # SyntheticDriving seeds of the held-out scenes (training uses 0)
HEADS = ("det_heads.0", "det_heads.1", "det_heads.2", "drivable_head.7", "lane_head.7")  # DrivingNet's output convs


def points(count: int, seed: int) -> Callable[[torch.nn.Module], dict[str, float]]:
    """An evaluate(model) -> {metric: points, 0-100} on `count` synthetic scenes of the given seed, at SIZE."""
    scenes = driving.loader(driving.SyntheticDriving(count, size=SIZE, seed=seed), batch_size=16)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        metrics = driving.evaluate(model, scenes)
        return {m: 100 * metrics[m] for m in METRICS}

    return evaluate


def render(count: int, size: tuple[int, int], seed: int) -> list[dict[str, torch.Tensor]]:
    scenes = driving.SyntheticDriving(count, size=size, seed=seed)
    return [scenes[i] for i in range(count)]


def add_setup_arguments(parser: argparse.ArgumentParser, *, train_images: int, val_images: int,
                        prune_batches: int, steps: int) -> None:
    """The teacher, scenes and fine-tune budget that ablation.py and latency_tasks.py share."""
    parser.add_argument("--size", default="s", choices=["n", "s", "m"])
    parser.add_argument("--image-size", type=int, nargs=2, default=(192, 320))
    parser.add_argument("--teacher", type=Path, default=None,
                        help="default: the shipped teacher, taskprune/driving/weights/driving_<size>.pt")
    parser.add_argument("--train-images", type=int, default=train_images)
    parser.add_argument("--val-images", type=int, default=val_images)
    parser.add_argument("--prune-batches", type=int, default=prune_batches)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=steps, help="fine-tune steps per student")
    parser.add_argument("--epochs", type=int, default=100, help="upper bound; --steps stops first")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")


@dataclass
class Setup:
    """The trained teacher, its tasks, the scenes and the teacher's own metrics on the held-out ones."""

    teacher: torch.nn.Module
    teacher_path: str
    tasks: taskprune.Tasks
    train: list
    val: list
    example: torch.Tensor
    teacher_metrics: dict

    def record(self, args: argparse.Namespace) -> dict:
        """What every results file says about the teacher and the settings."""
        return {"size": args.size, "image_size": list(args.image_size), "teacher": self.teacher_path,
                "teacher_params": sum(p.numel() for p in self.teacher.parameters()),
                "teacher_metrics": self.teacher_metrics,
                "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}


def load_setup(args: argparse.Namespace) -> Setup:
    torch.manual_seed(args.seed)
    size = tuple(args.image_size)
    path = args.teacher or weights_path(args.size)
    teacher = driving.DrivingNet(size=args.size)
    teacher.load_state_dict(torch.load(path, weights_only=True))
    teacher.eval()
    val = driving.loader(render(args.val_images, size, seed=10_000 + args.seed), batch_size=args.batch_size)
    return Setup(teacher, str(path.resolve()).replace(str(ROOT) + "/", ""), driving.driving_tasks(),
                 render(args.train_images, size, seed=args.seed), val, torch.zeros(1, 3, *size),
                 driving.evaluate(teacher, val))


def prune_for(teacher, example, tasks, train, args, **prune_kwargs) -> tuple[taskprune.PruneResult, float]:
    """Prune `teacher` (left as it is) with gradients from `args.prune_batches` batches of `train`; returns the
    result and the seconds it took."""
    start = time.perf_counter()
    result = taskprune.prune(teacher, example, tasks=tasks, data=driving.loader(train, batch_size=args.batch_size),
                             num_batches=args.prune_batches, progress=False, **prune_kwargs)
    return result, time.perf_counter() - start


def finetune_and_score(teacher, result, tasks, train, val, distill: str, args) -> tuple[torch.nn.Module, dict]:
    """Evaluate the pruned model, fine-tune it with the budget in `args` (distilling from `teacher` unless
    `distill` is "none"), evaluate again; returns the student and a record of the run."""
    pruned_metrics = driving.evaluate(result.model, val)
    start = time.perf_counter()
    kd = None if distill == "none" else taskprune.Distill(layers="auto", loss=distill)
    student = taskprune.finetune(result.model, tasks, driving.loader(train, batch_size=args.batch_size,
                                                                     shuffle=True, seed=args.seed),
                                 epochs=args.epochs, max_steps=args.steps, lr=args.lr, warmup_steps=args.steps // 10,
                                 teacher=teacher if kd else None, distill=kd,
                                 channel_map=result.channel_map if kd else None,
                                 progress=args.progress, seed=args.seed,
                                 bn_mode="train", keep_best=False)  # the defaults before issue 25
    finetune_seconds = time.perf_counter() - start
    metrics = driving.evaluate(student, val)
    return student, {"distill": distill, "params_after": result.report.params_after,
                     "params_reduction": 1 - result.report.params_after / result.report.params_before,
                     "macs_after": result.report.macs_after, "after_pruning": pruned_metrics,
                     "after_finetune": metrics, "finetune_s": finetune_seconds}
