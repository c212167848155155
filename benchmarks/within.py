"""How far can the driving teacher be pruned with every metric within a limit? `taskprune.prune_within` on the
shipped teacher: steps of --step of the parameters, a distilled recovery after each, every metric evaluated on
held-out synthetic scenes, stopped at the first step a metric drops by more than its limit (after one more
recovery round), the frontier written with its plot.

    python benchmarks/within.py                          # limits of 1.0 point on all five metrics
    python benchmarks/within.py --seed 1                 # another seed: other scoring batches, fine-tune order
    python benchmarks/within.py --seed 1 --lr 1e-4       # gentler recoveries (writes within_seed1_lr0.0001.*)
    python benchmarks/within.py --validate-images 300    # each recovery keeps its best step on a validation split
    python benchmarks/within.py --seed 1 --heads         # distil the heads' output logits too (within_seed1_heads.*)
    python benchmarks/within.py --task-weights lane=2    # a task-balanced budget: lane's groups give up less
    python benchmarks/within.py --protect "lane_head.*"  # never narrow the lane head (within_protect-lane_head.*)
    python benchmarks/within.py --quick                  # the pipeline on a tiny budget (runs/within_quick)

Every recovery ends by re-estimating the BatchNorm statistics on --bn-batches training batches (PreciseBN; 0 keeps
the running averages, as the runs before 2026-12-02 did).

With --validate-images N, every recovery is evaluated on N validation scenes (SyntheticDriving seed 10_000, apart
from the training and test scenes) every --eval-every steps and at its end, and keeps the step with the largest
worst margin to a limit there (`prune_within(validate=...)`); the test scenes then judge that step.

With --heads, every recovery distils the five output convolutions (detection at three scales, drivable area, lane
lines) as well as the trunk's features: `Distill(layers=auto_layers(teacher) + heads)`. With --task-weights, the
criterion is `conflict_taylor` with `task_weights` (tasks det, drivable, lane): the groups serving a heavier task
give up fewer channels and the others more. --protect passes fnmatch patterns of layers never to narrow to `prune`.

Writes benchmarks/results/within.json, within.md and within.png (within_seed<N>.* for --seed N > 0, with _lr<lr>,
_bn<N>, _steps<N>, _val<N>, _heads, _<task><weight> and _protect-<pattern> when --lr, --bn-batches,
--recovery-steps, --validate-images, --heads, --task-weights or --protect is not the default). Resumable: the
search checkpoints after every step, and the
same command carries on from there (delete the folder to start over). The folder is
benchmarks/results/within_checkpoints/<name> so that committing it carries a run to another machine; `--status`
prints the frontier it holds while the run goes on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import driving_setup as shared  # the driving benchmarks' shared names
import torch
from harness import RESULTS, ROOT, write_results

import taskprune
from taskprune import driving
from taskprune.distill import auto_layers
from taskprune.train import FinetuneConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=float, default=1.0, help="largest drop allowed per metric, in points")
    parser.add_argument("--step", type=float, default=0.1, help="parameters removed per step")
    parser.add_argument("--max-ratio", type=float, default=0.8)
    parser.add_argument("--recovery-steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of every recovery")
    parser.add_argument("--bn-batches", type=int, default=100,
                        help="batches each recovery re-estimates the BatchNorm statistics on (0: running averages)")
    parser.add_argument("--validate-images", type=int, default=0,
                        help="validation scenes each recovery picks its best step on (0: keep the last step)")
    parser.add_argument("--heads", action="store_true",
                        help="distil the task heads' output logits as well as the trunk's features")
    parser.add_argument("--task-weights", default="", help="task=weight,... for conflict_taylor, e.g. lane=2")
    parser.add_argument("--protect", default="", help="comma-separated fnmatch patterns of layers prune never narrows")
    parser.add_argument("--eval-every", type=int, default=150, help="recovery steps between validations")
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--test-images", type=int, default=500)
    parser.add_argument("--prune-batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="drives the scoring batches and the fine-tune order")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="folder to resume from (default benchmarks/results/within_checkpoints/<name>)")
    parser.add_argument("--status", action="store_true",
                        help="print the frontier the checkpoint holds so far, and exit (a run may be going on)")
    args = parser.parse_args()
    weights = task_weights(args.task_weights, parser)
    protect = tuple(filter(None, args.protect.split(",")))
    if args.quick:
        args.recovery_steps, args.train_images, args.test_images, args.prune_batches = 4, 64, 32, 2
        args.validate_images, args.eval_every = min(args.validate_images, 32), 2
        args.step, args.max_ratio, args.out = 0.3, 0.6, ROOT / "runs" / "within_quick"
    stem = (("within" if args.seed == 0 else f"within_seed{args.seed}") + ("" if args.lr == 1e-3 else f"_lr{args.lr:g}")
            + ("" if args.bn_batches == 100 else f"_bn{args.bn_batches}")
            + ("" if args.recovery_steps == 600 or args.quick else f"_steps{args.recovery_steps}")
            + (f"_val{args.validate_images}" if args.validate_images else "") + ("_heads" if args.heads else "")
            + "".join(f"_{task}{weight:g}" for task, weight in weights.items())
            + "".join(f"_protect-{pattern.replace('.*', '').replace('*', '')}" for pattern in protect))
    checkpoint = args.checkpoint or (ROOT / "runs" / f"{stem}_quick_checkpoint" if args.quick
                                     else RESULTS / "within_checkpoints" / stem)
    if args.status:
        print(status(checkpoint, args))
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    teacher = driving.pretrained("s")
    tasks = driving.driving_tasks()
    train = driving.SyntheticDriving(args.train_images, size=shared.SIZE, seed=0)
    validate = shared.points(args.validate_images, shared.VALIDATION_SEED) if args.validate_images else None

    layers = auto_layers(teacher, torch.zeros(1, 3, *shared.SIZE)) + shared.HEADS if args.heads else "auto"
    resumed = (checkpoint / "state.pt").exists()
    start = time.perf_counter()
    found = taskprune.prune_within(
        teacher, torch.zeros(1, 3, *shared.SIZE), tasks=tasks, data=train, collate_fn=driving.collate,
        evaluate=shared.points(args.test_images, shared.TEST_SEED), validate=validate,
        limits=dict.fromkeys(shared.METRICS, args.limit), step=args.step, max_ratio=args.max_ratio,
        importance=taskprune.get_criterion("conflict_taylor", task_weights=weights or None),
        recovery=FinetuneConfig(epochs=1000, max_steps=args.recovery_steps, lr=args.lr,
                                warmup_steps=args.recovery_steps // 10, batch_size=args.batch_size, seed=args.seed,
                                bn_batches=args.bn_batches, eval_every=args.eval_every if validate else None,
                                progress=False, bn_mode="train", keep_best=False, judge_start=False),
        distill=taskprune.Distill(layers=layers), protect=protect, num_batches=args.prune_batches,
        round_to=args.round_to, checkpoint=checkpoint)
    record = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                           if k != "checkpoint"},
              "teacher": "taskprune/driving/weights/driving_s.pt", "image_size": list(shared.SIZE),
              "minutes": (time.perf_counter() - start) / 60, "resumed": resumed,  # minutes: this process's only
              **json.loads(found.to_json())}
    write_results(args.out, stem, record, markdown(record))
    found.plot(args.out / f"{stem}.png")
    print(markdown(record))


def task_weights(text: str, parser: argparse.ArgumentParser) -> dict[str, float]:
    """--task-weights "lane=2,det=1.5" as a dict, or the parser's error naming the tasks."""
    weights: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        task, _, value = item.partition("=")
        names = driving.driving_tasks().names
        if task not in names or not value.replace(".", "", 1).isdigit() or float(value) <= 0:
            parser.error(f"--task-weights takes task=weight items with tasks {', '.join(names)} and weights > 0, "
                         f"got {item!r}")
        weights[task] = float(value)
    return weights


