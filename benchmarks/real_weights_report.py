"""Tables, verdicts and the picture of `real_weights.py`: benchmarks/results/real_weights.json, .md and .png.

    python benchmarks/real_weights_report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, write_results  # noqa: E402
from real_nets import WORSE  # noqa: E402
from real_weights import CRITERIA, NETWORKS, RUNS, TARGETS, stem  # noqa: E402

COMMAND = "OMP_NUM_THREADS=1 python benchmarks/real_weights.py {args} && python benchmarks/real_weights_report.py"
METHODS = (*CRITERIA, "torch_pruning")
JUDGES = {"frames": "a fifth frame and its mirror image", "crops": "crops of a fifth frame, which misjudge: "
          "real_recovery_judge-crops.md"}


def mean(agreement: dict[str, float] | None) -> float | None:
    return None if agreement is None else sum(agreement.values()) / len(agreement)


def load() -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]
    return [{**r["record"], "settings": r["settings"], "load": r["machine"]["load"]} for r in runs]


def winners(records: list[dict[str, Any]], stage: str) -> list[dict[str, Any]]:
    """Per network and target: the method with the highest mean agreement at `stage` ("pruned"/"recovered")."""
    cells: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for r in records:
        if r.get(stage) is not None:
            cells.setdefault((r["network"], r["target"], r["share"]), []).append(r)
    out = []
    for (network, target, share), rows in sorted(cells.items()):
        top = max(mean(r[stage]) for r in rows)
        out.append({"network": network, "target": target, "share": share,
                    "winners": [r["method"] for r in rows if mean(r[stage]) == top],  # ties share the cell
                    "agreement": top, "methods": len(rows)})
    return out


def fmt(agreement: dict[str, float] | None) -> str:
    return "" if agreement is None else f"{agreement['drivable']:.1f} / {agreement['lane']:.1f}"


def markdown(records: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = ["# Real pretrained networks on real BDD100K frames", "",
             "Agreement = IoU (%) of the pruned network's foreground with the dense network's, drivable / lane, on "
             "the two held-back frames; 'pruned' is before recovery, 'recovered' after `taskprune.finetune` with its "
             f"defaults (judged on {JUDGES[summary['judge']]}). Channels scored and recovery trained on crops (with "
             "flips) of four other frames. Latency rows keep that share of the measured time (ratio = 1 - share).", "",
             f"Command: `{summary['command']}`", "",
             f"Machine load (1-minute average) during the runs: {summary['load_min']:.1f} to "
             f"{summary['load_max']:.1f} on 2 cores; one thread.", ""]
    for network in sorted({r["network"] for r in records}):
        lines += [f"## {network}", "", "| target | method | params removed | pruned | recovered | CPU s (prune + "
                  "recovery) |", "|---|---|---|---|---|---|"]
        rows = sorted((r for r in records if r["network"] == network),
                      key=lambda r: (r["target"], -r["share"], METHODS.index(r["method"])))
        for r in rows:
            if r.get("failed"):
                lines.append(f"| {r['target']} {r['share']:g} | {r['method']} | no model: {r['failed']} | | | "
                             f"{r['prune_cpu_seconds']:.0f} |")
                continue
            cpu = r["prune_cpu_seconds"] + r.get("recovery_cpu_seconds", 0.0)
            lines.append(f"| {r['target']} {r['share']:g} | {r['method']} | {100 * r['params_reduction']:.1f}% | "
                         f"{fmt(r['pruned'])} | {fmt(r.get('recovered'))} | {cpu:.0f} |")
        lines.append("")
    lines += ["## Which criterion wins", ""]
    for stage in ("pruned", "recovered"):
        counts = summary["wins"][stage]
        lines.append(f"- {stage}: " + (", ".join(f"{m} {n}" for m, n in counts.items() if n) or "no cells") +
                     f" (cells won or tied, of {len(summary['winners'][stage])}; best mean agreement per network "
                     "and target)")
    lines += ["", summary["verdict"], "", f"Not measured: {len(summary['missing'])} of {summary['grid']} cells of the "
              "full grid (every network at params 0.3/0.5 and latency 0.7/0.5, each criterion, torch-pruning at the "
              "params targets): " + (", ".join(f"{n} {k}" for n, k in missing_by_network(summary["missing"]).items())
                                       or "none") + ".", ""]
    worse = [r for r in records if r.get("recovery_warning")]
    recovered = [r for r in records if r.get("recovered") is not None]
    below = [r for r in recovered if mean(r["recovered"]) < mean(r["pruned"]) - WORSE]
    lines.append(f"Recoveries that ended worse than they started on the judging frame (and were given back "
                 f"unrecovered): {len(worse)} of {len(recovered)}. Recoveries that ended below their start on the "
                 f"held-back frames (mean agreement): {len(below)} of {len(recovered)}" +
                 (": " + ", ".join(f"{stem(r['network'], r['target'], r['share'], r['method'])} "
                                   f"{mean(r['pruned']):.1f} -> {mean(r['recovered']):.1f}" for r in below)
                  if below else "") + ".")
    return "\n".join(lines) + "\n"


def missing_by_network(missing: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in NETWORKS:
        counts[name] = sum(1 for m in missing if m.startswith(f"{name}_"))
    return {n: k for n, k in counts.items() if k}


def verdict(records: list[dict[str, Any]]) -> str:
    at50 = [r for r in records if r["target"] == "params" and r["share"] == 0.5 and r.get("recovered") is not None]
    parts = []
    for network in sorted({r["network"] for r in at50}):
        row = {r["method"]: mean(r["recovered"]) for r in at50 if r["network"] == network}
        aware = max((row[m], m) for m in ("task_taylor", "conflict_taylor") if m in row) if any(
            m in row for m in ("task_taylor", "conflict_taylor")) else None
        others = {m: row[m] for m in ("taylor", "torch_pruning") if m in row}
        if aware is None or not others:
            continue
        ahead = all(aware[0] > v for v in others.values())
        failed = [r["method"] for r in records if r["network"] == network and r.get("failed")
                  and r["target"] == "params" and r["share"] == 0.5]
        parts.append(f"{network}: {aware[1]} {aware[0]:.1f} vs " + ", ".join(f"{m} {v:.1f}" for m, v in
                                                                              others.items()) +
                     (" (ahead)" if ahead else " (not ahead)") +
                     "".join(f"; {m} produced no model" for m in failed))
    return ("At 50% of the parameters, after recovery, task-aware against task-blind `taylor` and torch-pruning "
            "(mean agreement): " + ("; ".join(parts) if parts else "no complete cell") + ".")


def picture(path: Path) -> bool:
    dense = sorted(RUNS.glob("*_dense_masks.npz"))
    if not dense:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    network = dense[0].name.removesuffix("_dense_masks.npz")
    base = np.load(dense[0])
    shown = [(m, np.load(p)) for m in METHODS for p in [RUNS / f"{network}_params0.5_{m}_masks.npz"] if p.exists()]
    image = base["image"].transpose(1, 2, 0)

    def overlay(drivable: np.ndarray, lane: np.ndarray) -> np.ndarray:
        out = image.copy()
        out[drivable] = 0.5 * out[drivable] + 0.5 * np.array([0.1, 0.8, 0.1])
        out[lane] = np.array([1.0, 0.1, 0.1])
        return out

    fig, axes = plt.subplots(1 + len(shown), 2, figsize=(8, 2.4 * (1 + len(shown))), squeeze=False)
    panels = [("dense", overlay(base["dense_drivable"], base["dense_lane"]), image)]
    panels += [(m, overlay(d["pruned_drivable"], d["pruned_lane"]),
                overlay(d["recovered_drivable"], d["recovered_lane"]) if "recovered_lane" in d else image)
               for m, d in shown]
    for row, (label, left, right) in zip(axes, panels, strict=True):
        row[0].imshow(left)
        row[1].imshow(right)
        row[0].set_title(f"{label}: {'frame' if label == 'dense' else 'pruned 50%'}", fontsize=8)
        row[1].set_title("frame" if label == "dense" else f"{label}: recovered", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.suptitle(f"{network}, a held-back frame: drivable (green), lane (red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return True


def main() -> None:
    records = load()
    if not records:
        raise SystemExit(f"no runs in {RUNS}")
    settings = {"judge": "crops", **records[0]["settings"]}  # runs from before --judge judged on crops
    args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items())
    wins = {stage: {m: sum(1 for w in winners(records, stage) if m in w["winners"]) for m in METHODS}
            for stage in ("pruned", "recovered")}
    loads = [r["load"] for r in records]
    grid = [stem(n, t, float(v), m) for n in NETWORKS for t, v in (x.split(":") for x in TARGETS) for m in METHODS
            if m != "torch_pruning" or t == "params"]
    have = {stem(r["network"], r["target"], r["share"], r["method"]) for r in records}
    summary = {"command": COMMAND.format(args=args), "judge": settings["judge"], "wins": wins,
               "verdict": verdict(records),
               "winners": {s: winners(records, s) for s in ("pruned", "recovered")},
               "load_min": min(loads), "load_max": max(loads), "grid": len(grid),
               "missing": [g for g in grid if g not in have]}
    record = {"summary": summary, "records": records}
    write_results(RESULTS, "real_weights", record, markdown(records, summary))
    picture(RESULTS / "real_weights.png")
    print((RESULTS / "real_weights.md").read_text())


if __name__ == "__main__":
    main()
