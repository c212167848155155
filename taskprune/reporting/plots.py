"""Pictures of a prune: the channels every group keeps, coloured by the tasks it serves, and metrics side by side.

Needs matplotlib: `pip install taskprune[plot]`. Every function writes a PNG and returns its path.

Example:
    >>> result = taskprune.prune(model, x, ratio=0.4)
    >>> taskprune.plots.plot_channels(result.report, "channels.png")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_channels", "plot_frontier", "plot_metrics"]

_SHARED, _NONE = "#4c4c6a", "#c8c8c8"
_TASK_COLOURS = ("#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#ccb974", "#64b5cd")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("taskprune's plots need matplotlib: pip install taskprune[plot]") from error
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _colours(serves: Sequence[str]) -> dict[str, str]:
    tasks = sorted({s for s in serves if s not in ("shared", "none")})
    colours = {task: _TASK_COLOURS[i % len(_TASK_COLOURS)] for i, task in enumerate(tasks)}
    return {"shared": _SHARED, "none": _NONE, **colours}


def plot_channels(report: Any, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Bars per channel group, in graph order: the channels before (pale) and kept (solid), coloured by what the
    group serves ("shared" by several tasks, or the one task). Takes a `PruneReport` (or its `to_dict()`)."""
    plt = _pyplot()
    groups = (report if isinstance(report, Mapping) else report.to_dict())["groups"]
    serves = [_serves(g["tasks"]) for g in groups]
    colours = _colours(serves)
    longest = max((len(g["layer"]) for g in groups), default=0)  # the names stand under the bars
    figure, axis = plt.subplots(figsize=(max(8.0, 0.14 * len(groups) + 2), 4.2 + 0.055 * longest))
    positions = range(len(groups))
    axis.bar(positions, [g["before"] for g in groups], color=[colours[s] for s in serves], alpha=0.25, width=0.85)
    axis.bar(positions, [g["after"] for g in groups], color=[colours[s] for s in serves], width=0.85)
    blocked = [i for i, g in enumerate(groups) if g.get("note")]
    if blocked:
        axis.scatter(blocked, [groups[i]["before"] for i in blocked], marker="x", color="black", s=14, zorder=3,
                     label="kept whole (see the report's note)")
    for name in dict.fromkeys(serves):
        axis.bar([0], [0], color=colours[name], label=name)  # one legend entry per kind
    axis.set_yscale("log", base=2)
    axis.set_xticks(list(positions), [g["layer"] for g in groups], rotation=90, fontsize=6)
    axis.set_xlim(-0.6, len(groups) - 0.4)
    axis.set_xlabel("channel group, named by its root layer (graph order)")
    axis.set_ylabel("channels (pale: before, solid: kept)")
    axis.set_title(title or "channels kept per group, by the tasks it serves", pad=24)
    axis.legend(fontsize=8, ncol=6, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, plt, path)


def plot_metrics(models: Mapping[str, Mapping[str, float]], path: str | os.PathLike[str], *,
                 title: str = "metrics", scale: float = 100.0) -> Path:
    """Grouped bars: one group per metric, one bar per model (e.g. teacher / pruned / distilled), values
    multiplied by `scale` (100: fractions shown as points)."""
    plt = _pyplot()
    names = list(models)
    metrics = list(dict.fromkeys(m for values in models.values() for m in values))
    figure, axis = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) + 1), 4.0))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [scale * float(models[name].get(m, float("nan"))) for m in metrics]
        bars = axis.bar([j + (i - (len(names) - 1) / 2) * width for j in range(len(metrics))], values, width,
                        label=name)
        axis.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    axis.set_xticks(range(len(metrics)), metrics)
    axis.set_title(title)
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, plt, path)


def plot_frontier(frontier: Sequence[Mapping[str, Any]], limits: Mapping[str, float],
                  path: str | os.PathLike[str], *, title: str = "metric drop as pruning goes further") -> Path:
    """`prune_within`'s frontier: per limited metric, its drop against the reduction, with the limit dashed in the
    same colour (metrics with equal limits share one dashed line, and the legend names them all). The line joins the
    models that held; a model that broke a limit is drawn as open circles, with a cross at its largest drop."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.2))
    # a search that bisects visits reductions out of order; entries a budget refused have no metrics
    frontier = sorted((f for f in frontier if f.get("reduction") is not None), key=lambda f: f["reduction"])
    held = [f for f in frontier if f["within"]]
    broken = [f for f in frontier if not f["within"]]
    sharing: dict[float, list[str]] = {}
    for name, limit in limits.items():
        sharing.setdefault(float(limit), []).append(name)
    for i, (name, limit) in enumerate(limits.items()):
        colour = _TASK_COLOURS[i % len(_TASK_COLOURS)]
        axis.plot([100 * f["reduction"] for f in held], [f["drop"][name] for f in held], marker="o", color=colour,
                  label=name)
        axis.scatter([100 * f["reduction"] for f in broken], [f["drop"][name] for f in broken], marker="o",
                     facecolors="none", edgecolors=colour, zorder=2)
        names = sharing[float(limit)]
        if len(names) == 1:
            axis.axhline(limit, color=colour, linestyle="--", linewidth=0.9, label=f"{name} limit ({limit:g})")
        elif name == names[0]:  # equal limits would draw over each other: one line, said to be shared
            axis.axhline(limit, color="dimgray", linestyle="--", linewidth=0.9,
                         label=f"limit of {' and '.join(names)} (equal: {limit:g})")
    if broken:
        axis.scatter([100 * f["reduction"] for f in broken], [max(f["drop"].values()) for f in broken], marker="x",
                     color="black", s=50, zorder=3, label="broke a limit (open circles; x: its largest drop)")
    axis.axhline(0.0, color="black", linewidth=0.7)
    axis.set_xlabel("reduction (%)")
    axis.set_ylabel("drop against the unpruned model (dashed: limit)")
    axis.set_title(title)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, plt, path)


def _serves(tasks: Sequence[str]) -> str:
    return "shared" if len(tasks) > 1 else (tasks[0] if tasks else "none")


def _save(figure: Any, plt: Any, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target
