"""A YOLO trained briefly from scratch on generated driving scenes, pruned three ways, each recovered with
Ultralytics' own trainer on the same budget; box and mask mAP on held-out test scenes.

1. Scenes: `write_driving_dataset` (vehicles as rectangles, the drivable area as polygons): train, val (Ultralytics
   keeps its best checkpoint by val fitness) and test (only reported) from separate seeds.
2. Dense: `YOLO(--model).train(...)` from scratch for `--dense-epochs`.
3. Pruned by `--ratio` of the parameters, each arm from the same dense checkpoint:
   - taskprune, task-aware: `tpu.prune(importance="conflict_taylor")`, the tasks being the parts of Ultralytics'
     loss on `--num-batches` batches of its training dataloader;
   - taskprune, data-free: `tpu.prune()` (magnitude);
   - torch-pruning as its README and YOLOv8 example advise: `MetaPruner` with `GroupMagnitudeImportance`, the
     whole head in `ignored_layers`, `pruning_ratio` (a fraction of channels) bisected until the parameter cut is
     within half a point of `--ratio`; run in a child process with `--tp-timeout`, and recorded as failed when it
     raises, runs past it, or leaves a model that no longer runs;
   - with `--distill`: the task-aware arm recovered with taskprune's feature distillation from the dense model.
4. Recovery: `tpu.train` (Ultralytics' trainer for the task, the pruned network kept) for `--recover-epochs`, the same
   settings for every arm. Every model is validated on the test split with Ultralytics' metrics, and its latency
   measured against the dense one at `--latency-imgsz` (interleaved rounds, one thread).

Every stage writes its result under `--workdir` and is skipped when rerun, so an interrupted run resumes.

    python benchmarks/ultralytics_yolo.py --model yolo11n-seg.yaml --name yolo11n_seg

Writes benchmarks/results/ultralytics_<name>.json and .md. Needs `pip install taskprune[ultralytics]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")  # nothing is downloaded: models from YAML, scenes generated
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

# after the environment above
from harness import RESULTS, ROOT, machine, uptime, write_json, write_results  # noqa: E402

_TP_CHILD = """
import json, sys, time, torch
torch.set_num_threads(1)
import torch_pruning as tp
from ultralytics import YOLO
dense, out, ratio, imgsz = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
x = torch.zeros(1, 3, imgsz, imgsz)
def pruned(channel_ratio):
    yolo = YOLO(dense)
    net = yolo.model.float()
    for p in net.parameters():
        p.requires_grad_(True)
    before = sum(p.numel() for p in net.parameters())
    pruner = tp.pruner.MetaPruner(net, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=channel_ratio, ignored_layers=[net.model[-1]])
    pruner.step()
    net.eval()(x)  # the pruned model must still run
    return yolo, 1 - sum(p.numel() for p in net.parameters()) / before
start, low, high = time.perf_counter(), 0.0, 0.9
for _ in range(12):
    middle = (low + high) / 2
    yolo, cut = pruned(middle)
    if abs(cut - ratio) <= 0.005:
        break
    low, high = (middle, high) if cut < ratio else (low, middle)
yolo.save(out)
print(json.dumps({"channel_ratio": middle, "reached": cut, "seconds_with_bisection": time.perf_counter() - start}))
"""


def stage(path: Path, run):
    """`run()`'s JSON result, cached at `path`: a rerun resumes after the last finished stage."""
    if path.exists():
        return json.loads(path.read_text())
    started = time.perf_counter()
    result = run()
    result["stage_seconds"] = time.perf_counter() - started
    result["load_after"] = uptime()
    write_json(path, result)
    return result


def settings(args: argparse.Namespace, work: Path, name: str) -> dict:
    """Ultralytics' arguments shared by every training and validation."""
    return dict(imgsz=args.imgsz, batch=args.batch, workers=0, device="cpu", plots=False, seed=args.seed,
                deterministic=True, project=str(work), name=name, exist_ok=True, verbose=False)


