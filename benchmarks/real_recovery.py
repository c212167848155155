"""Does the default recovery hurt a pretrained network? `finetune`'s defaults against its earlier ones.

A published network (../shared/real) is pruned 30% by magnitude, then fine-tuned for `--steps` steps on batches of
random crops (with flips) of four real frames, the dense network's masks as labels: once with the defaults, judged
on crops of a fifth frame (`val_data=`), once with the settings `finetune` had before issue 25 (AdamW lr 1e-3,
BatchNorm in train mode, the last state kept). Agreement (IoU of the foreground with the dense masks, per output)
on the two held-back frames. Writes benchmarks/results/real_recovery.json and .md.

    OMP_NUM_THREADS=1 python benchmarks/real_recovery.py
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, machine, write_results  # noqa: E402
from real_nets import (  # noqa: E402
    NETWORKS,
    agreement,
    crops,
    frames,
    judging,
    load_network,
    masks,
    real_tasks,
    split,
)

import taskprune  # noqa: E402

OLD = {"lr": 1e-3, "bn_mode": "train", "keep_best": False}  # finetune's defaults before issue 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="twinlitenet_attn")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--crop", default="128x256")
    parser.add_argument("--judge", default="frames", choices=("frames", "crops"),
                        help="val_data: the whole fifth frame and its mirror image, or crops of it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    crop = tuple(int(v) for v in args.crop.split("x"))
    rows = []
    for name in args.networks.split(","):
        model = load_network(name)
        images = frames(NETWORKS[name].size)
        dense = masks(model, images)
        part = split(images, dense)
        train = crops(*part["train"], args.steps, 4, crop, seed=0)
        val = judging(*part["val"], args.judge, 4, crop)
        pruned = taskprune.prune(model, images[:1], ratio=0.3, progress=False).model
        row = {"network": name, "pruned": agreement(pruned, *part["test"])}
        for label, options in (("defaults", {"val_data": val}), ("before_issue_25", OLD)):
            student, start = copy.deepcopy(pruned), time.process_time()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                taskprune.finetune(student, real_tasks(), train, epochs=1, progress=False, **options)
            row[label] = agreement(student, *part["test"])
            row[f"{label}_warning"] = next((str(w.message) for w in caught if w.category is RuntimeWarning), None)
            row[f"{label}_cpu_seconds"] = time.process_time() - start
            print(name, label, row[label], flush=True)
        rows.append(row)
    command = (f"OMP_NUM_THREADS=1 python benchmarks/real_recovery.py --networks {args.networks} --steps {args.steps} "
               f"--crop {args.crop} --judge {args.judge}")
    stem = "real_recovery" if args.judge == "frames" else "real_recovery_judge-crops"
    lines = ["# The default recovery on a pretrained network", "",
             f"30% magnitude prune, {args.steps} steps of batches of 4 crops ({args.crop}, with flips) of four real "
             "frames, dense masks as labels; agreement (IoU %, drivable / lane) on two held-back frames.", "",
             f"Command: `{command}`; load {machine()['load']:.1f} on 2 cores, one thread.", "",
             f"| network | pruned | defaults (judged on {args.judge} of a fifth frame) | "
             "before issue 25 (lr 1e-3, BatchNorm "
             "training, last state) |", "|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k]['drivable']:.1f} / {r[k]['lane']:.1f}" for k in ("pruned", "defaults", "before_issue_25")]
        lines.append(f"| {r['network']} | " + " | ".join(cells) + " |")
    record = {"settings": vars(args), "command": command, "machine": machine(), "rows": rows}
    write_results(RESULTS, stem, record, "\n".join(lines) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
