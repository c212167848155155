"""Published pretrained driving networks on real BDD100K frames: prune, score, recover, and measure agreement.

Each network (../shared/real) is pruned at a share of its parameters or of its measured latency with each
criterion, and with torch-pruning's Taylor pruning as its README advises for accuracy (global, isomorphic, a
0.8 per-layer cap, bisected to the same parameter count; see tp_baseline.SETUPS). Channels are scored and the
student recovered on random crops (with flips) of four frames, with the dense network's masks as labels; the
recovery is `taskprune.finetune` with its defaults, judged (`val_data=`) on a fifth frame and its mirror image
(`--judge frames`; the grid committed before 2026-12-06 18:00 judged on crops of it, which misjudge). Agreement
(IoU of the foreground with the dense network's masks, per output) is reported on the two held-back frames only,
before and after recovery. Every cell is one JSON file in benchmarks/results/real_weights_runs/, skipped when
done with the same settings; `real_weights_report.py` writes the tables and the picture.

    OMP_NUM_THREADS=1 python benchmarks/real_weights.py
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, claim, done, machine, write_json  # noqa: E402
from real_nets import (  # noqa: E402
    NETWORKS,
    TASK_NAMES,
    agreement,
    available,
    crops,
    frames,
    judging,
    load_network,
    masks,
    real_tasks,
    split,
)

import taskprune  # noqa: E402
from taskprune.budget.plan import UnreachableBudget  # noqa: E402

CRITERIA = ("magnitude", "taylor", "task_taylor", "conflict_taylor")
TP_SETUP = "tp_global_iso"  # what its README advises for accuracy: isomorphic global ranking, a per-layer cap
TARGETS = ("params:0.3", "params:0.5", "latency:0.7", "latency:0.5")  # latency: the share of the time kept
RUNS = RESULTS / "real_weights_runs"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--methods", default=",".join((*CRITERIA, "torch_pruning")))
    parser.add_argument("--steps", type=int, default=100, help="recovery steps (0: no recovery)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop", default="128x256", help="training crop, height x width (multiples of 32)")
    parser.add_argument("--score-batches", type=int, default=4)
    parser.add_argument("--judge", default="frames", choices=("frames", "crops"),
                        help="what judges the recovery: the fifth frame and its mirror, or crops of it")
    parser.add_argument("--picture", default="twinlitenetplus_nano", help="network whose masks are kept for the PNG")
    parser.add_argument("--memory-cap-gb", type=int, default=None,
                        help="address-space cap of this process: a cell that exceeds it is recorded as failed (torch-"
                             "pruning's graph build grew past 7.5 GB on twinlitenet_se) instead of swapping")
    return parser.parse_args(argv)


class Bench:
    """One network, its frames, dense masks and the data splits."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name, self.args = name, args
        self.model = load_network(name)
        self.images = frames(NETWORKS[name].size)
        self.dense = masks(self.model, self.images)
        crop = tuple(int(v) for v in args.crop.split("x"))
        part = split(self.images, self.dense)
        self.train = crops(*part["train"], max(args.steps, args.score_batches), args.batch_size, crop, seed=0)
        self.val = judging(*part["val"], args.judge, args.batch_size, crop)
        self.test_images, self.test_masks = part["test"]
        self.example = self.images[:1].clone()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.tasks = real_tasks()

    def prune(self, target: str, ratio: float, method: str) -> tuple[torch.nn.Module, dict]:
        if method == "torch_pruning":
            from tp_baseline import SETUPS, prune_like_torch_pruning

            model, _ = prune_like_torch_pruning(self.model, self.example, self.tasks,
                                                self.train[:self.args.score_batches], (1 - ratio) * self.params,
                                                iterations=10, setup=SETUPS[TP_SETUP])
            return model, {"setup": TP_SETUP}
        options = {"tasks": self.tasks, "data": self.train, "num_batches": self.args.score_batches}
        result = taskprune.prune(self.model, self.example, ratio=ratio, target=target, importance=method,
                                 progress=False, **(options if method != "magnitude" else {}))
        return result.model, {"reached": result.report.reached, "macs_after": result.report.macs_after,
                              "macs_before": result.report.macs_before}


