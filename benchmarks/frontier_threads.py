"""The frontier's students at two threads: does a speed matched at one thread hold at another thread count?

Every frontier run that reached its speed, and every fastest point of one that did not (`frontier.py --fastest`), is
pruned again with its method, ratio and seed at one thread, as frontier.py pruned it (or taken from
runs/frontier_models/, where frontier.py kept it). Then each is timed against the dense teacher alone, as frontier.py
matched it (batch 1, interleaved rounds, median of the student's time over the teacher's in the same round), at one
thread and at --threads threads, after `taskprune.latency.steady_allocator()`. Without it, in a fresh process, the
same students timed far from their matched speeds (the latency target's 2x students 2.30x, torch-pruning's 1.5x
students 1.36x; the allocator effect steady_allocator's docstring describes); with it, the one-thread timings
reproduce frontier.py's (2.02x, 1.47x), taken in a process that had trained and evaluated for hours before. Accuracy
does not depend on the thread count, so a student's Delta_m in frontier.md stands at the speed measured here. The
latency target times while it plans, so its plan is made again and can differ a little from the fine-tuned one; the
other methods' plans are deterministic.

    python benchmarks/frontier_threads.py --build-only   # prune again (one thread, resumable): runs beside others
    python benchmarks/frontier_threads.py --threads 2    # build what is missing, then time; on an idle machine

Writes benchmarks/results/frontier_threads.json and .md; the rebuilt students go to runs/frontier_threads/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections import defaultdict
from pathlib import Path

import torch
from evidence import Bench, Settings
from frontier import METHODS, prune_at
from harness import RESULTS, ROOT, machine, write_results

from taskprune.latency import latency_ratios, steady_allocator

MODELS = ROOT / "runs" / "frontier_threads"
KEPT = ROOT / "runs" / "frontier_models"  # frontier.py's matched students, where this machine ran it


def points(folder: Path) -> list[dict]:
    """Every student the frontier fine-tuned: (key, method, asked speedup, seed, ratio, speedup, Delta_m A/B)."""
    out = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        run = record["run"]
        for key, part in ((path.stem, record if record["reached"] else None),
                          (f"{path.stem}_fastest", record.get("at_fastest"))):
            if part is not None:
                final = part["rows"][-1]
                out.append({"key": key, **run, "at_fastest": key.endswith("_fastest"), "ratio": part["ratio"],
                            "speedup_1t_frontier": part["speedup"], "params_reduction": final["params_reduction"],
                            "delta_m": {name: final["sets"][name]["delta_m"] for name in ("test_a", "test_b")}})
    return out


def rebuilt(student: dict) -> Path:
    """Where a student pruned again is kept: named by its ratio too, since `frontier.py --fastest` can choose
    another fastest point for the same run."""
    return MODELS / f"{student['key']}_ratio{student['ratio']:.4f}.pt"


def build(students: list[dict], settings: Settings) -> None:
    """Prune every student again at one thread; each model is saved as it is made (a rerun skips it)."""
    from rich.progress import track

    MODELS.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    bench: Bench | None = None
    for student in track(students, description="rebuilding the frontier's students"):
        path = rebuilt(student)
        if path.exists() or (KEPT / f"{student['key']}.pt").exists():
            continue
        bench = bench or Bench(settings)
        torch.manual_seed(student["seed"])
        model, _ = prune_at(bench, METHODS[student["method"]], student["ratio"], student["seed"])
        torch.save(model, path)


def timed_model(student: dict) -> Path:
    """The student this machine times: frontier.py's own when it ran here, else the one pruned again."""
    return next(p for p in (KEPT / f"{student['key']}.pt", rebuilt(student)) if p.exists())


