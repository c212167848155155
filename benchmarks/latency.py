"""Speed of pruned models: plain torch-pruning, params target (no rounding / round_to="auto") and the latency target.

For each model: the dense model; plain torch-pruning (MetaPruner, L2 magnitude, its per-layer pruning ratio
bisected to remove --tp-params-cut of the parameters, output layers ignored); `prune()` with target="params" at
several ratios with round_to=None, round_to="auto" and fixed multiples (--round-to); target="latency" at several
ratios; and, for each latency run, target="params" at the parameter cut it reached (matched parameter counts). All
pruned models are timed end to end in ONE interleaved run against the dense model: a speedup is the median over
rounds of dense / pruned time within one round, so the load other processes put on a shared machine cancels.

    python benchmarks/latency.py                       # driving (384x640) and resnet50 (224x224), 1 thread
    python benchmarks/latency.py --models driving --threads 2 --repeats 15
    python benchmarks/latency.py --variants latency --latency-ratios 0.3,0.5 --name latency_target_1thread

Writes benchmarks/results/<name>.json, <name>.md and <name>_speedup.svg (the default name, latency, is copied to
docs/latency_speedup.svg). A latency request that prune() refuses is recorded with its message.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from harness import RESULTS, ROOT, write_results, write_text

import taskprune
from taskprune import latency
from taskprune.graph import PruningGraph, count_macs, count_params
from taskprune.latency.cache import cpu_name
from taskprune.tasks import Tasks

DOCS = ROOT / "docs"


def build(name: str, size: tuple[int, int]) -> tuple[torch.nn.Module, torch.Tensor, str]:
    torch.manual_seed(0)
    if name == "driving":
        from taskprune.driving.model import DrivingNet

        return DrivingNet(size="m").eval(), torch.randn(1, 3, *size), "DrivingNet(size='m') (YOLOP-scale)"
    from taskprune.testing import ResNet50ThreeHead, randomize_norms

    return randomize_norms(ResNet50ThreeHead()).eval(), torch.randn(1, 3, *size), "ResNet50ThreeHead"


def plain_torch_pruning(model: torch.nn.Module, x: torch.Tensor, params_cut: float, global_pruning: bool = False,
                        round_to: int | None = None) -> tuple[torch.nn.Module, float]:
    """torch-pruning as its README shows it (MetaPruner, L2 magnitude, the output layers ignored by hand): one
    ratio for every layer, or with `global_pruning=True` and `round_to` (what its README advises for speed); the
    ratio bisected until the parameter cut is within half a point of `params_cut`; returns the pruned copy and the
    ratio."""
    outputs = PruningGraph(model, x, Tasks.from_output(model(x))).output_layers
    params0, low, high = count_params(model), 0.0, 0.9
    for _ in range(12):
        ratio = (low + high) / 2
        work = copy.deepcopy(model)
        ignored = [m for n, m in work.named_modules() if n in outputs]
        tp.pruner.MetaPruner(work, x, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=ratio,
                             ignored_layers=ignored, global_pruning=global_pruning, round_to=round_to).step()
        cut = 1 - count_params(work) / params0
        if abs(cut - params_cut) <= 0.005:
            break
        low, high = (ratio, high) if cut < params_cut else (low, ratio)
    return work, ratio


def run_model(name: str, size: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    model, x, label = build(name, size)
    params0, macs0 = count_params(model), count_macs(model, x)
    variants: list[tuple[str, float, torch.nn.Module, dict[str, Any]]] = []
    refusals: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    if "tp" in args.variants:
        baseline, tp_ratio = plain_torch_pruning(model, x, args.tp_params_cut)
        variants.append((f"torch-pruning@{args.tp_params_cut}", args.tp_params_cut, baseline,
                         {"target": "torch-pruning", "round_to": "none", "ratio": tp_ratio, "notes": []}))
    # global pruning with channel multiples, as torch-pruning advises for speed
    for multiple in args.tp_round_to if "tp" in args.variants else []:
        baseline, tp_ratio = plain_torch_pruning(model, x, args.tp_params_cut, global_pruning=True, round_to=multiple)
        variants.append((f"torch-pruning global/{multiple}@{args.tp_params_cut}", args.tp_params_cut, baseline,
                         {"target": "torch-pruning global", "round_to": str(multiple), "ratio": tp_ratio,
                          "notes": []}))

    def prune(target: str, rounding: str, ratio: float, label_: str | None = None, **kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            result = taskprune.prune(model, x, ratio=ratio, target=target, progress=args.progress, **kwargs)
        except ValueError as refused:  # e.g. the caps cannot reach the requested latency; keep the other runs
            print(f"{name}: {target} round_to={rounding} ratio={ratio}: {refused}", flush=True)
            refusals.append({"target": target, "round_to": rounding, "ratio": ratio, "message": str(refused)})
            return
        info = {"target": target, "round_to": rounding, "ratio": ratio, "reached_reported": result.report.reached,
                "prune_seconds": time.perf_counter() - start, "notes": result.report.warnings}
        variants.append((label_ or f"{target}/{rounding}@{ratio}", ratio, result.model, info))
        print(f"{name}: {target} round_to={rounding} ratio={ratio}: done in {info['prune_seconds']:.0f}s", flush=True)

    for ratio in args.params_ratios if "params" in args.variants else []:
        prune("params", "none", ratio, round_to=None)
        prune("params", "auto", ratio)
        for multiple in args.round_to:
            prune("params", str(multiple), ratio, round_to=multiple)
    for ratio in args.latency_ratios if "latency" in args.variants else []:
        prune("latency", "auto", ratio)
    for _, ratio, pruned, _info in [v for v in variants if v[3]["target"] == "latency" and "matched" in args.variants]:
        cut = round(1 - count_params(pruned) / params0, 4)  # the same parameter count, planned by params
        prune("params", "none", cut, f"params/none@=latency{ratio}", round_to=None)
        prune("params", "auto", cut, f"params/auto@=latency{ratio}")
    rounds = latency.measure_rounds([model] + [v[2] for v in variants], x, warmup=2, repeats=args.repeats)
    dense_seconds = statistics.median(rounds[0])
    # speedup: the median over rounds of dense / pruned within one round (robust to the neighbours' load)
    speedups = [statistics.median(d / t for d, t in zip(rounds[0], times, strict=True)) for times in rounds]
    rows = [{"variant": "dense", "target": "-", "round_to": "-", "ratio": 0.0, "params": params0, "macs": macs0,
             "params_cut": 0.0, "macs_cut": 0.0, "seconds": dense_seconds, "speedup": 1.0, "latency_fraction": 1.0}]
    for (label_, _, pruned, info), times, speedup in zip(variants, rounds[1:], speedups[1:], strict=True):
        params, macs = count_params(pruned), count_macs(pruned, x)
        rows.append({"variant": label_, **info, "params": params, "macs": macs, "params_cut": 1 - params / params0,
                     "macs_cut": 1 - macs / macs0, "seconds": statistics.median(times), "speedup": speedup,
                     "latency_fraction": 1 / speedup})
    return {"model": label, "input": [1, 3, *size], "rows": rows, "refusals": refusals,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


def headline(result: dict[str, Any], params_cut: float = 0.4) -> list[dict[str, Any]]:
    """For each (target, round_to), the run whose parameter cut is nearest `params_cut`."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for row in result["rows"][1:]:
        key = (row["target"], row["round_to"])
        if key not in best or abs(row["params_cut"] - params_cut) < abs(best[key]["params_cut"] - params_cut):
            best[key] = row
    return list(best.values())


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Latency benchmark ({report['date']})", "",
             f"{report['machine']}, torch {report['torch']}, {report['threads']} thread(s), batch 1, eager, "
             f"median of {report['repeats']} interleaved runs (load average before: {report['load_before']}; "
             f"steady allocator: {report.get('steady_allocator', False)}; {report.get('cpus', '?')} CPUs).", "",
             f"Command: `{report.get('command', 'python benchmarks/latency.py')}`", ""]
    for result in report["results"]:
        lines += [f"## {result['model']} at {result['input'][2]}x{result['input'][3]}", "",
                  f"Load average {result.get('load_before', '?')} before, {result.get('load_after', '?')} after.", "",
                  "| variant | params | params cut | MACs cut | latency (ms) | speedup | latency target: asked, "
                  "prune() measured, measured here | notes |", "|---|---|---|---|---|---|---|---|"]
        for row in result["rows"]:
            notes = "; ".join(row.get("notes", []))
            check = (f"{1 - row['ratio']:.0%}, {1 - row['reached_reported']:.1%}, {row['latency_fraction']:.1%}"
                     if row["target"] == "latency" else "")
            lines.append(f"| {row['variant']} | {row['params'] / 1e6:.2f}M | {row['params_cut']:.1%} | "
                         f"{row['macs_cut']:.1%} | {row['seconds'] * 1e3:.0f} | {row['speedup']:.2f}x | {check} | "
                         f"{notes} |")
        lines += ["", "Nearest to 40% fewer parameters: " + ", ".join(
            f"{r['target']} (round_to={r['round_to']}) {r['params_cut']:.1%} fewer params, {r['speedup']:.2f}x"
            for r in headline(result)), ""]
        checks = [f"ratio {r['ratio']}: asked {1 - r['ratio']:.0%} of dense, measured {r['latency_fraction']:.1%} "
                  f"({'within' if abs(r['latency_fraction'] / (1 - r['ratio']) - 1) <= 0.05 else 'outside'} 5%)"
                  for r in result["rows"] if r["target"] == "latency"]
        if checks:
            lines += ["Latency target, re-measured here: " + "; ".join(checks) + ".", ""]
        lines += [f"Refused: target={r['target']} ratio={r['ratio']}: {r['message']}\n"
                  for r in result.get("refusals", [])]
    return "\n".join(lines)