def cell(bench: Bench, target: str, share: float, method: str, picture: bool) -> dict:
    ratio = share if target == "params" else 1 - share
    start = time.process_time()
    try:
        model, extra = bench.prune(target, ratio, method)
    except Exception as error:  # a refusal or torch-pruning's own failure is a result (no model); ours is raised
        why = (f"refused: {str(error)[:200]}" if isinstance(error, UnreachableBudget)
               else torch_pruning_failure(error, method, bench.args.memory_cap_gb))
        if why is None:
            raise
        return {"network": bench.name, "target": target, "share": share, "ratio": ratio, "method": method,
                "failed": f"{why} after {time.process_time() - start:.0f} CPU s",
                "prune_cpu_seconds": time.process_time() - start, "pruned": None}
    prune_seconds = time.process_time() - start
    params = sum(p.numel() for p in model.parameters())
    record = {"network": bench.name, "target": target, "share": share, "ratio": ratio, "method": method,
              "params": params, "params_reduction": 1 - params / bench.params, **extra,
              "prune_cpu_seconds": prune_seconds,
              "pruned": agreement(model, bench.test_images, bench.test_masks)}
    shown = {"pruned": masks(model, bench.test_images[:1])}
    if bench.args.steps:
        start = time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            taskprune.finetune(model, bench.tasks, bench.train[:bench.args.steps], epochs=1, val_data=bench.val,
                               progress=False)
        record["recovered"] = agreement(model, bench.test_images, bench.test_masks)
        record["recovery_warning"] = next((str(w.message) for w in caught if w.category is RuntimeWarning), None)
        record["recovery_cpu_seconds"] = time.process_time() - start
        shown["recovered"] = masks(model, bench.test_images[:1])
    if picture:
        np.savez_compressed(RUNS / f"{stem(bench.name, target, share, method)}_masks.npz",
                            **{f"{k}_{t}": v[t][0].numpy().astype(bool) for k, v in shown.items() for t in TASK_NAMES})
    return record


def torch_pruning_failure(error: Exception, method: str, cap: int | None) -> str | None:
    """Why a cell has no model when that is a finding, not our bug: the process outgrew --memory-cap-gb, or
    torch-pruning raised from inside its own code (its 1.6.1 defects); None for anything else."""
    if cap and (isinstance(error, MemoryError) or isinstance(error, RuntimeError) and "allocate" in str(error)):
        return f"{type(error).__name__} under a {cap} GB address-space cap"
    frames = traceback.extract_tb(error.__traceback__)
    if method == "torch_pruning" and frames and f"{os.sep}torch_pruning{os.sep}" in frames[-1].filename:
        inside = frames[-1].filename.rsplit(f"{os.sep}torch_pruning{os.sep}", 1)[1]
        return f"{type(error).__name__} inside torch_pruning/{inside}: {str(error)[:120]}"
    return None


def stem(network: str, target: str, share: float, method: str) -> str:
    return f"{network}_{target}{share:g}_{method}"


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if not available():
        raise SystemExit("../shared/real is missing: the pretrained networks and frames live there")
    torch.set_num_threads(1)
    if args.memory_cap_gb:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory_cap_gb << 30, args.memory_cap_gb << 30))
    settings = {k: v for k, v in vars(args).items()
                if k not in ("networks", "targets", "methods", "picture", "memory_cap_gb")}
    for name in args.networks.split(","):
        bench = None
        for target, share in (t.split(":") for t in args.targets.split(",")):
            for method in args.methods.split(","):
                if method == "torch_pruning" and target != "params":
                    continue  # torch-pruning has no latency target
                path = RUNS / f"{stem(name, target, float(share), method)}.json"
                if done(path, settings) or not claim(path.with_suffix(".claim")):
                    continue
                bench = bench or Bench(name, args)
                if name == args.picture:
                    np.savez_compressed(RUNS / f"{name}_dense_masks.npz", image=bench.test_images[0].numpy(),
                                        **{f"dense_{t}": bench.test_masks[t][0].numpy().astype(bool)
                                           for t in TASK_NAMES})
                record = cell(bench, target, float(share), method, picture=name == args.picture)
                write_json(path, {"settings": settings, "machine": machine(), "record": record})
                path.with_suffix(".claim").unlink(missing_ok=True)
                print(f"{path.stem}: {record.get('failed') or record['pruned']} -> {record.get('recovered')}",
                      flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
