"""Gather the evidence grid's run files into ablation.json, a markdown table of means and spreads, and a plot.

    python benchmarks/ablation_report.py            # same as: python benchmarks/ablation.py --collect
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from taskprune._runtime import atomic_write

METRICS = ("recall", "map50", "drivable_miou", "lane_acc", "lane_iou")
HEADERS = ("Recall", "mAP50", "drivable mIoU", "lane Acc", "lane IoU")
ORDER = ("teacher", "teacher_finetuned", "random", "magnitude", "taylor", "tp_taylor_global", "task_taylor",
         "conflict_taylor")


def collect(folder: Path, out: Path, settings: dict) -> dict:
    """Rows of every run file made with `settings` -> out/ablation.json, .md and .png; returns the results."""
    settings = json.loads(json.dumps(settings))
    rows, runs, other = [], 0, 0
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record["settings"] != settings:
            other += 1
            continue
        rows += record["rows"]
        runs += 1
    meta = {"written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs,
            "runs_with_other_settings": other, "settings": settings,
            "units": "metrics in points (0-100); delta_m in percent against the teacher, higher is better",
            "command": "python benchmarks/ablation.py"}
    results = {"meta": meta, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    # two shards may gather at once: each file is written whole and renamed into place
    atomic_write(out / "ablation.json", lambda p: p.write_text(json.dumps(results, indent=1) + "\n"))
    atomic_write(out / "ablation.md", lambda p: p.write_text(markdown(results)))
    atomic_write(out / "ablation.png", lambda p: plot(results, p))
    return results


def _cells(rows: list[dict]) -> dict[tuple, list[dict]]:
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        cells[(row["reduction"], row["criterion"], row["stage"])].append(row)
    return cells


def _rank(key: tuple) -> tuple:
    reduction, criterion, stage = key
    base = criterion.split(":")[0]
    return (reduction, ORDER.index(base) if base in ORDER else len(ORDER), criterion,
            ("pruned", "finetuned", "distilled").index(stage))


def spread(values: list[float], digits: int = 1) -> str:
    """"mean ±half-range" over the seeds ("mean" alone for one value)."""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ±{(max(values) - min(values)) / 2:.{digits}f}"


def markdown(results: dict) -> str:
    cells = _cells(results["rows"])
    settings = results["meta"]["settings"]
    lines = [f"DrivingNet-{settings['size']} teacher (`{settings['teacher']}`) at {settings['image_size'][0]}x"
             f"{settings['image_size'][1]}, {settings['test_images']} held-out synthetic test scenes; every student "
             f"fine-tuned {settings['steps']} steps (batch {settings['batch_size']}, distillation: "
             f"{settings['distill']} on the shared trunk's outputs); round_to={settings['round_to']}. "
             "Cells: mean ±half the min-max range over the seeds (n = seeds); metrics in points, Delta_m in "
             "percent against the teacher (higher is better).", "",
             "| reduction | criterion | stage | n | params | " + " | ".join(HEADERS) + " | Delta_m |",
             "|---|---|---|---|---|" + "---|" * (len(HEADERS) + 1)]
    for key in sorted(cells, key=_rank):
        group = cells[key]
        params = statistics.fmean(r["params"] for r in group)
        cut = statistics.fmean(r["params_reduction"] for r in group)
        lines.append(f"| {key[0]:.2f} | {key[1]} | {key[2]} | {len(group)} | {params / 1e6:.2f}M (-{100 * cut:.1f}%) | "
                     + " | ".join(spread([r[m] for r in group]) for m in METRICS)
                     + f" | {spread([r['delta_m'] for r in group], 2)}% |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Delta_m after distillation against the reduction, one line per criterion, the seeds' min-max as bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # the plot needs the plot extra; the JSON and markdown are written anyway
    cells = _cells(results["rows"])
    criteria = sorted({k[1] for k in cells if k[2] == "distilled"}, key=lambda c: _rank((0, c, "distilled")))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for axis, stage in zip(axes, ("pruned", "distilled"), strict=True):
        for offset, criterion in enumerate(criteria):
            keys = sorted(k for k in cells if k[1] == criterion and k[2] == stage)
            if not keys:
                continue
            x = [k[0] + 0.004 * (offset - len(criteria) / 2) for k in keys]  # side by side, not on top
            values = [[r["delta_m"] for r in cells[k]] for k in keys]
            means = [statistics.fmean(v) for v in values]
            low = [m - min(v) for m, v in zip(means, values, strict=True)]
            high = [max(v) - m for m, v in zip(means, values, strict=True)]
            axis.errorbar(x, means, yerr=[low, high], marker="o", capsize=3, label=criterion)
        control = cells.get((0.0, "teacher_finetuned", "finetuned"))
        if control and stage == "distilled":
            axis.axhline(statistics.fmean(r["delta_m"] for r in control), color="grey", linestyle=":",
                         label="teacher fine-tuned (control)")
        axis.axhline(0.0, color="black", linewidth=0.8)
        axis.set_xlabel("parameters removed (requested fraction)")
        axis.set_ylabel("Delta_m against the teacher (%)")
        axis.set_title("right after pruning" if stage == "pruned" else "after the fine-tune with distillation")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.suptitle("Criteria on the driving teacher: mean and min-max over seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)


if __name__ == "__main__":
    from dataclasses import asdict

    from ablation import Settings
    from driving_setup import RESULTS

    collect(RESULTS / "ablation_runs", RESULTS, asdict(Settings()))