def evaluate(yolo, data: Path, args: argparse.Namespace, work: Path, name: str) -> dict:
    keep = {k: v for k, v in settings(args, work, f"val_{name}").items() if k not in ("seed", "deterministic")}
    metrics = yolo.val(data=str(data), split="test", **keep)
    row = {"box_map50": metrics.box.map50, "box_map50_95": metrics.box.map}
    if hasattr(metrics, "seg"):
        row.update(mask_map50=metrics.seg.map50, mask_map50_95=metrics.seg.map)
    row = {k: float(v) for k, v in row.items()}
    row["params"] = sum(p.numel() for p in yolo.model.parameters())
    return row


def prune_arm(arm: str, dense: Path, data: Path, args: argparse.Namespace, work: Path) -> dict:
    """Prune the dense checkpoint one way; the pruned YOLO is saved as work/<arm>_pruned.pt."""
    from ultralytics import YOLO

    from taskprune.integrations import ultralytics as tpu

    out = work / f"{arm}_pruned.pt"
    if arm == "torch_pruning":
        code = [sys.executable, "-c", _TP_CHILD, str(dense), str(out), str(args.ratio), str(args.imgsz)]
        try:
            done = subprocess.run(code, capture_output=True, text=True, timeout=args.tp_timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"still running after {args.tp_timeout:.0f} s (stopped)"}
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return {"error": f"exit {done.returncode}: {tail}"[:300]}
        return json.loads(lines[-1])
    importance = "conflict_taylor" if arm.startswith("taskprune_task_aware") else "magnitude"
    started = time.perf_counter()
    result = tpu.prune(YOLO(str(dense)), ratio=args.ratio, imgsz=args.imgsz, data=data, importance=importance,
                       batch=args.batch, num_batches=args.num_batches, progress=False)
    seconds = time.perf_counter() - started
    result.yolo.save(str(out))
    (work / f"{arm}_channel_map.json").write_text(json.dumps(result.channel_map))
    return {"reached": result.report.reached, "prune_seconds": seconds, "round_to": result.report.round_to,
            "timings": result.report.timings}