def timed_reductions(models: dict[str, torch.nn.Module], teacher: torch.nn.Module) -> dict[str, float]:
    """The parameter reduction of each student as timed: a student pruned again on another machine than the one
    that matched it can differ from the scored one (the latency target times while it plans; round_to="auto" asks
    the device's probe), and then its timing is a sibling's."""
    dense = sum(p.numel() for p in teacher.parameters())
    return {key: 1 - sum(p.numel() for p in model.parameters()) / dense for key, model in models.items()}


def time_all(models: dict[str, torch.nn.Module], teacher: torch.nn.Module, settings: Settings, threads: int,
             repeats: int) -> dict:
    """Each student's speedup over the teacher at `threads` threads, timed against it alone; the load around."""
    torch.set_num_threads(threads)
    example = torch.zeros(1, 3, *settings.image_size)
    load_before, speedups = os.getloadavg()[0], {}
    for key, model in models.items():
        speedups[key] = 1 / latency_ratios([teacher, model], example, repeats=repeats)[1]
    return {"threads": threads, "load_before": load_before, "load_after": os.getloadavg()[0], "speedups": speedups}


def markdown(record: dict) -> str:
    one, many = record["timings"]
    loads = [f"{t['threads']} thread(s) at load {t['load_before']:.1f} -> {t['load_after']:.1f}" for t in (one, many)]
    lines = [f"The frontier's students timed again, each against the dense teacher alone: batch 1, median of "
             f"{record['repeats']} interleaved rounds, {' and '.join(loads)}; mean over seeds (min-max). Delta_m on "
             "test A / B from frontier.md: the same students, fine-tuned. As scored: how many of the students timed "
             "have the scored student's parameter count; one pruned again on another machine than the one that "
             "matched it can differ (the latency target times while it plans, round_to=\"auto\" asks the device), "
             "and then its timing is a sibling's, not the scored model's.", "",
             f"Command: `{record['command']}`", "",
             "| method | asked | seeds | as scored | 1 thread in frontier.py | 1 thread now | "
             f"{many['threads']} threads now | Delta_m A / B |", "|---|---|---|---|---|---|---|---|"]
    timed = record.get("timed_params_reduction", {})
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for s in record["students"]:
        cells[(s["method"], s["speedup"], s["at_fastest"])].append(s)
    for (method, asked, fastest), rows in sorted(cells.items(), key=lambda item: (item[0][1], item[0][0])):
        def spread(values: list[float]) -> str:
            return f"{statistics.mean(values):.2f}x ({min(values):.2f}-{max(values):.2f})"

        same = sum(abs(timed[r["key"]] - r["params_reduction"]) < 1e-4 for r in rows if r["key"] in timed)
        lines.append(
            f"| {method}{' (at its fastest)' if fastest else ''} | {asked:.2f}x | {len(rows)} | "
            f"{f'{same}/{len(rows)}' if timed else '-'} | "
            f"{spread([r['speedup_1t_frontier'] for r in rows])} | "
            f"{spread([one['speedups'][r['key']] for r in rows])} | "
            f"{spread([many['speedups'][r['key']] for r in rows])} | "
            f"{statistics.mean(r['delta_m']['test_a'] for r in rows):+.2f} / "
            f"{statistics.mean(r['delta_m']['test_b'] for r in rows):+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings = Settings()
    students = points(args.out / "frontier_runs")
    build(students, settings)
    if args.build_only:
        return
    steady_allocator()  # the allocator of frontier.py's long-running process (see the docstring)
    from evidence import load_teacher

    teacher = load_teacher(settings)
    models = {s["key"]: torch.load(timed_model(s), weights_only=False) for s in students}  # loaded once
    timings = [time_all(models, teacher, settings, threads, args.repeats) for threads in (1, args.threads)]
    record = {"command": f"python benchmarks/frontier_threads.py --threads {args.threads} --repeats {args.repeats}",
              "repeats": args.repeats, "machine": machine(), "students": students, "timings": timings,
              "timed_params_reduction": timed_reductions(models, teacher)}
    write_results(args.out, "frontier_threads", record, markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
