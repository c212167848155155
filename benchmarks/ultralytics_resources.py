"""Time and peak memory of taskprune's Ultralytics `prune` against plain torch-pruning on Ultralytics' own models.

Every model is built from Ultralytics' YAML (`YOLO("yolo11n-seg.yaml")`, 80 classes, random weights), and each
pipeline runs in its own child process (so the peak RSS is its own), `--repeats` times; medians are compared:

- ours: `taskprune.integrations.ultralytics.prune(yolo, ratio=R, imgsz=S, round_to=None, progress=False)`
  (magnitude, data-free, every head output protected);
- plain: torch-pruning as its README and YOLOv8 example set it up: `MetaPruner` with
  `GroupMagnitudeImportance(p=2)`, the whole head in `ignored_layers`, `pruning_ratio` bisected (outside the timed
  runs) until its parameter cut is within half a point of ours; then `step()` and one forward (untimed) to check
  the model still runs.

Under load from other processes wall time stretches, so the CPU time (user + sys) is the figure compared, and a
child is stopped after `--cpu-limit` CPU seconds. Where torch-pruning raises, runs past that or leaves a model
that no longer runs, that is recorded instead of
a ratio. Machine load (`uptime`) is written beside the timings.

    python benchmarks/ultralytics_resources.py --imgsz 640

Writes benchmarks/results/ultralytics_resources.json and .md. Needs `pip install taskprune[ultralytics]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from child_runs import CHILD_END, add_plain, ours_row, run_child, table_rows
from harness import RESULTS, machine, print_markdown, uptime, write_results

MODELS = ("yolov8n-seg.yaml", "yolo11n-seg.yaml", "yolo11n-pose.yaml", "yolo11n-obb.yaml", "yolov10n.yaml",
          "yolo12n.yaml")

_CHILD = """
import json, os, resource, sys, time, warnings
resource.setrlimit(resource.RLIMIT_AS, ({cap} << 30, {cap} << 30))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu_limit}, {cpu_limit} + 30))  # CPU seconds: fair under load
import torch
torch.set_num_threads(1)
warnings.simplefilter("ignore")
import torch_pruning as tp, taskprune  # both tools' imports, done before the clock
from taskprune.integrations import ultralytics as tpu
from ultralytics import YOLO
yolo = YOLO({name!r})
net = yolo.model
params = sum(p.numel() for p in net.parameters())
x = torch.zeros(1, 3, {imgsz}, {imgsz})
row = {{}}
start_cpu, start_wall = time.process_time(), time.perf_counter()
try:
    if {tool!r} == "ours":
        result = tpu.prune(yolo, ratio={ratio}, imgsz={imgsz}, round_to=None, progress=False)
        row.update(cpu_s=time.process_time() - start_cpu, wall_s=time.perf_counter() - start_wall)
        row.update(reached=result.report.reached, kept_whole=sum(bool(g.note) for g in result.report.groups),
                   groups=len(result.report.groups))
    else:
        for p in net.parameters():
            p.requires_grad_(True)
        pruner = tp.pruner.MetaPruner(net, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio={tp_ratio}, ignored_layers=[net.model[-1]])
        pruner.step()
        row.update(cpu_s=time.process_time() - start_cpu, wall_s=time.perf_counter() - start_wall)
        row.update(reached=1 - sum(p.numel() for p in net.parameters()) / params)
        try:
            with torch.no_grad():
                net.eval()(x)
        except Exception as error:  # recorded, and the timing kept: the pruning itself finished
            row.update(broken=f"{{type(error).__name__}}: {{error}}".splitlines()[0][:200])
"""  # the outer try ends in child_runs.CHILD_END


def run_pipeline(name: str, tool: str, args: argparse.Namespace, tp_ratio: float = 0.0) -> dict:
    code = _CHILD.format(cap=args.memory_cap_gb, cpu_limit=int(args.cpu_limit), name=name, tool=tool,
                         ratio=args.ratio, imgsz=args.imgsz, tp_ratio=tp_ratio) + CHILD_END
    return run_child(code, args.timeout, {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "YOLO_VERBOSE": "0"},
                     cpu_limit=args.cpu_limit)


def measure(name: str, args: argparse.Namespace) -> dict:
    row = ours_row(name, [run_pipeline(name, "ours", args) for _ in range(args.repeats)])
    if "ours_error" in row:
        return row
    low, high, probe, middle = 0.0, 0.9, {}, 0.0
    for _ in range(args.bisection_steps):  # torch-pruning's channel ratio for the same parameter cut
        middle = (low + high) / 2
        probe = run_pipeline(name, "plain", args, middle)
        if "error" in probe or "broken" in probe or abs(probe["reached"] - row["reached"]) <= 0.005:
            break
        low, high = (middle, high) if probe["reached"] < row["reached"] else (low, middle)
    if "error" in probe or "broken" in probe:
        row["plain_error"] = probe.get("error") or f"its pruned model no longer runs: {probe['broken']}"
        return row
    plain = [probe] + [run_pipeline(name, "plain", args, middle) for _ in range(args.repeats - 1)]
    return add_plain(row, plain, middle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), help="Ultralytics model YAMLs")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--bisection-steps", type=int, default=10)
    parser.add_argument("--cpu-limit", type=float, default=300.0, help="CPU seconds before a child is stopped")
    parser.add_argument("--timeout", type=float, default=3600.0, help="wall seconds before a child is stopped")
    parser.add_argument("--memory-cap-gb", type=int, default=6,
                        help="address-space cap of every child (a MemoryError past it, not the machine's OOM killer)")
    parser.add_argument("--name", default="ultralytics_resources", help="results file stem")
    args = parser.parse_args()
    load_before = uptime()
    rows: list[dict] = []
    for name in args.models:  # the files are rewritten after every model, so a stopped run keeps what it measured
        rows.append(measure(name, args))
        print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith("_runs")}), flush=True)
        result = {"settings": vars(args), "command": "python " + " ".join([Path(sys.argv[0]).as_posix(),
                                                                          *sys.argv[1:]]),
                  "load_before": load_before, "load_after": uptime(), "machine": machine(), "rows": rows}
        write_results(RESULTS, args.name, result, markdown(result))
    print_markdown(markdown(result))


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"`{result['command']}`", "",
             f"`tpu.prune(yolo, ratio={s['ratio']}, imgsz={s['imgsz']}, round_to=None)` against plain torch-pruning "
             "(MetaPruner, GroupMagnitudeImportance, the head ignored, pruning_ratio bisected to the same parameter "
             f"cut) on models built from Ultralytics' YAML; one torch thread, medians of {s['repeats']} run(s), each "
             "in its own process; the prune alone is timed; peak RSS is the child's (model built in both).", "",
             f"Load before: `{result['load_before']}`; after: `{result['load_after']}`.", "",
             "| model | cut ours / plain | CPU s ours / plain | wall s ours / plain | peak RSS MB ours / plain | "
             "ours/plain CPU, RSS |",
             "|---|---|---|---|---|---|"]
    measured = {row["model"] for row in result["rows"]}
    missing = [m for m in s["models"] if m not in measured]
    lines += table_rows(result["rows"], ("cpu_s", "wall_s"), 1, ("cpu_s", "peak_rss_mb"))
    if missing:
        lines += ["", f"Not measured (the run was stopped first): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
