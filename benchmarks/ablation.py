"""The evidence grid: does task-aware pruning beat task-blind pruning by more than the spread of seeds?

On the driving teacher (DrivingNet-s at 192x320 on synthetic scenes), for every parameter reduction, criterion and
seed: prune, evaluate ("pruned"), fine-tune with feature distillation from the teacher and evaluate again
("distilled"); conflict_taylor is also fine-tuned without distillation ("finetuned"). Plain torch-pruning as its
docs tell a user to run it (`tp_taylor_global`: MetaPruner, GroupTaylorImportance, global_pruning=True, the same
round_to, the output layers ignored by hand, its channel ratio bisected to the same parameter count) gets the same
fine-tune. Control rows: the teacher, and the teacher fine-tuned for the same extra steps ("teacher_finetuned"):
if that row gains, part of a student's recovery is just more training. The seed drives which training batches
score the channels and the order of the fine-tune; everything else is fixed.

    python benchmarks/ablation.py                   # the grid, resumable (about 4 h of one core)
    python benchmarks/ablation.py --shard 1/2 &     # ... split over two processes
    python benchmarks/ablation.py --shard 2/2
    python benchmarks/ablation.py --reductions 0.6 --criteria conflict_taylor:lam=0.25,conflict_taylor:lam=1
    python benchmarks/ablation.py --reductions 0.6 --criteria "conflict_taylor:measure=sign_purity"
    python benchmarks/ablation.py --quick           # the whole pipeline on a small budget, under 10 minutes
    python benchmarks/ablation.py --collect         # only rebuild ablation.json / .md / .png from the run files

Every finished run writes benchmarks/results/ablation_runs/<run>.json (commit each as it lands); a re-run skips
runs whose file holds the same settings. `--collect` (also done after every run) gathers them into
benchmarks/results/ablation.json = {"meta": {...}, "rows": [...]}, ablation.md and ablation.png (ablation_report.py).
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from ablation_report import collect
from driving_setup import METRICS
from harness import RESULTS, ROOT, done, write_json
from tp_baseline import prune_like_torch_pruning

import taskprune
from taskprune import driving
from taskprune.graph import count_macs

CONTROLS = ("teacher", "teacher_finetuned")
TP_BASELINE = "tp_taylor_global"


@dataclass(frozen=True)
class Settings:
    """Everything a run's numbers depend on besides (reduction, criterion, seed)."""

    teacher: str = "taskprune/driving/weights/driving_s.pt"
    size: str = "s"
    image_size: tuple[int, int] = (192, 320)
    train_images: int = 4000
    train_seed: int = 0
    test_images: int = 500
    test_seed: int = 20_000  # neither the teacher's training (1) nor its validation (10000) scenes
    prune_batches: int = 8
    batch_size: int = 8
    round_to: int = 8
    steps: int = 400
    lr: float = 1e-3
    distill: str = "mse"


@dataclass(frozen=True)
class Run:
    reduction: float
    criterion: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.reduction:.2f}_{self.criterion.replace(':', '-').replace('=', '')}_seed{self.seed}"


def plan_runs(reductions: list[float], criteria: list[str], seeds: list[int]) -> list[Run]:
    """Seed by seed, so a partial grid already compares every criterion."""
    runs = [Run(0.0, "teacher", 0)]
    for seed in seeds:
        runs.append(Run(0.0, "teacher_finetuned", seed))
        runs += [Run(r, c, seed) for r in reductions for c in criteria]
    return runs


