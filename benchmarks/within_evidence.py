"""How far can the driving teacher be pruned with every metric within a limit, decided on validation scenes and
checked on two untouched test sets? `taskprune.prune_within` with no hand-written hints: steps of --step of the
parameters, a distilled recovery after each (a second round when a limit breaks), remedies for the task that broke
a limit (its weight in the ranking doubled, or the groups serving only it kept whole), then a bisection down to
--resolution. Every decision reads the validation scenes (SyntheticDriving seed 20000) alone; test A and test B
(seeds 30000 and 40000) are only reported (`prune_within(report=...)`). A reduction counts as within the limits
only when it holds on both test sets, each with the teacher's bootstrap 95% interval beside it.

    python benchmarks/within_evidence.py              # seed 0 (about 4-8 h of one core), resumable
    python benchmarks/within_evidence.py --seed 1     # another seed: other scoring batches, fine-tune order
    python benchmarks/within_evidence.py --status     # the frontier its checkpoint holds (and writes *_progress.md)
    python benchmarks/within_evidence.py --quick      # the pipeline on a tiny budget (runs/within_evidence_quick)

Writes benchmarks/results/within_evidence_seed<N>.json, .md and .png; the checkpoint after every evaluated model is
benchmarks/results/within_checkpoints/within_evidence_seed<N> (commit it as it grows: the same command resumes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from harness import RESULTS, ROOT, machine, write_results, write_text

import taskprune
from taskprune import driving
from taskprune.train import FinetuneConfig

METRICS = ("recall", "map50", "drivable_miou", "lane_acc", "lane_iou")
METRIC_TASKS = {"recall": "det", "map50": "det", "drivable_miou": "drivable", "lane_acc": "lane", "lane_iou": "lane"}
SIZE = (192, 320)
SEEDS = {"validation": 20_000, "test_a": 30_000, "test_b": 40_000}
TESTS = ("test_a", "test_b")


def scenes(count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Scenes rendered once, masks kept as bytes (the metrics read them as booleans): a third of the memory."""
    data = driving.SyntheticDriving(count, size=SIZE, seed=seed)
    return [{**item, "drivable": item["drivable"].to(torch.uint8), "lane": item["lane"].to(torch.uint8)}
            for item in (data[i] for i in range(count))]


