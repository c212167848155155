"""Evidence that holds out of sample: criteria and torch-pruning at its best, decided on validation scenes and
reported on two untouched test sets, after a short and a long distilled fine-tune.

On the driving teacher (DrivingNet-s at 192x320), at each parameter reduction and seed: prune with a taskprune
criterion (taylor, task_taylor, conflict_taylor) or with plain torch-pruning in every configuration its docs advise
(tp_baseline.SETUPS: global ranking with and without isomorphic pruning, the per-layer cap, uniform per-layer
ratios, five iterative steps), then give every student the same fine-tune with feature distillation from the
teacher and PreciseBN at its end. Scenes come from four disjoint SyntheticDriving seeds: training and scoring (0),
validation (20000: the only scenes any choice looks at), and two test sets (30000, 40000) that are only reported.
The torch-pruning row of the long fine-tune is the configuration with the best mean validation Delta_m after the
short one; nothing else is chosen. Every metric is written for every set, with the teacher's bootstrap 95% interval
over the scenes of each set beside it (the sampling noise a difference has to beat).

    python benchmarks/evidence.py &   # the grid, resumable; each process (one thread) claims the next run
    python benchmarks/evidence.py     # ... a second process on the second core
    python benchmarks/evidence.py --collect       # only rebuild evidence.json / .md from the run files
    python benchmarks/evidence.py --quick         # the whole pipeline on a tiny budget (runs/evidence_quick)
    python benchmarks/evidence.py --seeds 0 --only '0.60_t*_steps1600_seed0'   # a chosen part of the grid

Every finished run writes benchmarks/results/evidence_runs/<run>.json (commit each as it lands); a re-run skips
runs whose file holds the same settings, and a run another living process has claimed (<run>.claim). The report is
evidence_report.py.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from driving_setup import METRICS
from evidence_report import best_torch_pruning, collect
from harness import RESULTS, ROOT, claim, done, machine, write_json
from tp_baseline import SETUPS, prune_like_torch_pruning

import taskprune
from taskprune import driving
from taskprune.graph import count_macs
from taskprune.train import FinetuneConfig

OURS = ("taylor", "task_taylor", "conflict_taylor")
SETS = ("validation", "test_a", "test_b")


@dataclass(frozen=True)
class Settings:
    """Everything a run's numbers depend on besides (reduction, method, seed, steps)."""

    teacher: str = "taskprune/driving/weights/driving_s.pt"
    size: str = "s"
    image_size: tuple[int, int] = (192, 320)
    train_images: int = 4000
    train_seed: int = 0
    eval_images: int = 500
    validation_seed: int = 20_000
    test_seeds: tuple[int, int] = (30_000, 40_000)
    prune_batches: int = 8
    batch_size: int = 8
    round_to: int = 8
    max_layer_ratio: float = 0.8
    lr: float = 1e-3
    distill: str = "mse"
    bn_batches: int = 100
    resamples: int = 1000


@dataclass(frozen=True)
class Run:
    reduction: float
    method: str
    seed: int
    steps: int

    @property
    def key(self) -> str:
        return f"{self.reduction:.2f}_{self.method}_steps{self.steps}_seed{self.seed}"


def plan_runs(reductions: list[float], seeds: list[int], short: int, long: int, folder: Path,
              settings: Settings, choice_seeds: list[int] | None = None) -> list[Run]:
    """The short fine-tunes first, seed by seed; then the long ones, whose torch-pruning row waits until every
    configuration has its short runs on every seed of `choice_seeds` (default `seeds`; their validation decides
    which one)."""
    methods = list(OURS) + list(SETUPS)
    runs = [Run(r, m, s, short) for s in seeds for r in reductions for m in methods]
    runs += [Run(0.0, "teacher_finetuned", s, short) for s in seeds]
    for seed in seeds:
        for reduction in reductions:
            runs += [Run(reduction, m, seed, long) for m in OURS]
            chosen = best_torch_pruning(folder, asdict(settings), reduction, short, choice_seeds or seeds,
                                        list(SETUPS))
            if chosen is not None:
                runs.append(Run(reduction, chosen, seed, long))
    return runs + [Run(0.0, "teacher_finetuned", s, long) for s in seeds]


