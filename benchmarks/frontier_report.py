"""Gather the frontier runs into frontier.json, frontier.md and frontier.png (the students at two threads:
frontier_threads.py).

    python benchmarks/frontier.py --collect
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from evidence_report import spread
from harness import write_atomically, write_json, write_text

SETS = ("validation", "test_a", "test_b")
TESTS = ("test_a", "test_b")


def collect(folder: Path, out: Path, meta: dict) -> dict:
    """Every run made with `meta` -> out/frontier.json, .md and .png; returns the results."""
    meta = json.loads(json.dumps(meta))
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    runs = [r for r in runs if r["settings"] == meta]
    results = {"meta": {"written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": len(runs),
                        "settings": meta, "command": "python benchmarks/frontier.py"},
               "runs": runs}
    write_json(out / "frontier.json", results)
    write_text(out / "frontier.md", markdown(results))
    if any(r["reached"] for r in runs):
        write_atomically(out / "frontier.png", lambda p: plot(results, p))
    return results


def _threads(settings: dict) -> str:
    """How many threads the runs were matched (and the latency target planned) at."""
    threads = settings.get("threads", 1)
    return "one thread" if threads == 1 else (f"{threads} threads (the latency target's table measured at {threads}, "
                                              "latency_plan1t's at one)")


def _final(run: dict) -> dict:
    return run["rows"][-1]


def markdown(results: dict) -> str:
    settings = results["meta"]["settings"]
    lines = [f"# Accuracy at the same measured speed ({results['meta']['written']})", "",
             "DrivingNet-s teacher at 192x320. Each method's ratio bisected until the pruned teacher runs at the asked "
             f"speedup (batch 1, {_threads(settings)}, median of {settings['matching']['repeats']} interleaved "
             f"rounds against the dense teacher, within {settings['matching']['tolerance']:.0%}; a bisection that "
             "ends short of it scans ratios in steps of 0.1 and bisects again where one is fast enough, since "
             "torch-pruning slows down past a ratio); every student then gets the same "
             f"distilled {settings['steps']}-step fine-tune with PreciseBN. Delta_m in percent against the teacher on "
             "the same set (validation decides, tests A and B only report); mean ±half the min-max range over seeds. "
             "A cell no probe reached shows, once `frontier.py --fastest` has run, its three fastest probes pruned "
             "again and timed together, the fastest of them given the same fine-tune, at the speed it did reach.",
             "", "| speedup asked | method | reached | measured speedup | params removed | MACs removed | "
             "Delta_m validation | Delta_m test A | Delta_m test B | lane IoU A | mAP50 A | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cells: dict[tuple[float, str], list[dict]] = defaultdict(list)
    for run in results["runs"]:
        cells[(run["run"]["speedup"], run["run"]["method"])].append(run)
    for (speedup, method), runs in sorted(cells.items()):
        reached = [r for r in runs if r["reached"]]
        loads = [p["load"] for r in runs for p in r["probes"] if "load" in p]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"
        if not reached:
            fastest = max((r["fastest"] or 0) for r in runs)
            tuned = [r["at_fastest"] for r in runs if "at_fastest" in r]
            if len(tuned) < len(runs):
                lines.append(f"| {speedup:.2f}x | {method} | 0/{len(runs)} | fastest probe {fastest:.2f}x | "
                             + " | ".join("-" * 1 for _ in range(7)) + f" | {load} |")
                continue
            reached, label = tuned, f"0/{len(runs)}, at its fastest:"
        else:
            label = f"{len(reached)}/{len(runs)}"
            others = [r["at_fastest"] for r in runs if not r["reached"] and "at_fastest" in r]
            if others:  # the seeds that did not reach it, at their fastest, on a row of their own below
                lines.append(_row(speedup, method, label, reached, load))
                reached, label = others, f"the other {len(others)}, at their fastest:"
        lines.append(_row(speedup, method, label, reached, load))
    lines += ["", *_versus(cells)]
    return "\n".join(lines) + "\n"


def _row(speedup: float, method: str, label: str, reached: list[dict], load: str) -> str:
    """One table row over `reached` (matched runs, or unreached runs' fastest points)."""
    finals = [_final(r) for r in reached]
    return (f"| {speedup:.2f}x | {method} | {label} | {spread([r['speedup'] for r in reached], signed=False)}x | "
            f"{statistics.mean(f['params_reduction'] for f in finals):.1%} | "
            f"{statistics.mean(f['macs_reduction'] for f in finals):.1%} | "
            + " | ".join(spread([f["sets"][s]["delta_m"] for f in finals]) for s in SETS) + " | "
            + f"{spread([f['sets']['test_a']['lane_iou'] for f in finals], 1, signed=False)} | "
            + f"{spread([f['sets']['test_a']['map50'] for f in finals], 1, signed=False)} | {load} |")


def _versus(cells: dict[tuple[float, str], list[dict]]) -> list[str]:
    """At each speedup, the best taskprune method against the best torch-pruning one, both chosen on validation,
    paired by seed on the test sets."""
    lines = ["Best taskprune method minus best torch-pruning configuration (each chosen on validation), Delta_m "
             "points paired by seed: mean [min, max]; ahead when every seed's difference is positive on both test "
             "sets and the two methods' ranges over seeds do not overlap.", "",
             "| speedup | taskprune | torch-pruning | seeds | test A | test B | ahead on both |",
             "|---|---|---|---|---|---|---|"]
    for speedup in sorted({s for s, _ in cells}):
        family = {"taskprune": {}, "torch-pruning": {}}
        for (s, method), runs in cells.items():
            reached = {r["run"]["seed"]: _final(r) for r in runs if r["reached"]}
            if s == speedup and reached and len(reached) == len(runs):
                family["torch-pruning" if method.startswith("tp_") else "taskprune"][method] = reached
        if family["taskprune"] and not family["torch-pruning"]:
            fastest = max((r["fastest"] or 0.0 for (s, m), runs in cells.items() if s == speedup and m.startswith("tp_")
                           for r in runs if not r["reached"]), default=None)
            if fastest is not None:  # torch-pruning tried and reached it in no configuration
                lines.append(_versus_fastest(cells, speedup, family["taskprune"], fastest))
            continue
        if not all(family.values()):
            continue
        best = {name: max(methods, key=lambda m, ms=methods: statistics.mean(
            f["sets"]["validation"]["delta_m"] for f in ms[m].values())) for name, methods in family.items()}
        paired = _paired(family["taskprune"][best["taskprune"]], family["torch-pruning"][best["torch-pruning"]])
        lines.append(f"| {speedup:.2f}x | {best['taskprune']} | {best['torch-pruning']} | {paired} |")
    return lines + [""]


def _paired(ours: dict[int, dict], theirs: dict[int, dict]) -> str:
    """Seeds, ours minus theirs on each test set (mean [min, max] over the seeds both ran) and the verdict: ahead
    when every difference is positive and the ranges over seeds do not overlap; one seed has no spread to beat."""
    seeds = sorted(set(ours) & set(theirs))
    texts, ahead = [], bool(seeds)
    for name in TESTS:
        mine = [ours[s]["sets"][name]["delta_m"] for s in seeds]
        other = [theirs[s]["sets"][name]["delta_m"] for s in seeds]
        diffs = [a - b for a, b in zip(mine, other, strict=True)]
        ahead &= min(diffs) > 0 and min(mine) > max(other)
        texts.append(f"{statistics.mean(diffs):+.2f} [{min(diffs):+.2f}, {max(diffs):+.2f}]")
    verdict = "1 seed" if len(seeds) < 2 else "yes" if ahead else "no"
    return f"{len(seeds)} | {texts[0]} | {texts[1]} | {verdict}"


def _versus_fastest(cells: dict[tuple[float, str], list[dict]], speedup: float, ours: dict[str, dict],
                    fastest: float) -> str:
    """Where no torch-pruning configuration reached `speedup`: the best taskprune method there against the best
    torch-pruning configuration at its own fastest (fine-tuned there by `frontier.py --fastest`), paired by seed."""
    best = max(ours, key=lambda m: statistics.mean(f["sets"]["validation"]["delta_m"] for f in ours[m].values()))
    slower = {m: {r["run"]["seed"]: r["at_fastest"] for r in runs}
              for (s, m), runs in cells.items() if s == speedup and m.startswith("tp_")
              and all("at_fastest" in r for r in runs)}
    if not slower:
        return f"| {speedup:.2f}x | {best} | none reached it (fastest {fastest:.2f}x) | - | - | - | - |"
    common = set.intersection(*(set(runs) for runs in slower.values()))  # chosen on the seeds all of them ran
    theirs_name = max(slower, key=lambda m: statistics.mean(
        _final(r)["sets"]["validation"]["delta_m"] for seed, r in slower[m].items() if not common or seed in common))
    theirs = slower[theirs_name]
    speed = statistics.mean(theirs[s]["speedup"] for s in set(theirs) & set(ours[best]))
    paired = _paired(ours[best], {seed: _final(r) for seed, r in theirs.items()})
    return f"| {speedup:.2f}x | {best} | none reached it; {theirs_name} at its fastest ({speed:.2f}x) | {paired} |"


def plot(results: dict, path: Path) -> None:
    """Delta_m on each test set against measured speedup, one line per method, the seeds' range drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    by_method: dict[str, list[dict]] = defaultdict(list)
    for run in results["runs"]:
        if run["reached"]:
            by_method[run["run"]["method"]].append(run)
        elif "at_fastest" in run:  # drawn where it got to, not at the speed asked
            by_method[run["run"]["method"] + " (at its fastest)"].append({"run": run["run"], **run["at_fastest"]})
    for axis, name in zip(axes, TESTS, strict=True):
        for method, runs in sorted(by_method.items()):
            points = defaultdict(list)
            for run in runs:
                points[run["run"]["speedup"]].append((run["speedup"], _final(run)["sets"][name]["delta_m"]))
            xs = [statistics.mean(p[0] for p in points[s]) for s in sorted(points)]
            ys = [statistics.mean(p[1] for p in points[s]) for s in sorted(points)]
            low = [y - min(p[1] for p in points[s]) for y, s in zip(ys, sorted(points), strict=True)]
            high = [max(p[1] for p in points[s]) - y for y, s in zip(ys, sorted(points), strict=True)]
            style = "--" if method.startswith("tp_") else "-"
            marker = "s" if method.endswith("(at its fastest)") else "o"
            axis.errorbar(xs, ys, yerr=[low, high], fmt=marker + style, capsize=3, label=method,
                          mfc="none" if marker == "s" else None)
        axis.set_title(f"{name.replace('_', ' ')}")
        axis.set_xlabel(f"measured speedup over dense ({results['meta']['settings'].get('threads', 1)} "
                        "thread(s), batch 1)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("Delta_m after the distilled fine-tune (%)")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=120)
    plt.close(figure)