def points(model: torch.nn.Module, data: list) -> dict[str, float]:
    metrics = driving.evaluate(model, driving.loader(data, batch_size=16))
    return {m: 100 * metrics[m] for m in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=float, default=1.0, help="largest drop allowed per metric, in points")
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--resolution", type=float, default=0.02)
    parser.add_argument("--max-ratio", type=float, default=0.8)
    parser.add_argument("--recovery-steps", type=int, default=600)
    parser.add_argument("--images", type=int, default=500, help="scenes per validation and test set")
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--prune-batches", type=int, default=8)
    parser.add_argument("--importance", default="task_taylor", help="prune_within's default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="drives the scoring batches and the fine-tune order")
    parser.add_argument("--status", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.recovery_steps, args.train_images, args.images, args.prune_batches = 4, 64, 16, 1
        args.step, args.max_ratio, args.resolution, args.out = 0.3, 0.6, 0.1, ROOT / "runs" / "within_evidence_quick"
    stem = f"within_evidence_seed{args.seed}" + ("" if args.importance == "task_taylor" else f"_{args.importance}")
    checkpoint = (args.out / "within_checkpoints" / stem) if not args.quick else args.out / "checkpoint"
    if args.status:
        text = status(checkpoint, args)
        if not args.quick and (checkpoint / "state.pt").exists() and not (args.out / f"{stem}.json").exists():
            write_text(args.out / f"{stem}_progress.md", text)  # the README shows it until the run finishes
        print(text)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    teacher = driving.pretrained("s")
    sets = {name: scenes(args.images, seed) for name, seed in SEEDS.items()}
    records = {name: driving.evaluate_scenes(teacher, driving.loader(data, batch_size=16))
               for name, data in sets.items()}
    teacher_record = {name: {"value": {m: 100 * r.metrics()[m] for m in METRICS},
                             "interval": {m: [100 * v for v in r.interval(resamples=1000)[m]] for m in METRICS}}
                      for name, r in records.items()}
    start = time.perf_counter()
    found = taskprune.prune_within(
        teacher, torch.zeros(1, 3, *SIZE), tasks=driving.driving_tasks(),
        data=driving.SyntheticDriving(args.train_images, size=SIZE, seed=0), collate_fn=driving.collate,
        evaluate=lambda model: points(model, sets["validation"]),
        report=lambda model: {f"{name}.{m}": v for name in TESTS for m, v in points(model, sets[name]).items()},
        limits=dict.fromkeys(METRICS, args.limit), metric_tasks=METRIC_TASKS, step=args.step,
        resolution=args.resolution, max_ratio=args.max_ratio, importance=args.importance,
        recovery=FinetuneConfig(epochs=1000, max_steps=args.recovery_steps, lr=1e-3,
                                warmup_steps=args.recovery_steps // 10, batch_size=8, seed=args.seed,
                                bn_batches=min(100, 10 * args.recovery_steps), progress=False,
                                bn_mode="train", keep_best=False, judge_start=False),  # defaults before issue 25
        num_batches=args.prune_batches, round_to=8, measure_latency=False, checkpoint=checkpoint)
    record = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "teacher": teacher_record, "machine": machine(),
              "minutes_this_process": (time.perf_counter() - start) / 60,
              **json.loads(found.to_json())}
    record["held_on_tests"] = held_on_tests(record)
    write_results(args.out, stem, record, markdown(record))
    (args.out / f"{stem}_progress.md").unlink(missing_ok=True)
    found.plot(args.out / f"{stem}.png")
    print(markdown(record))


def status(checkpoint: Path, args: argparse.Namespace) -> str:
    """The frontier a running search's checkpoint holds. Its test drops are provisional: measured against the
    teacher's metrics on the same scenes as evidence.py recorded them (evidence_teacher.json), which the finished
    run re-measures itself."""
    if not (checkpoint / "state.pt").exists():
        return f"no checkpoint at {checkpoint} yet"
    state = torch.load(checkpoint / "state.pt", weights_only=True)
    teacher_file = args.out / "evidence_teacher.json"
    teacher = None
    if teacher_file.exists():
        recorded = json.loads(teacher_file.read_text())["teacher"]
        teacher = {name: {"value": {m: recorded[name][m]["value"] for m in METRICS}} for name in TESTS}
    text = markdown({"settings": vars(args), "frontier": state["frontier"], "teacher": None}, teacher)
    text = ("Still running" if not state.get("finished") else "Finished") + \
        f" (checkpoint of {len(state['frontier']) - 1} evaluated model(s)). {text}"
    return text + ("" if teacher is None else
                   f"\nTest drops provisional: against the teacher's metrics in {teacher_file.name}.\n")


def test_drops(row: dict, teacher: dict) -> dict[str, dict[str, float]]:
    """Per test set, each metric's drop against the teacher on that set."""
    return {name: {m: teacher[name]["value"][m] - row["report"][f"{name}.{m}"] for m in METRICS} for name in TESTS}


def held_on_tests(record: dict) -> float:
    """The largest reduction held on validation whose every metric also holds on both test sets."""
    limit = record["settings"]["limit"]
    held = [row["reduction"] for row in record["frontier"] if row["within"] and row.get("report")
            and all(d <= limit for drops in test_drops(row, record["teacher"]).values() for d in drops.values())]
    return max(held, default=0.0)


def markdown(record: dict, reference: dict | None = None) -> str:
    """`reference`: the teacher's test metrics to measure drops against when the record has none of its own."""
    settings, teacher = record["settings"], record["teacher"]
    lines = [f"DrivingNet-s teacher at 192x320, limits {settings['limit']} point on every metric, "
             f"{settings['importance']}, steps of {settings['step']:.0%} of the parameters bisected down to "
             f"{settings['resolution']:.0%}, {settings['recovery_steps']} distilled recovery steps (PreciseBN) after "
             f"each, remedies for a task that broke a limit; decisions on {settings['images']} validation scenes, "
             f"test A and B only reported. Seed {settings['seed']}.", ""]
    if teacher:
        lines += ["Teacher on each set, bootstrap 95% interval over scenes:", "",
                  "| set | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        lines += [f"| {name} | " + " | ".join(f"{t['value'][m]:.1f} [{t['interval'][m][0]:.1f}, "
                                              f"{t['interval'][m][1]:.1f}]" for m in METRICS) + " |"
                  for name, t in teacher.items()]
        lines += ["", f"Largest reduction within every limit on validation: {record['reduction']:.1%}; also within "
                      f"on both test sets: {record['held_on_tests']:.1%}.", ""]
    lines += ["Drops in points against the teacher on the same set (validation decides).", "",
              "| # | asked | remedies in effect | params removed | worst validation drop | worst test A drop | "
              "worst test B drop | verdict | rounds |", "|---|---|---|---|---|---|---|---|---|"]
    kept: list[str] = []  # remedies that held are kept by every later step
    for row in record["frontier"]:
        remedies = ", ".join([*kept, *([row["remedy"]] if row.get("remedy") else [])]) or "-"
        if row.get("verdict") and row.get("remedy"):
            kept.append(row["remedy"])
        if row.get("reduction") is None:
            lines.append(f"| {row['step']} | {row['ratio']:.1%} | {remedies} | refused | - | - | - | "
                         f"broken | 0 |")
            continue
        worst = _worst(row["drop"])
        tests = test_drops(row, teacher or reference) if (teacher or reference) and row.get("report") else {}
        verdict = {True: "held", False: "broken", None: "broken, remedy next"}[row["verdict"]]
        lines.append(f"| {row['step']} | {row['ratio']:.1%} | {remedies} | {row['reduction']:.1%} | "
                     f"{worst} | {_worst(tests['test_a']) if tests else '-'} | "
                     f"{_worst(tests['test_b']) if tests else '-'} | {verdict} | {row['recovery_rounds']} |")
    return "\n".join(lines) + "\n"


def _worst(drops: dict[str, float]) -> str:
    metric = max(drops, key=drops.get)
    return f"{drops[metric]:+.2f} ({metric})"


if __name__ == "__main__":
    main()