def load_teacher(settings: Settings) -> torch.nn.Module:
    """The trained teacher of `settings`, in eval mode."""
    teacher = driving.DrivingNet(size=settings.size)
    teacher.load_state_dict(torch.load(ROOT / settings.teacher, weights_only=True))
    return teacher.eval()


class Bench:
    """The teacher, its tasks, the scenes, and every scene set's evaluation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.teacher = load_teacher(settings)
        self.tasks = driving.driving_tasks()
        self.train = driving.SyntheticDriving(settings.train_images, size=settings.image_size,
                                              seed=settings.train_seed)
        seeds = (settings.validation_seed, *settings.test_seeds)
        self.sets = {name: _rendered(settings.eval_images, settings.image_size, seed)
                     for name, seed in zip(SETS, seeds, strict=True)}
        self.example = torch.zeros(1, 3, *settings.image_size)
        self.teacher_params = sum(p.numel() for p in self.teacher.parameters())
        self.teacher_macs = count_macs(self.teacher, self.example)
        self.teacher_metrics = {name: self.records(self.teacher, name).metrics() for name in SETS}

    def records(self, model: torch.nn.Module, name: str) -> driving.SceneRecords:
        return driving.evaluate_scenes(model, driving.loader(self.sets[name], batch_size=16))

    def teacher_record(self) -> dict:
        """The teacher's metrics on every set, with their bootstrap 95% intervals over scenes, in points."""
        out = {}
        for name in SETS:
            records = self.records(self.teacher, name)
            interval = records.interval(resamples=self.settings.resamples)
            out[name] = {m: {"value": 100 * records.metrics()[m], "low": 100 * interval[m][0],
                             "high": 100 * interval[m][1]} for m in METRICS}
        return out

    def row(self, labels: dict, stage: str, model: torch.nn.Module, seconds: float, sets: tuple[str, ...]) -> dict:
        """One model's record: `labels` (what run it belongs to), its size and its scores on `sets`."""
        params, macs = sum(p.numel() for p in model.parameters()), count_macs(model, self.example)
        scores = {}
        for name in sets:
            metrics = self.records(model, name).metrics()
            scores[name] = {**{m: 100 * metrics[m] for m in METRICS},
                            "delta_m": 100 * driving.delta_m(metrics, self.teacher_metrics[name])}
        return {**labels, "stage": stage, "params": params, "params_reduction": 1 - params / self.teacher_params,
                "macs": macs, "macs_reduction": 1 - macs / self.teacher_macs, "sets": scores,
                "seconds": round(seconds, 1)}

    def scoring_batches(self, seed: int) -> list[dict[str, torch.Tensor]]:
        batches = driving.loader(self.train, batch_size=self.settings.batch_size, shuffle=True, seed=seed)
        return [batch for _, batch in zip(range(self.settings.prune_batches), batches, strict=False)]

    def finetune(self, student: torch.nn.Module, steps: int, seed: int, teacher: torch.nn.Module | None,
                 channel_map: dict | None) -> torch.nn.Module:
        """The fine-tune every student gets: `steps` steps, distilled from `teacher` when given, PreciseBN."""
        s = self.settings
        config = FinetuneConfig(epochs=1000, max_steps=steps, lr=s.lr, warmup_steps=steps // 10,
                                batch_size=s.batch_size, bn_batches=s.bn_batches, seed=seed, progress=False,
                                bn_mode="train", keep_best=False)  # the defaults before issue 25
        distill = taskprune.Distill(layers="auto", loss=s.distill) if teacher is not None else None
        return taskprune.finetune(student, self.tasks, self.train, config=config, collate_fn=driving.collate,
                                  teacher=teacher, distill=distill, channel_map=channel_map)


def _rendered(count: int, size: tuple[int, int], seed: int) -> list[dict[str, torch.Tensor]]:
    """Scenes rendered once, masks kept as bytes (the metrics read them as booleans): a third of the memory."""
    scenes = driving.SyntheticDriving(count, size=size, seed=seed)
    return [{**item, "drivable": item["drivable"].to(torch.uint8), "lane": item["lane"].to(torch.uint8)}
            for item in (scenes[i] for i in range(count))]