class Bench:
    """The teacher, its tasks, the scenes and the teacher's metrics on the test scenes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.teacher = driving.DrivingNet(size=settings.size)
        self.teacher.load_state_dict(torch.load(ROOT / settings.teacher, weights_only=True))
        self.teacher.eval()
        self.tasks = driving.driving_tasks()
        self.train = driving.SyntheticDriving(settings.train_images, size=settings.image_size,
                                              seed=settings.train_seed)
        self.test = driving.SyntheticDriving(settings.test_images, size=settings.image_size, seed=settings.test_seed)
        self.example = torch.zeros(1, 3, *settings.image_size)
        self.teacher_metrics = self.evaluate(self.teacher)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return driving.evaluate(model, driving.loader(self.test, batch_size=16))

    def scoring_batches(self, seed: int) -> list[dict[str, torch.Tensor]]:
        batches = driving.loader(self.train, batch_size=self.settings.batch_size, shuffle=True, seed=seed)
        return [batch for _, batch in zip(range(self.settings.prune_batches), batches, strict=False)]

    def row(self, run: Run, stage: str, model: torch.nn.Module, seconds: float) -> dict:
        metrics = self.evaluate(model)
        params = sum(p.numel() for p in model.parameters())
        teacher_params = sum(p.numel() for p in self.teacher.parameters())
        return {"reduction": run.reduction, "criterion": run.criterion, "stage": stage,
                "seed": None if run.criterion == "teacher" else run.seed, "params": params,
                "params_reduction": 1 - params / teacher_params, "macs": count_macs(model, self.example),
                **{m: 100 * metrics[m] for m in METRICS},
                "delta_m": 100 * driving.delta_m(metrics, self.teacher_metrics), "seconds": round(seconds, 1)}

    def finetune(self, student: torch.nn.Module, seed: int, teacher: torch.nn.Module | None = None,
                 channel_map: dict | None = None) -> torch.nn.Module:
        settings = self.settings
        distill = taskprune.Distill(layers="auto", loss=settings.distill) if teacher is not None else None
        return taskprune.finetune(student, self.tasks, self.train, epochs=100, max_steps=settings.steps,
                                  lr=settings.lr, warmup_steps=settings.steps // 10, batch_size=settings.batch_size,
                                  collate_fn=driving.collate, teacher=teacher, distill=distill,
                                  channel_map=channel_map, progress=False, seed=seed,
                                  bn_mode="train", keep_best=False)  # the defaults before issue 25


def criterion_of(name: str) -> object:
    """"conflict_taylor:lam=0.25;measure=sign_purity" -> the criterion with those options (numbers as floats)."""
    base, _, options = name.partition(":")
    kwargs = dict(option.split("=") for option in options.split(";") if option)
    return taskprune.get_criterion(base, **{k: _number_or_text(v) for k, v in kwargs.items()})


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def execute(run: Run, bench: Bench) -> list[dict]:
    """Every row of one run (the stages of one student, or a control)."""
    start = time.perf_counter()
    torch.manual_seed(run.seed)
    if run.criterion == "teacher":
        return [bench.row(run, "pruned", bench.teacher, 0.0)]
    if run.criterion == "teacher_finetuned":
        dense = bench.finetune(copy.deepcopy(bench.teacher), run.seed)
        return [bench.row(run, "finetuned", dense, time.perf_counter() - start)]
    batches = bench.scoring_batches(run.seed)
    if run.criterion == TP_BASELINE:
        target = sum(p.numel() for p in bench.teacher.parameters()) * (1 - run.reduction)
        pruned, channel_map = prune_like_torch_pruning(bench.teacher, bench.example, bench.tasks, batches, target,
                                                       bench.settings.round_to)
    else:
        result = taskprune.prune(bench.teacher, bench.example, ratio=run.reduction, importance=criterion_of(
            run.criterion), tasks=bench.tasks, data=batches, num_batches=len(batches),
            round_to=bench.settings.round_to, progress=False, seed=run.seed)
        pruned, channel_map = result.model, result.channel_map
    rows = [bench.row(run, "pruned", pruned, time.perf_counter() - start)]
    if run.criterion == "conflict_taylor":  # its variants are compared after distillation only
        mark = time.perf_counter()
        plain = bench.finetune(copy.deepcopy(pruned), run.seed)
        rows.append(bench.row(run, "finetuned", plain, time.perf_counter() - mark))
    mark = time.perf_counter()
    student = bench.finetune(pruned, run.seed, teacher=bench.teacher, channel_map=channel_map)
    rows.append(bench.row(run, "distilled", student, time.perf_counter() - mark))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reductions", default="0.45,0.6")
    parser.add_argument("--criteria", default=f"random,magnitude,taylor,task_taylor,conflict_taylor,{TP_BASELINE}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=Settings.steps, help="fine-tune steps per student")
    parser.add_argument("--shard", default="1/1", help="k/n: run every n-th run starting at the k-th")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a small budget, results under runs/ablation_quick")
    parser.add_argument("--collect", action="store_true", help="only gather the run files")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings = Settings(steps=args.steps)
    reductions, criteria = [float(r) for r in args.reductions.split(",")], args.criteria.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        settings = Settings(steps=20, train_images=200, test_images=48, prune_batches=2)
        reductions, criteria, seeds = [0.45], ["magnitude", "conflict_taylor", TP_BASELINE], [0]
        args.out = ROOT / "runs" / "ablation_quick"
    folder = args.out / "ablation_runs"
    if args.collect:
        collect(folder, args.out, asdict(settings))
        return
    torch.set_num_threads(args.threads)
    shard, shards = (int(part) for part in args.shard.split("/"))
    runs = plan_runs(reductions, criteria, seeds)[shard - 1::shards]
    todo = [run for run in runs if not done(folder / f"{run.key}.json", asdict(settings))]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already done; {len(todo)} to go")
    if not todo:
        return
    bench = Bench(settings)
    from rich.progress import track

    for run in track(todo, description="prune + fine-tune"):
        if done(folder / f"{run.key}.json", asdict(settings)):
            continue  # another process (a second shard, a helper given this run) finished it meanwhile
        rows = execute(run, bench)
        record = {"run": asdict(run), "settings": asdict(settings), "rows": rows}
        write_json(folder / f"{run.key}.json", record)
        print(f"{run.key}: " + "; ".join(f"{r['stage']} Delta_m {r['delta_m']:+.2f}%" for r in rows), flush=True)
        collect(folder, args.out, asdict(settings))


if __name__ == "__main__":
    main()
