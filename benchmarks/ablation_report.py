"""Gather the evidence grid's run files into ablation.json, a markdown table of means and spreads, and a plot.

    python benchmarks/ablation.py --collect
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from harness import write_atomically, write_json, write_text

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
    # two shards may gather at once: each file is written whole and renamed into place
    write_json(out / "ablation.json", results)
    write_text(out / "ablation.md", headline(results) + "\n" + markdown(results))
    write_text(out / "ablation_headline.md", headline(results))
    write_atomically(out / "ablation.png", lambda p: plot(results, p))
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


MAIN = ("random", "magnitude", "taylor", "tp_taylor_global", "task_taylor", "conflict_taylor")
PAIRS = [("conflict_taylor", other) for other in MAIN[:-1]] + [("task_taylor", other) for other in MAIN[:4]]


def headline(results: dict) -> str:
    """The short version: Delta_m and lane IoU after the distilled fine-tune per criterion and reduction, and
    conflict_taylor against every other criterion, paired by seed (a seed fixes the scoring batches and the
    fine-tune order for every criterion alike)."""
    cells = _cells(results["rows"])
    reductions = sorted({k[0] for k in cells if k[0] > 0})
    lines = ["After the same distilled fine-tune; mean ±half the min-max range over the seeds (n); Delta_m in "
             "percent against the teacher, lane IoU in points.", "",
             "| criterion | "
             + " | ".join(f"n ({r:.0%}) | Delta_m ({r:.0%}) | lane IoU ({r:.0%})" for r in reductions) + " |",
             "|---|" + "---|---|---|" * len(reductions)]
    for criterion in MAIN:
        row = [criterion]
        for reduction in reductions:
            group = cells.get((reduction, criterion, "distilled"), [])
            row += [str(len(group)), spread([r["delta_m"] for r in group], 2) + "%" if group else "-",
                    spread([r["lane_iou"] for r in group]) if group else "-"]
        lines.append("| " + " | ".join(row) + " |")
    control = cells.get((0.0, "teacher_finetuned", "finetuned"), [])
    if control:
        lines += ["", f"Control: the dense teacher fine-tuned for the same steps, Delta_m "
                      f"{spread([r['delta_m'] for r in control], 2)}% (n={len(control)}).", ""]
    for reduction in reductions:
        plain = {r["seed"]: r["delta_m"] for r in cells.get((reduction, "conflict_taylor", "finetuned"), [])}
        distilled = {r["seed"]: r["delta_m"] for r in cells.get((reduction, "conflict_taylor", "distilled"), [])}
        seeds = sorted(set(plain) & set(distilled))
        if seeds:
            gains = [distilled[s] - plain[s] for s in seeds]
            lines.append(f"- Distillation at {reduction:.0%}: conflict_taylor's Delta_m after the distilled "
                         f"fine-tune minus "
                         f"after the same fine-tune without it, {statistics.fmean(gains):+.2f} points "
                         f"[{min(gains):+.2f}, {max(gains):+.2f}] over {len(seeds)} seed(s).")
    lines += ["", "Task-aware minus task-blind (and conflict_taylor minus task_taylor), Delta_m points, paired by "
                  "seed: mean [min, max] over the seeds; \"ahead\" when every seed's difference is positive and the "
                  "two criteria's ranges over the seeds do not overlap.", "",
              "| reduction | criterion | minus | seeds | difference | ahead |", "|---|---|---|---|---|---|"]
    for reduction, (criterion, other) in itertools.product(reductions, PAIRS):
        ours = {r["seed"]: r["delta_m"] for r in cells.get((reduction, criterion, "distilled"), [])}
        theirs = {r["seed"]: r["delta_m"] for r in cells.get((reduction, other, "distilled"), [])}
        seeds = sorted(set(ours) & set(theirs))
        if not seeds:
            continue
        diffs = [ours[s] - theirs[s] for s in seeds]
        apart = min(ours[s] for s in seeds) > max(theirs[s] for s in seeds)
        verdict = "yes" if min(diffs) > 0 and apart and len(seeds) > 1 else \
                  "one seed only" if len(seeds) == 1 else "no"
        lines.append(f"| {reduction:.2f} | {criterion} | {other} | {len(seeds)} | {statistics.fmean(diffs):+.2f} "
                     f"[{min(diffs):+.2f}, {max(diffs):+.2f}] | {verdict} |")
    return "\n".join(lines + variants(cells)) + "\n"


def variants(cells: dict[tuple, list[dict]]) -> list[str]:
    """conflict_taylor's variants (`conflict_taylor:lam=...`, `:measure=...`) against the default on the same
    seeds; lam=0 is task_taylor exactly (S = TCI)."""
    keys = sorted(k for k in cells if k[1].startswith("conflict_taylor:") and k[2] == "distilled")
    if not keys:
        return []
    lines = ["", "Variants of conflict_taylor (default: lam=0.5, measure=cosine) against the default on the same "
                 "seeds, "
                 "after the distilled fine-tune; lam=0 is task_taylor.", "",
             "| reduction | variant | seeds | Delta_m | default on those seeds | difference |",
             "|---|---|---|---|---|---|"]
    for reduction, variant, stage in keys:
        mine = {r["seed"]: r["delta_m"] for r in cells[(reduction, variant, stage)]}
        default = {r["seed"]: r["delta_m"] for r in cells.get((reduction, "conflict_taylor", stage), [])}
        seeds = sorted(set(mine) & set(default))
        if not seeds:
            lines.append(f"| {reduction:.2f} | {variant} | {len(mine)} | {spread(list(mine.values()), 2)}% | - | - |")
            continue
        diffs = [mine[s] - default[s] for s in seeds]
        lines.append(f"| {reduction:.2f} | {variant} | {len(seeds)} | {spread([mine[s] for s in seeds], 2)}% | "
                     f"{spread([default[s] for s in seeds], 2)}% | {statistics.fmean(diffs):+.2f} |")
    return lines


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
    reductions = sorted({k[0] for k in cells if k[0] > 0})
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=False)
    for axis, stage in zip(axes, ("pruned", "distilled"), strict=True):
        for offset, criterion in enumerate(criteria):
            keys = sorted(k for k in cells if k[1] == criterion and k[2] == stage)
            if not keys:
                continue
            x = [k[0] + 0.003 * (offset - (len(criteria) - 1) / 2) for k in keys]  # side by side, not on top
            values = [[r["delta_m"] for r in cells[k]] for k in keys]
            means = [statistics.fmean(v) for v in values]
            # identical seeds give a mean a rounding error outside [min, max]: matplotlib refuses negative bars
            low = [max(0.0, m - min(v)) for m, v in zip(means, values, strict=True)]
            high = [max(0.0, max(v) - m) for m, v in zip(means, values, strict=True)]
            variant = ":" in criterion  # conflict_taylor's options: one reduction, fewer seeds
            axis.errorbar(x, means, yerr=[low, high], marker="x" if variant else "o", capsize=3,
                          linestyle="none" if variant else "-", label=f"{criterion} (n={len(values[-1])})")
        control = cells.get((0.0, "teacher_finetuned", "finetuned"))
        if control and stage == "distilled":
            axis.axhline(statistics.fmean(r["delta_m"] for r in control), color="grey", linestyle=":",
                         label="teacher fine-tuned (control)")
        axis.axhline(0.0, color="black", linewidth=0.8)
        axis.set_xticks(reductions, [f"{r:.0%}" for r in reductions])
        axis.set_xlabel("parameters removed (requested; criteria side by side)")
        axis.set_ylabel("Delta_m against the teacher (%)")
        axis.set_title("right after pruning" if stage == "pruned" else "after the fine-tune with distillation")
        axis.grid(alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(0.78, 0.5), fontsize=8, frameon=False)
    figure.subplots_adjust(left=0.06, right=0.77, wspace=0.25, top=0.86, bottom=0.13)
    figure.suptitle("Criteria on the driving teacher: mean and min-max over seeds (n)")
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)

