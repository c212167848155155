"""Gather the evidence runs into evidence.json and evidence.md: every method on validation and both test sets, the
torch-pruning configuration chosen on validation, and paired differences by seed on the test sets.

    python benchmarks/evidence.py --collect       # rebuild them from the run files
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from harness import write_json, write_text

SETS = ("validation", "test_a", "test_b")
TESTS = ("test_a", "test_b")
METRICS = ("recall", "map50", "drivable_miou", "lane_acc", "lane_iou")
OURS = ("taylor", "task_taylor", "conflict_taylor")
PAIRS = (("task_taylor", "tp"), ("conflict_taylor", "tp"), ("taylor", "tp"), ("task_taylor", "taylor"),
         ("conflict_taylor", "task_taylor"))


def _runs(folder: Path, settings: dict) -> list[dict]:
    settings = json.loads(json.dumps(settings))
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return [r for r in records if r["settings"] == settings]


def _final(records: list[dict]) -> list[dict]:
    """The row each run is judged by: the distilled student (or the fine-tuned teacher)."""
    return [row for r in records for row in r["rows"] if row["stage"] in ("distilled", "finetuned")]


def best_torch_pruning(folder: Path, settings: dict, reduction: float, steps: int, seeds: list[int],
                       names: list[str]) -> str | None:
    """The torch-pruning configuration with the best mean validation Delta_m at (reduction, steps), once every
    configuration has a run on every seed; None before."""
    rows = [row for row in _final(_runs(folder, settings)) if row["steps"] == steps
            and abs(row["reduction"] - reduction) < 1e-9 and row["method"] in names and row["seed"] in seeds]
    by_name = defaultdict(list)
    for row in rows:
        by_name[row["method"]].append(row["sets"]["validation"]["delta_m"])
    if any(len(by_name[name]) < len(seeds) for name in names):
        return None
    return max(names, key=lambda name: statistics.mean(by_name[name]))


def collect(folder: Path, out: Path, settings: dict) -> dict:
    """Every run made with `settings` -> out/evidence.json and evidence.md; returns the results."""
    records = _runs(folder, settings)
    teacher_path = out / "evidence_teacher.json"
    teacher = json.loads(teacher_path.read_text())["teacher"] if teacher_path.exists() else {}
    results = {"meta": {"written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": len(records),
                        "settings": settings, "command": "python benchmarks/evidence.py",
                        "units": "metrics in points (0-100); delta_m in percent against the teacher on the same "
                                 "set, higher is better"},
               "teacher": teacher, "rows": [row for r in records for row in r["rows"]]}
    write_json(out / "evidence.json", results)
    write_text(out / "evidence.md", markdown(results))
    return results


def spread(values: list[float], digits: int = 2, signed: bool = True) -> str:
    """mean ±half the min-max range."""
    if not values:
        return "-"
    mean, half = statistics.mean(values), (max(values) - min(values)) / 2
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return f"{text} ±{half:.{digits}f}" if len(values) > 1 else text


def _chosen(rows: list[dict], reduction: float, steps: int) -> str | None:
    tp = defaultdict(list)
    for row in rows:
        if row["method"].startswith("tp_") and row["steps"] == steps and abs(row["reduction"] - reduction) < 1e-9:
            tp[row["method"]].append(row["sets"]["validation"]["delta_m"])
    if not tp:
        return None
    most = max(len(v) for v in tp.values())
    complete = {name: v for name, v in tp.items() if len(v) == most}
    return max(complete, key=lambda name: statistics.mean(complete[name]))


def _chosen_how(cell: list[dict], steps: int) -> str:
    """How the torch-pruning row was chosen: on validation, among every configuration or only those run on as
    many seeds as the most (the others wait for their runs)."""
    counts = defaultdict(int)
    for row in cell:
        if row["method"].startswith("tp_") and row["steps"] == steps:
            counts[row["method"]] += 1
    if len(set(counts.values())) <= 1:
        return "chosen on validation"
    most = max(counts.values())
    return f"chosen on validation among the configurations run on all {most} seeds"


def markdown(results: dict) -> str:
    rows, settings = _final_rows(results["rows"]), results["meta"]["settings"]
    lines = [f"# Evidence out of sample ({results['meta']['written']})", "",
             f"DrivingNet-s teacher at {settings['image_size'][0]}x{settings['image_size'][1]}; "
             f"{settings['eval_images']} scenes per set: validation (seed {settings['validation_seed']}, the only "
             f"set any choice looks at), test A and test B (seeds {settings['test_seeds'][0]} and "
             f"{settings['test_seeds'][1]}, only reported). Every student gets the same fine-tune (distillation "
             f"from the teacher, {settings['distill']}, lr {settings['lr']}, PreciseBN on {settings['bn_batches']} "
             f"batches). Delta_m in percent against the teacher on the same set; mean ±half the min-max range over "
             f"seeds.", ""]
    if results["teacher"]:
        lines += ["Teacher, with the bootstrap 95% interval over the scenes of each set (its sampling noise):", "",
                  "| set | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        for name in SETS:
            cells = results["teacher"][name]
            lines.append(f"| {name} | " + " | ".join(
                f"{cells[m]['value']:.1f} [{cells[m]['low']:.1f}, {cells[m]['high']:.1f}]" for m in METRICS) + " |")
        lines.append("")
    for (reduction, steps) in sorted({(r["reduction"], r["steps"]) for r in rows}):
        cell = [r for r in rows if r["reduction"] == reduction and r["steps"] == steps]
        chosen = _chosen(cell, reduction, steps) if reduction else None
        lines += [f"## {reduction:.0%} fewer parameters, {steps}-step fine-tune" if reduction else
                  f"## Control: the teacher fine-tuned {steps} steps", "",
                  "| method | n | params removed | Delta_m validation | Delta_m test A | Delta_m test B | "
                  "lane IoU A | lane IoU B | mAP50 A | mAP50 B |", "|---|---|---|---|---|---|---|---|---|---|"]
        for method in sorted({r["method"] for r in cell}, key=_order):
            mine = [r for r in cell if r["method"] == method]
            label = f"{method} ({_chosen_how(cell, steps)})" if method == chosen else method
            lines.append(f"| {label} | {len(mine)} | {statistics.mean(r['params_reduction'] for r in mine):.1%} | "
                         + " | ".join(spread([r["sets"][s]["delta_m"] for r in mine]) for s in SETS) + " | "
                         + " | ".join(spread([r["sets"][s][m] for r in mine], 1, signed=False)
                                      for m in ("lane_iou", "map50") for s in TESTS) + " |")
        lines.append("")
        if reduction:
            lines += _pairs(cell, chosen)
    return "\n".join(lines) + "\n"


def _pairs(cell: list[dict], chosen: str | None) -> list[str]:
    """Paired differences by seed on each test set; "ahead" when every seed's difference is positive on both sets
    and the two methods' ranges over the seeds do not overlap on either; with one seed there is no spread to beat,
    so the verdict waits ("1 seed")."""
    lines = ["Paired by seed, Delta_m points: mean [min, max] over the seeds.", "",
             "| method | minus | seeds | test A | test B | ahead on both |", "|---|---|---|---|---|---|"]
    by = {(r["method"], r["seed"]): r for r in cell}
    for first, second in PAIRS:
        second = chosen if second == "tp" else second
        seeds = sorted(s for (m, s) in by if m == first and (second, s) in by)
        if second is None or not seeds:
            continue
        texts, ahead = [], True
        for name in TESTS:
            diffs = [by[(first, s)]["sets"][name]["delta_m"] - by[(second, s)]["sets"][name]["delta_m"]
                     for s in seeds]
            mine = [by[(first, s)]["sets"][name]["delta_m"] for s in seeds]
            theirs = [by[(second, s)]["sets"][name]["delta_m"] for s in seeds]
            ahead &= min(diffs) > 0 and min(mine) > max(theirs)
            texts.append(f"{statistics.mean(diffs):+.2f} [{min(diffs):+.2f}, {max(diffs):+.2f}]")
        verdict = "1 seed" if len(seeds) < 2 else "yes" if ahead else "no"
        lines.append(f"| {first} | {second} | {len(seeds)} | {texts[0]} | {texts[1]} | {verdict} |")
    return lines + [""]


def _final_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["stage"] in ("distilled", "finetuned")]


def _order(method: str) -> tuple[int, str]:
    return (OURS.index(method) if method in OURS else len(OURS), method)

