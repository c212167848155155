"""`taskprune demo`: the whole story on the reference driving model, from the shipped teacher to a pruned and
recovered student, with one table and a folder of results.

Steps: load the teacher (`pretrained`), prune it with `task_taylor` for its three tasks, fine-tune the pruned
model with feature distillation from the teacher, evaluate all three on held-out scenes, time them on this CPU,
print teacher / pruned / pruned + distilled side by side, and write the run folder (report JSON and markdown, the
table as JSON and markdown, two PNG pictures, the student as a taskprune file).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..distill import Distill
from ..keeping import save
from ..prune import prune
from ..train import finetune
from .metrics import delta_m, evaluate
from .model import SIZES
from .pretrained import pretrained
from .synthetic import SyntheticDriving
from .tasks import collate, driving_tasks, loader

__all__ = ["DemoConfig", "run_demo"]

METRICS = ("recall", "map50", "drivable_miou", "lane_acc", "lane_iou")
_HEADERS = ("Recall", "mAP50", "drivable mIoU", "lane Acc", "lane IoU")


@dataclass(frozen=True)
class DemoConfig:
    """Settings of `run_demo` (the `taskprune demo` options).

    Args:
        size: DrivingNet size, "n", "s" or "m" ("s" is shipped; the others are trained and cached first).
        ratio: fraction of `target` to remove.
        steps: fine-tuning steps (batch `batch_size`).
        target: "params" or "latency" (measured on this machine).
        data: "synthetic", or "bdd100k:PATH" for BDD100K in YOLOP's layout (needs `taskprune[bdd100k]`).
        image_size: (height, width), multiples of 32.
        train_images, val_images: synthetic scenes to train on and to evaluate on (held out: another seed).
        prune_batches, batch_size: batches of gradients that score the channels, and images per batch.
        out: the run folder.
        threads: torch threads (None: torch's default).
        per_task: also show `extract` (detection and drivable area only) and `prune_within` (as far as mAP50 and
            lane IoU stay within `within_limit` points, in steps of `within_step` up to `within_max`, with
            `within_recovery` recovery steps and `within_bn_batches` batches of BatchNorm statistics after each,
            the lane head never narrowed; it stops at the first step that breaks a limit: no remedies and no
            bisection, to stay short).
        latency_repeats: interleaved timing rounds of the teacher and the student (the table gives the median
            and the interquartile range).
    """

    size: str = "s"
    ratio: float = 0.4
    steps: int = 200
    target: str = "params"
    data: str = "synthetic"
    image_size: tuple[int, int] = (192, 320)
    train_images: int = 2000
    val_images: int = 200
    prune_batches: int = 8
    batch_size: int = 8
    out: Path = Path("runs/demo")
    threads: int | None = None
    per_task: bool = True
    within_limit: float = 3.0
    within_step: float = 0.1
    within_max: float = 0.3
    within_recovery: int = 30
    within_bn_batches: int = 16
    latency_repeats: int = 21

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"Unknown size {self.size!r}; available: {', '.join(SIZES)}")
        if self.target not in ("params", "latency"):
            raise ValueError(f"Unknown target {self.target!r} for the demo; available: params, latency")
        if not (self.data == "synthetic" or self.data.startswith("bdd100k:")):
            raise ValueError(f"data must be 'synthetic' or 'bdd100k:PATH', got {self.data!r}")
        if any(side % 32 for side in self.image_size):
            raise ValueError(f"image_size sides must be multiples of 32, got {self.image_size}")
        for name in ("steps", "train_images", "val_images", "prune_batches", "batch_size", "latency_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def quick(cls, **changes: Any) -> DemoConfig:
        """The `--quick` budget: fewer recovery steps, scenes and scoring batches, and two prune_within steps."""
        return cls(**{"steps": 30, "train_images": 320, "val_images": 48, "prune_batches": 2,
                      "within_recovery": 12, "within_bn_batches": 8, "within_max": 0.2, **changes})


def _datasets(config: DemoConfig) -> tuple[Any, Any]:
    if config.data == "synthetic":
        return (SyntheticDriving(config.train_images, size=config.image_size, seed=0),
                SyntheticDriving(config.val_images, size=config.image_size, seed=20_000))
    from .bdd100k import BDD100K

    root = config.data.split(":", 1)[1]
    return BDD100K(root, split="train", size=config.image_size), BDD100K(root, split="val", size=config.image_size)


def run_demo(config: DemoConfig, console: Any = None) -> dict[str, Any]:
    """Run the demo; returns {"rows": {model: {...}}, "files": [...]} and writes everything under `config.out`."""
    import sys

    from rich.console import Console

    # a log file or CI is 80 columns to rich; the ten-column table needs more
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    clock = _Clock()
    teacher = pretrained(config.size)
    tasks = driving_tasks()
    train, val = _datasets(config)
    example = torch.zeros(1, 3, *config.image_size)
    console.print(f"[bold]1/4 prune[/]: DrivingNet-{config.size}, task_taylor, remove {config.ratio:.0%} of "
                  f"the {config.target}")
    result = prune(teacher, example, ratio=config.ratio, target=config.target, importance="task_taylor",
                   tasks=tasks, data=loader(train, batch_size=config.batch_size, shuffle=True),
                   num_batches=config.prune_batches)
    pruned = copy.deepcopy(result.model)
    clock.lap("prune")
    console.print(f"[bold]2/4 recover[/]: {config.steps} steps of fine-tuning with distillation from the teacher")
    student = finetune(result.model, tasks, train, epochs=1000, max_steps=config.steps, lr=1e-3,
                       warmup_steps=config.steps // 10, batch_size=config.batch_size, collate_fn=collate,
                       teacher=teacher, distill=Distill(layers="auto", loss="mse"), channel_map=result.channel_map,
                       bn_mode="train")  # the setting its documented numbers were measured with
    clock.lap("recover")
    console.print(f"[bold]3/4 evaluate[/] on {len(val)} held-out scenes and time each model on this CPU")
    models = {"teacher": teacher, "pruned": pruned, "pruned + distilled": student}
    rows = _measure(models, val, example, config, console)
    table = _table(rows, result, teacher_metrics=rows["teacher"])
    console.print(table)
    console.print(_latency_note(config.latency_repeats))
    clock.lap("evaluate")
    console.print("[bold]4/4 keep[/]: writing the run folder")
    files = _write(config, result, student, rows)
    clock.lap("keep")
    if config.per_task:
        from .demo_tasks import show_per_task

        files += show_per_task(teacher, tasks, train, val, example, config, console)
        clock.lap("per task")
    wall, cpu = clock.total()
    console.print(f"done in {wall / 60:.1f} min ({cpu:.0f} CPU-seconds; by part: "
                  + ", ".join(f"{part} {seconds:.0f}" for part, seconds in clock.cpu.items())
                  + f"); results in {config.out}/: " + ", ".join(f.name for f in files))
    return {"rows": rows, "files": [str(f) for f in files], "minutes": wall / 60, "cpu_seconds": cpu,
            "cpu_seconds_by_part": dict(clock.cpu)}


class _Clock:
    """Wall time and this process's CPU time (user + system), in total and per part of the demo."""

    def __init__(self) -> None:
        self.wall_start, self.cpu_start = time.perf_counter(), time.process_time()
        self.last = self.cpu_start
        self.cpu: dict[str, float] = {}

    def lap(self, part: str) -> None:
        now = time.process_time()
        self.cpu[part] = now - self.last
        self.last = now

    def total(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall_start, time.process_time() - self.cpu_start


def _measure(models: dict[str, torch.nn.Module], val: Any, example: torch.Tensor, config: DemoConfig,
             console: Any) -> dict[str, dict[str, float]]:
    from rich.progress import track

    from ..graph import count_macs, count_params
    from ..latency import measure_rounds

    rows: dict[str, dict[str, float]] = {}
    for name, model in track(models.items(), description="evaluating", console=console, transient=True):
        metrics = evaluate(model, loader(val, batch_size=16))
        rows[name] = {**metrics, "params": float(count_params(model)), "macs": float(count_macs(model, example))}
    with console.status("timing (batch 1, interleaved rounds)"):
        # pruned and distilled share one architecture: time the teacher against the student only
        rounds = measure_rounds([models["teacher"], models["pruned + distilled"]], example, 2,
                                config.latency_repeats)
    teacher_ms, student_ms = (_spread([1000 * t for t in times]) for times in rounds)
    for name in rows:
        rows[name].update(teacher_ms if name == "teacher" else student_ms)
        rows[name]["latency_repeats"] = float(config.latency_repeats)
    rows["pruned"]["latency_reused"] = 1.0  # the student's time: one architecture, timed once
    for name in rows:
        rows[name]["delta_m"] = 100 * delta_m({m: rows[name][m] for m in METRICS},
                                              {m: rows["teacher"][m] for m in METRICS})
    return rows


def _spread(times_ms: list[float]) -> dict[str, float]:
    """Median and interquartile range of one model's timings."""
    q1, median, q3 = statistics.quantiles(times_ms, n=4) if len(times_ms) > 1 else times_ms * 3
    return {"latency_ms": median, "latency_q1_ms": q1, "latency_q3_ms": q3}


def _latency_note(repeats: int) -> str:
    return (f"CPU latency: batch 1, median of {repeats} interleaved runs, interquartile range in brackets; "
            "'= student': the pruned model has the student's layers, so its row repeats the student's time")


def _latency_cell(row: dict[str, float]) -> str:
    reused = " (= student)" if row.get("latency_reused") else ""
    return f"{row['latency_ms']:.1f} ms [{row['latency_q1_ms']:.1f}-{row['latency_q3_ms']:.1f}]{reused}"


def _table(rows: dict[str, dict[str, float]], result: Any, teacher_metrics: dict[str, float]) -> Any:
    from rich.table import Table

    table = Table(title=f"taskprune demo: {result.report.criterion}, {result.report.target} "
                        f"-{result.report.reached:.1%}; metrics in points, change against the teacher")
    for column in ("model", "params", "MACs", "CPU latency", *_HEADERS, "Delta_m"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, row in rows.items():
        change = name != "teacher"
        cells = [f"{100 * row[m]:.1f}" + (f" ({100 * (row[m] - teacher_metrics[m]):+.1f})" if change else "")
                 for m in METRICS]
        table.add_row(name, f"{row['params'] / 1e6:.2f}M", f"{row['macs'] / 1e9:.2f}G",
                      _latency_cell(row), *cells, f"{row['delta_m']:+.2f}%")
    return table


def _markdown(rows: dict[str, dict[str, float]]) -> str:
    header = ("model", "params", "MACs", "CPU latency", *_HEADERS, "Delta_m")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['params'] / 1e6:.2f}M | {row['macs'] / 1e9:.2f}G | {_latency_cell(row)}"
                     f" | " + " | ".join(f"{100 * row[m]:.1f}" for m in METRICS) + f" | {row['delta_m']:+.2f}% |")
    repeats = int(next(iter(rows.values()))["latency_repeats"])
    return "\n".join(lines) + "\n\n" + _latency_note(repeats) + "\n"


def _write(config: DemoConfig, result: Any, student: torch.nn.Module, rows: dict[str, dict[str, float]]
           ) -> list[Path]:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.json", out / "report.md", out / "demo.json", out / "demo.md", out / "student.pt"]
    files[0].write_text(result.report.to_json())
    files[1].write_text(result.report.to_markdown())
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}
    files[2].write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))
    files[3].write_text(_markdown(rows))
    save(dataclasses.replace(result, model=student), files[4])
    from ..reporting.plots import plot_channels, plot_metrics

    try:
        files.append(plot_channels(result.report, out / "channels.png",
                                   title=f"DrivingNet-{config.size}: channels kept per group"))
        files.append(plot_metrics({name: {h: row[m] for h, m in zip(_HEADERS, METRICS, strict=True)}
                                   for name, row in rows.items()}, out / "metrics.png",
                                  title="held-out scenes (points)"))
    except ImportError as missing:  # pictures need taskprune[plot]; everything else is written
        print(f"pictures skipped: {missing}")
    return files