def recover_arm(arm: str, dense: Path, data: Path, args: argparse.Namespace, work: Path) -> dict:
    from ultralytics import YOLO

    from taskprune.integrations import ultralytics as tpu

    pruned_path = work / f"{arm.removesuffix('_distill')}_pruned.pt"
    pruned = YOLO(str(pruned_path))
    row = {"after_prune": evaluate(pruned, data, args, work, f"{arm}_pruned")}
    extra = {}
    if arm.endswith("_distill"):
        channel_map = json.loads((work / f"{arm.removesuffix('_distill')}_channel_map.json").read_text())
        extra = {"teacher": YOLO(str(dense)), "channel_map": channel_map}
    tpu.train(pruned, data=str(data), epochs=args.recover_epochs, **settings(args, work, f"{arm}_recovered"),
              **extra)
    row["recovered"] = evaluate(pruned, data, args, work, f"{arm}_recovered")
    row["latency_ratio"] = tpu.latency_ratio(YOLO(str(dense)), pruned, imgsz=args.latency_imgsz)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolo11n-seg.yaml", help="an Ultralytics model YAML")
    parser.add_argument("--name", default="yolo11n_seg", help="results file stem: ultralytics_<name>")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--train", type=int, default=192, help="training scenes")
    parser.add_argument("--val", type=int, default=48, help="validation scenes (best checkpoint)")
    parser.add_argument("--test", type=int, default=96, help="test scenes (reported)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dense-epochs", type=int, default=30)
    parser.add_argument("--recover-epochs", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--num-batches", type=int, default=8, help="scoring batches of the task-aware arm")
    parser.add_argument("--tp-timeout", type=float, default=900.0, help="seconds for torch-pruning's prune")
    parser.add_argument("--latency-imgsz", type=int, default=640)
    parser.add_argument("--distill", action="store_true", help="add the task-aware arm recovered with distillation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="default: runs/ultralytics_<name>")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from ultralytics import YOLO
    from ultralytics import __version__ as ultralytics_version

    from taskprune.integrations import ultralytics as tpu

    work = (args.workdir or ROOT / "runs" / f"ultralytics_{args.name}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    load_before = uptime()
    data = work / "scenes" / "data.yaml"
    if not data.exists():
        tpu.write_driving_dataset(work / "scenes", task="segment" if "seg" in args.model else "detect",
                                  train=args.train, val=args.val, test=args.test, size=(args.imgsz, args.imgsz),
                                  seed=args.seed)
    dense = work / "dense" / "weights" / "best.pt"

    def train_dense() -> dict:
        YOLO(args.model).train(data=str(data), epochs=args.dense_epochs, **settings(args, work, "dense"))
        return evaluate(YOLO(str(dense)), data, args, work, "dense")

    rows = {"dense": stage(work / "dense.json", train_dense)}
    arms = ["taskprune_task_aware", "taskprune_magnitude", "torch_pruning"]
    for arm in arms:
        pruned = stage(work / f"{arm}_prune.json", lambda arm=arm: prune_arm(arm, dense, data, args, work))
        rows[arm] = {"prune": pruned}
        if "error" not in pruned:
            rows[arm].update(stage(work / f"{arm}_recover.json",
                                   lambda arm=arm: recover_arm(arm, dense, data, args, work)))
    if args.distill:
        arm = "taskprune_task_aware_distill"
        rows[arm] = {"prune": rows["taskprune_task_aware"]["prune"]}
        rows[arm].update(stage(work / f"{arm}_recover.json", lambda: recover_arm(arm, dense, data, args, work)))
    result = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "ultralytics": ultralytics_version, "torch": torch.__version__, "load_before": load_before,
              "load_after": uptime(), "machine": machine(), "rows": rows}
    write_results(RESULTS, f"ultralytics_{args.name}", result, markdown(result))
    from rich.console import Console
    from rich.markdown import Markdown

    Console(width=160).print(Markdown(markdown(result)))


def markdown(result: dict) -> str:
    s, rows = result["settings"], result["rows"]
    dense = rows["dense"]
    lines = [f"`{result['command']}`", "",
             f"{s['model']} trained from scratch for {s['dense_epochs']} epochs on {s['train']} generated driving "
             f"scenes at {s['imgsz']} px, pruned by {s['ratio']:.0%} of its parameters, each arm recovered with "
             f"Ultralytics' trainer for {s['recover_epochs']} epochs (same settings); mAP on {s['test']} held-out "
             f"test scenes (Ultralytics {result['ultralytics']}, torch {result['torch']}, one thread). Latency: "
             f"pruned / dense at {s['latency_imgsz']} px.", "",
             f"Load before: `{result['load_before']}`; after: `{result['load_after']}`.", "",
             "| model | params | cut | box mAP50 pruned -> recovered | mask mAP50 pruned -> recovered | "
             "box / mask mAP50-95 recovered | latency | prune s |", "|---|---|---|---|---|---|---|---|",
             f"| dense | {dense['params']:,} | - | {dense['box_map50']:.3f} | {dense.get('mask_map50', 0):.3f} | "
             f"{dense['box_map50_95']:.3f} / {dense.get('mask_map50_95', 0):.3f} | 1.00 | - |"]
    for arm, row in rows.items():
        if arm == "dense":
            continue
        prune = row["prune"]
        if "error" in prune:
            lines.append(f"| {arm} | - | - | failed: {prune['error']} | | | | |")
            continue
        a, r = row["after_prune"], row["recovered"]
        seconds = prune.get("prune_seconds", prune.get("seconds_with_bisection", 0.0))
        lines.append(f"| {arm} | {r['params']:,} | {prune['reached']:.3f} | {a['box_map50']:.3f} -> "
                     f"{r['box_map50']:.3f} | {a.get('mask_map50', 0):.3f} -> {r.get('mask_map50', 0):.3f} | "
                     f"{r['box_map50_95']:.3f} / {r.get('mask_map50_95', 0):.3f} | {row['latency_ratio']:.2f} | "
                     f"{seconds:.1f} |")
    lines += ["", "torch-pruning's prune time includes its bisection of `pruning_ratio` (one MetaPruner per trial)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
