"""What the speed targets cost in task accuracy: dense vs params target vs latency target at matched parameter
counts, after the same fine-tune, on the trained driving teacher.

`prune(target="latency")` runs first; two params-target students (round_to=None and round_to="auto") then remove
exactly the fraction of parameters it removed (the same size), and a third (round_to="auto") removes as many as it
takes to run as fast (its ratio bisected on measured speed: the same latency). Every student gets the same
fine-tune (steps, learning rate, mse feature distillation from the teacher) and the same held-out scenes; speed is
measured in one interleaved run against the teacher at the resolution it was trained and evaluated at.

    python benchmarks/latency_tasks.py                          # latency ratio 0.3, conflict_taylor, 200 steps
    python benchmarks/latency_tasks.py --latency-ratio 0.4 --steps 400

Pruning and timing use --measure-threads torch threads (the latency table is measured there), fine-tuning
--threads. Writes benchmarks/results/latency_tasks.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from driving_setup import METRICS, add_setup_arguments, finetune_and_score, load_setup, prune_for
from harness import RESULTS, write_results

from taskprune import driving, latency
from taskprune.graph import count_macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setup_arguments(parser, train_images=600, val_images=200, prune_batches=8, steps=200)
    parser.add_argument("--latency-ratio", type=float, default=0.3, help="fraction of the latency to remove")
    parser.add_argument("--criterion", default="conflict_taylor")
    parser.add_argument("--distill", default="mse")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for fine-tuning")
    parser.add_argument("--measure-threads", type=int, default=1, help="torch threads for pruning and timing")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved end-to-end timing rounds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    setup = load_setup(args)
    teacher, tasks, train, val, example = setup.teacher, setup.tasks, setup.train, setup.val, setup.example

    torch.set_num_threads(args.measure_threads)
    latency.steady_allocator()  # timings that do not depend on what the process allocated before
    common = dict(importance=args.criterion)
    first, seconds = prune_for(teacher, example, tasks, train, args, target="latency", ratio=args.latency_ratio,
                               **common)
    cut = 1 - first.report.params_after / first.report.params_before
    pruned = [("latency", "auto", first, seconds)]
    for rounding in (None, "auto"):
        result, seconds = prune_for(teacher, example, tasks, train, args, target="params", ratio=cut,
                                    round_to=rounding, **common)
        pruned.append(("params", str(rounding).lower(), result, seconds))
    speed = latency.latency_ratios([teacher, first.model], example, repeats=args.repeats)[1]
    result, seconds = same_speed(teacher, example, tasks, train, args, speed, common)
    pruned.append(("params", "auto, same speed", result, seconds))

    torch.set_num_threads(args.threads)
    students, runs = [], []
    from rich.progress import track

    for target, rounding, result, seconds in track(pruned, description="fine-tune"):
        student, record = finetune_and_score(teacher, result, tasks, train, val, args.distill, args)
        students.append(student)
        runs.append({"target": target, "round_to": rounding, "prune_s": seconds, **record,
                     "reached_reported": result.report.reached, "notes": result.report.warnings,
                     "delta_m": driving.delta_m(record["after_finetune"], setup.teacher_metrics)})

    torch.set_num_threads(args.measure_threads)
    rounds = latency.measure_rounds([teacher] + students, example, warmup=2, repeats=args.repeats)
    macs0 = count_macs(teacher, example)
    for run, times, student in zip(runs, rounds[1:], students, strict=True):
        run["speedup"] = statistics.median(d / t for d, t in zip(rounds[0], times, strict=True))
        run["seconds"] = statistics.median(times)
        run["macs_reduction"] = 1 - count_macs(student, example) / macs0
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **setup.record(args),
              "teacher_seconds": statistics.median(rounds[0]), "torch": torch.__version__, "runs": runs}
    write(report, args.out)


def same_speed(teacher, example, tasks, train, args, fraction: float, common: dict):
    """The params target (round_to="auto") whose measured latency is nearest `fraction` of the teacher's: its ratio
    bisected over 7 prunes, each timed against the teacher."""
    low, high, best = 0.0, 0.95, None
    start = time.perf_counter()
    for _ in range(7):
        ratio = (low + high) / 2
        result, _ = prune_for(teacher, example, tasks, train, args, target="params", ratio=ratio, **common)
        measured = latency.latency_ratios([teacher, result.model], example, repeats=args.repeats)[1]
        if best is None or abs(measured - fraction) < best[0]:
            best = (abs(measured - fraction), result)
        low, high = (ratio, high) if measured > fraction else (low, ratio)
    return best[1], time.perf_counter() - start


def write(report: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    teacher = report["teacher_metrics"]
    header = ["variant", "params", "MACs cut", "latency (ms)", "speedup", "Recall", "mAP50", "drivable mIoU",
              "lane Acc", "lane IoU", "Delta_m"]
    rows = [["dense (teacher)", f"{report['teacher_params'] / 1e6:.2f}M", "0.0%",
             f"{report['teacher_seconds'] * 1e3:.1f}", "1.00x"] + [f"{100 * teacher[m]:.1f}" for m in METRICS]
            + ["0"]]
    for run in report["runs"]:
        after = run["after_finetune"]
        rows.append([f"{run['target']} target, round_to={run['round_to']}",
                     f"{run['params_after'] / 1e6:.2f}M (-{100 * run['params_reduction']:.1f}%)",
                     f"{run['macs_reduction']:.1%}", f"{run['seconds'] * 1e3:.1f}", f"{run['speedup']:.2f}x"]
                    + [f"{100 * after[m]:.1f} ({100 * (after[m] - teacher[m]):+.1f})" for m in METRICS]
                    + [f"{100 * run['delta_m']:+.2f}%"])
    s = report["settings"]
    lines = [f"# Speed targets and task metrics ({report['date']})", "",
             f"DrivingNet-{report['size']} teacher (`{report['teacher']}`) at {report['image_size'][0]}x"
             f"{report['image_size'][1]}, {s['criterion']}, target='latency' ratio={s['latency_ratio']} first, then "
             f"target='params' at the parameter cut it reached and at the speed it reached (ratio bisected on "
             f"measured speed); each student fine-tuned {s['steps']} steps with "
             f"{s['distill']} distillation; speed at batch 1, {s['measure_threads']} thread(s), torch "
             f"{report['torch']}, median over {s['repeats']} interleaved rounds of teacher / student time.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    write_results(out, "latency_tasks", report, "\n".join(lines) + "\n", indent=2)
    table = Table(title="speed targets after the same fine-tune (metrics in points)")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