def status(checkpoint: Path, args: argparse.Namespace) -> str:
    """The frontier a checkpoint holds, as `markdown` renders a finished run's."""
    if not (checkpoint / "state.pt").exists():
        return f"no checkpoint at {checkpoint}: the run has not finished a step yet (or writes elsewhere)"
    state = torch.load(checkpoint / "state.pt", weights_only=True)
    frontier = state["frontier"]
    record = {"settings": vars(args), "frontier": frontier,
              "reduction": max(row["reduction"] for row in frontier if row["within"])}
    done = "finished" if state["finished"] else f"in progress, {len(frontier) - 1} step(s) done"
    return f"{checkpoint} ({done}):\n\n" + markdown(record)


def markdown(record: dict) -> str:
    settings = record["settings"]
    bn = settings.get("bn_batches", 0)
    statistics = f"re-estimated on {bn} training batches at its end" if bn else "as training left them"
    val = settings.get("validate_images", 0)
    chosen = (f", each recovery's step chosen every {settings['eval_every']} steps by its worst margin to a limit on "
              f"{val} validation scenes" if val else "")
    distilled = "distillation of the trunk and the heads' outputs" if settings.get("heads") else "distillation"
    weighted = (f", conflict_taylor with task weights {settings['task_weights']}" if settings.get("task_weights")
                else "") + (f", layers {settings['protect']} never narrowed" if settings.get("protect") else "")
    lines = [f"DrivingNet-s teacher at 192x320, limits {settings['limit']} point on every metric, steps of "
             f"{settings['step']:.0%} of the parameters, {settings['recovery_steps']} recovery steps with {distilled} "
             f"(peak lr {settings.get('lr', 1e-3):g}) after each (a second round when a limit is broken), "
             f"BatchNorm statistics {statistics}{chosen}{weighted}; {settings['test_images']} held-out scenes. "
             f"Reached: {record['reduction']:.1%} fewer parameters within every limit.", "",
             "| step | params removed | params | MACs | latency (of the teacher's: median [IQR]) | "
             + " | ".join(shared.METRICS)
             + " | within | rounds |",
             "|---|---|---|---|---|" + "---|" * (len(shared.METRICS) + 2)]
    for row in record["frontier"]:
        latency = "-"  # a latency without its spread is left out: one forward can vary by a third under load
        if row["step"] == 0:
            latency = "100% (itself)"
        elif row.get("latency") and row.get("latency_spread"):
            latency = (f"{row['latency']:.0%} [{row['latency_spread'][0]:.0%}-{row['latency_spread'][1]:.0%}, "
                       f"{row['latency_repeats']} runs]")
        cells = [f"{row[m]:.1f} ({-row['drop'][m]:+.1f})" for m in shared.METRICS]
        lines.append(f"| {row['step']} | {row['reduction']:.1%} | {row['params'] / 1e6:.2f}M "
                     f"| {row['macs'] / 1e9:.2f}G "
                     f"| {latency} | " + " | ".join(cells) + f" | {'yes' if row['within'] else 'no'} | "
                     f"{row['recovery_rounds']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