def execute(run: Run, bench: Bench) -> list[dict]:
    """The rows of one run: the pruned model (validation only) and the distilled student (every set)."""
    start = time.perf_counter()
    torch.manual_seed(run.seed)
    labels = asdict(run)
    if run.method == "teacher_finetuned":
        dense = bench.finetune(copy.deepcopy(bench.teacher), run.steps, run.seed, None, None)
        return [bench.row(labels, "finetuned", dense, time.perf_counter() - start, SETS)]
    batches = bench.scoring_batches(run.seed)
    if run.method in SETUPS:
        pruned, channel_map = prune_like_torch_pruning(
            bench.teacher, bench.example, bench.tasks, batches, bench.teacher_params * (1 - run.reduction),
            setup=SETUPS[run.method])
    else:
        result = taskprune.prune(bench.teacher, bench.example, ratio=run.reduction, importance=run.method,
                                 tasks=bench.tasks, data=batches, num_batches=len(batches),
                                 round_to=bench.settings.round_to, max_layer_ratio=bench.settings.max_layer_ratio,
                                 progress=False, seed=run.seed)
        pruned, channel_map = result.model, result.channel_map
    rows = [bench.row(labels, "pruned", pruned, time.perf_counter() - start, ("validation",))]
    mark = time.perf_counter()
    student = bench.finetune(pruned, run.steps, run.seed, bench.teacher, channel_map)
    rows.append(bench.row(labels, "distilled", student, time.perf_counter() - mark, SETS))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reductions", default="0.6")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--short", type=int, default=400, help="fine-tune steps of the short recovery")
    parser.add_argument("--long", type=int, default=1600, help="fine-tune steps of the long recovery")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a tiny budget, results under runs/evidence_quick")
    parser.add_argument("--collect", action="store_true", help="only gather the run files")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", default="*", help="comma-separated shell patterns of run keys to run, e.g. "
                        "'0.60_*_steps1600_seed0' (the plan's order is kept)")
    parser.add_argument("--choice-seeds", default=None, help="seeds whose short runs choose the torch-pruning "
                        "configuration of the long runs (default: --seeds), e.g. 0 when only seed 0 ran them all")
    args = parser.parse_args()
    settings = Settings()
    choice = [int(s) for s in args.choice_seeds.split(",")] if args.choice_seeds else None
    reductions, seeds = [float(r) for r in args.reductions.split(",")], [int(s) for s in args.seeds.split(",")]
    if args.quick:
        settings = Settings(train_images=64, eval_images=16, prune_batches=1, bn_batches=2, resamples=20)
        seeds, args.short, args.long, args.out = [0], 4, 8, ROOT / "runs" / "evidence_quick"
    folder = args.out / "evidence_runs"
    if args.collect:
        collect(folder, args.out, asdict(settings))
        return
    torch.set_num_threads(args.threads)
    bench: Bench | None = None
    from rich.progress import Progress

    with Progress() as progress:
        bar = progress.add_task("evidence runs", total=None)
        while True:  # the long torch-pruning runs join the plan once the short ones have decided their setup
            runs = plan_runs(reductions, seeds, args.short, args.long, folder, settings, choice)
            todo = [run for run in runs if not done(folder / f"{run.key}.json", asdict(settings))
                    and any(fnmatch.fnmatch(run.key, pattern) for pattern in args.only.split(","))]
            progress.update(bar, total=len(runs), completed=len(runs) - len(todo))
            run = next((run for run in todo if claim(folder / f"{run.key}.claim")), None)
            if run is None:
                break  # everything done, or claimed by other processes
            if bench is None:
                bench = Bench(settings)
                write_json(args.out / "evidence_teacher.json", {"settings": asdict(settings),
                                                            "teacher": bench.teacher_record()})
            rows = execute(run, bench)
            write_json(folder / f"{run.key}.json", {"run": asdict(run), "settings": asdict(settings),
                                                    "machine": machine(), "rows": rows})
            (folder / f"{run.key}.claim").unlink(missing_ok=True)
            progress.console.print(f"{run.key}: " + "; ".join(
                f"{r['stage']} " + ", ".join(f"{k} {v['delta_m']:+.2f}%" for k, v in r["sets"].items())
                for r in rows))
            collect(folder, args.out, asdict(settings))



if __name__ == "__main__":
    main()