def to_svg(report: dict[str, Any]) -> str:
    """Speedup against parameter reduction, one panel per model, one colour per (target, round_to)."""
    colours = {("params", "none"): "#d62728", ("params", "auto"): "#1f77b4", ("params", "16"): "#9467bd",
               ("latency", "auto"): "#2ca02c", ("torch-pruning", "none"): "#7f7f7f",
               ("torch-pruning global", "8"): "#bcbd22", ("torch-pruning global", "16"): "#8c564b"}
    width, height, pad = 420, 300, 50
    panels = []
    for p, result in enumerate(report["results"]):
        rows = result["rows"]
        top = max(2.0, max(r["speedup"] for r in rows) * 1.1)
        ox = p * (width + 20)

        def xy(cut: float, speedup: float, ox: int = ox, top: float = top) -> tuple[float, float]:
            return ox + pad + cut * (width - 2 * pad), height - pad - speedup / top * (height - 2 * pad)

        parts = [f'<text x="{ox + width / 2}" y="20" text-anchor="middle" font-size="13">{result["model"]} '
                 f'{result["input"][2]}x{result["input"][3]}</text>']
        x0, y0 = xy(0, 0)
        x1, y1 = xy(1, top)
        parts.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#888"/>')
        for tick in range(0, 11, 2):
            tx, _ = xy(tick / 10, 0)
            parts.append(f'<text x="{tx}" y="{y0 + 15}" text-anchor="middle" font-size="10">{tick * 10}%</text>')
        for s in range(0, int(top) + 1):
            _, ty = xy(0, s)
            parts.append(f'<text x="{x0 - 5}" y="{ty + 3}" text-anchor="end" font-size="10">{s}x</text>')
        _, one = xy(0, 1)
        parts.append(f'<line x1="{x0}" y1="{one}" x2="{x1}" y2="{one}" stroke="#aaa" stroke-dasharray="4"/>')
        parts.append(f'<text x="{(x0 + x1) / 2}" y="{height - 12}" text-anchor="middle" font-size="11">'
                     f'parameters removed</text>')
        for key, colour in colours.items():
            points = sorted((r["params_cut"], r["speedup"]) for r in rows[1:] if (r["target"], r["round_to"]) == key)
            coords = [xy(0, 1)] + [xy(c, s) for c, s in points]
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in coords) + '"/>')
            parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in coords[1:]]
        panels.append("\n".join(parts))
    legend = [f'<text x="{20 + (i % 4) * 210}" y="{height + 15 + 14 * (i // 4)}" font-size="11" fill="{c}">'
              f'{t if t == "torch-pruning" else f"{t}, round_to={r}"}</text>'
              for i, ((t, r), c) in enumerate(colours.items())]
    total_width = len(report["results"]) * (width + 20)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_width}" height="{height + 45}" '
            f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(panels + legend) + "\n</svg>\n")


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for result in report["results"]:
        table = Table(title=f"{result['model']} {result['input'][2]}x{result['input'][3]}")
        for column in ("variant", "params cut", "MACs cut", "ms", "speedup"):
            table.add_column(column)
        for row in result["rows"]:
            table.add_row(row["variant"], f"{row['params_cut']:.1%}", f"{row['macs_cut']:.1%}",
                          f"{row['seconds'] * 1e3:.0f}", f"{row['speedup']:.2f}x")
        console.print(table)


