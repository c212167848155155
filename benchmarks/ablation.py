"""The headline experiment on the reference driving model: prune ~32.7% of the parameters with each criterion,
fine-tune every student with the same budget, and compare the task metrics with the unpruned teacher.

The method we follow reports, on BDD100K, -32.7% parameters with negligible segmentation loss and Recall -1.2 /
mAP50 -1.8 points. Here the teacher is `DrivingNet` trained on synthetic scenes (examples/driving/train_teacher.py),
the scenes come from `SyntheticDriving`, and every number below is measured by this script.

    python benchmarks/ablation.py --size s                        # criteria, with mse distillation
    python benchmarks/ablation.py --size s --criteria conflict_taylor --distill none,mse,pkd,cwd

Writes benchmarks/results/ablation_<size>_<criteria-or-distill>.json and .md.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import taskprune
from taskprune import driving

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("recall", "map50", "drivable_miou", "lane_acc", "lane_iou")


def render(count: int, size: tuple[int, int], seed: int) -> list[dict[str, torch.Tensor]]:
    scenes = driving.SyntheticDriving(count, size=size, seed=seed)
    return [scenes[i] for i in range(count)]


def add_setup_arguments(parser: argparse.ArgumentParser, *, train_images: int, val_images: int,
                        prune_batches: int, steps: int) -> None:
    """The teacher, scenes and fine-tune budget that ablation.py and latency_tasks.py share."""
    parser.add_argument("--size", default="s", choices=["n", "s", "m"])
    parser.add_argument("--image-size", type=int, nargs=2, default=(192, 320))
    parser.add_argument("--teacher", type=Path, default=None, help="default: benchmarks/checkpoints/driving_<size>_teacher.pt")
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
    path = args.teacher or ROOT / "benchmarks" / "checkpoints" / f"driving_{args.size}_teacher.pt"
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
                                 progress=args.progress, seed=args.seed)
    finetune_seconds = time.perf_counter() - start
    metrics = driving.evaluate(student, val)
    return student, {"distill": distill, "params_after": result.report.params_after,
                     "params_reduction": 1 - result.report.params_after / result.report.params_before,
                     "macs_after": result.report.macs_after, "after_pruning": pruned_metrics,
                     "after_finetune": metrics, "finetune_s": finetune_seconds}


def run(teacher, example, tasks, train, val, criterion: str, distill: str, args) -> dict:
    result, prune_seconds = prune_for(teacher, example, tasks, train, args, ratio=args.ratio, importance=criterion,
                                      round_to=args.round_to)
    _, record = finetune_and_score(teacher, result, tasks, train, val, distill, args)
    return {"criterion": criterion, **record, "prune_s": prune_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(parser, train_images=800, val_images=300, prune_batches=16, steps=300)
    parser.add_argument("--ratio", type=float, default=0.327)
    parser.add_argument("--criteria", default="magnitude,taylor,task_taylor,conflict_taylor,random")
    parser.add_argument("--distill", default="mse", help="comma list of none, mse, pkd, cwd")
    parser.add_argument("--round-to", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rewrite", type=Path, default=None, help="only re-render the tables of a results JSON")
    args = parser.parse_args()
    if args.rewrite is not None:
        write(json.loads(args.rewrite.read_text()), args.rewrite.stem)
        return
    torch.set_num_threads(args.threads)
    setup = load_setup(args)
    runs = []
    from rich.progress import track

    pairs = [(c, d) for c in args.criteria.split(",") for d in args.distill.split(",")]
    for criterion, distill in track(pairs, description="prune + fine-tune"):
        runs.append(run(copy.deepcopy(setup.teacher), setup.example, setup.tasks, setup.train, setup.val, criterion,
                        distill, args))
        try:
            runs[-1]["delta_m"] = driving.delta_m(runs[-1]["after_finetune"], setup.teacher_metrics)
        except ValueError:  # a teacher metric of 0 (an untrained teacher) leaves the relative change undefined
            runs[-1]["delta_m"] = None
    label = args.criteria.replace(",", "-") if len(args.criteria.split(",")) > 1 else \
        f"{args.criteria}_distill-{args.distill.replace(',', '-')}"
    write({**setup.record(args), "runs": runs}, f"ablation_{args.size}_{label}")


def write(result: dict, stem: str) -> None:
    from rich.console import Console
    from rich.table import Table

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    teacher = result["teacher_metrics"]
    header = ["criterion", "distill", "params", "Recall", "mAP50", "drivable mIoU", "lane Acc", "lane IoU", "Delta_m"]
    rows = [["teacher", "-", f"{result['teacher_params'] / 1e6:.2f}M"]
            + [f"{100 * teacher[m]:.1f}" for m in METRICS] + ["0"]]
    pruned_rows = []
    for run in result["runs"]:
        after = run["after_finetune"]
        cells = [f"{100 * after[m]:.1f} ({100 * (after[m] - teacher[m]):+.1f})" for m in METRICS]
        params = f"{run['params_after'] / 1e6:.2f}M (-{100 * run['params_reduction']:.1f}%)"
        rows.append([run["criterion"], run["distill"], params]
                    + cells + ["n/a" if run["delta_m"] is None else f"{100 * run['delta_m']:+.2f}%"])
        pruned_rows.append([run["criterion"], params] + [f"{100 * run['after_pruning'][m]:.1f}" for m in METRICS])
    markdown = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    markdown += ["| " + " | ".join(row) + " |" for row in rows]
    steps = result["settings"]["steps"]
    markdown += ["", f"After pruning, before the {steps}-step fine-tune (same students):", "",
                 "| criterion | params | Recall | mAP50 | drivable mIoU | lane Acc | lane IoU |", "|---|---|---|---|---|---|---|"]
    markdown += ["| " + " | ".join(row) + " |" for row in pruned_rows]
    (RESULTS / f"{stem}.md").write_text("\n".join(markdown) + "\n")
    table = Table(title=f"ablation: DrivingNet-{result['size']} {result['image_size']}, metrics in points")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