def size_arg(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="driving,resnet50", help="comma list of: driving, resnet50")
    parser.add_argument("--driving-size", type=size_arg, default=(384, 640))
    parser.add_argument("--resnet-size", type=size_arg, default=(224, 224))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the probe and tables use them)")
    parser.add_argument("--repeats", type=int, default=11, help="interleaved end-to-end repeats per model")
    parser.add_argument("--params-ratios", type=lambda s: [float(v) for v in s.split(",")], default=[0.2, 0.4, 0.6])
    parser.add_argument("--latency-ratios", type=lambda s: [float(v) for v in s.split(",")], default=[0.3, 0.5])
    parser.add_argument("--tp-params-cut", type=float, default=0.4, help="parameter cut of plain torch-pruning")
    parser.add_argument("--tp-round-to", type=lambda s: [int(v) for v in s.split(",") if v], default=[8, 16],
                        help="channel multiples of the global torch-pruning baselines")
    parser.add_argument("--round-to", type=lambda s: [int(v) for v in s.split(",") if v], default=[16],
                        help="fixed channel multiples to compare with round_to='auto' for the params target")
    parser.add_argument("--variants", type=lambda s: set(s.split(",")), default={"tp", "params", "latency", "matched"},
                        help="comma list of: tp (torch-pruning), params, latency, matched (params at the latency "
                             "runs' parameter counts)")
    parser.add_argument("--progress", action="store_true", help="show the latency-table progress bar")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="latency", help="stem of the result files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steady = latency.steady_allocator()  # timings that do not depend on what the process allocated before
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": cpu_name(),
        "platform": platform.platform(), "torch": torch.__version__, "threads": args.threads,
        "repeats": args.repeats, "load_before": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "variants": sorted(args.variants), "command": " ".join(["python", *sys.argv]),
        "alignment": latency.device_alignment(), "steady_allocator": steady, "results": []}
    for name in args.models.split(","):
        size = args.driving_size if name == "driving" else args.resnet_size
        report["results"].append(run_model(name, size, args))
    report["load_after"] = round(os.getloadavg()[0], 2)
    write_results(args.out, args.name, report, to_markdown(report), indent=2)
    write_text(args.out / f"{args.name}_speedup.svg", to_svg(report))
    if args.out.resolve() == RESULTS.resolve() and args.name == "latency":  # the run that illustrates the docs
        DOCS.mkdir(exist_ok=True)
        shutil.copy(args.out / "latency_speedup.svg", DOCS / "latency_speedup.svg")
    print_table(report)


if __name__ == "__main__":
    main()
