"""What the recovery fine-tune alone does to the driving teacher: no pruning, the same distilled fine-tune that
`benchmarks/within.py` gives every step (600 steps, mse feature distillation from the teacher itself), at a few
peak learning rates and distillation weights. If the unpruned teacher already drops more than `within.py`'s 1-point
limit, the search stops on the fine-tune's drift rather than on what pruning removed.

    python benchmarks/recovery_drift.py                               # lr 1e-3, 3e-4, 1e-4; alpha 1; seed 1
    python benchmarks/recovery_drift.py --shard 1/2 & python benchmarks/recovery_drift.py --shard 2/2
    python benchmarks/recovery_drift.py --lrs 1e-3 --seeds 0,1 --bn-batches 100    # PreciseBN at the end

Resumable: each finished run is written to benchmarks/results/recovery_drift_runs/ and skipped on a re-run; the
summary (recovery_drift.json and .md) is rebuilt from every run file present.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from driving_setup import HEADS, METRICS, SIZE, TEST_SEED, points
from harness import RESULTS, ROOT, write_json, write_results

import taskprune
from taskprune import driving
from taskprune.distill import auto_layers
from taskprune.train import FinetuneConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lrs", default="1e-3,3e-4,1e-4", help="peak learning rates, comma-separated")
    parser.add_argument("--alphas", default="1", help="distillation weights, comma-separated")
    parser.add_argument("--seeds", default="1", help="fine-tune orders, comma-separated")
    parser.add_argument("--heads", action="store_true",
                        help="distil the task heads' outputs (logits) as well as the trunk's auto layers")
    parser.add_argument("--bn-batches", type=int, default=0,
                        help="re-estimate the BatchNorm statistics on this many batches at the end "
                             "(0: running averages)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--test-images", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shard", default="1/1", help="i/n: run every n-th configuration, starting at the i-th")
    parser.add_argument("--quick", action="store_true", help="8 steps on 32 scenes (runs/recovery_drift_quick)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.train_images, args.test_images, args.out = 8, 32, 32, ROOT / "runs" / "recovery_drift_quick"
    torch.set_num_threads(args.threads)
    index, count = (int(part) for part in args.shard.split("/"))
    configs = [(float(lr), float(alpha), int(seed)) for lr in args.lrs.split(",") for alpha in args.alphas.split(",")
               for seed in args.seeds.split(",")][index - 1::count]
    runs = args.out / "recovery_drift_runs"
    runs.mkdir(parents=True, exist_ok=True)
    suffix = ("_heads" if args.heads else "") + (f"_bn{args.bn_batches}" if args.bn_batches else "")
    todo = [(lr, alpha, seed, runs / f"lr{lr:g}_alpha{alpha:g}_seed{seed}{suffix}.json") for lr, alpha, seed in configs]
    todo = [config for config in todo if not config[3].exists()]
    if todo:  # only then the teacher, the scenes and its own metrics
        run(todo, args)
    records = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    shared = {k: v for k, v in vars(args).items() if k in ("steps", "train_images", "test_images", "batch_size")}
    write_results(args.out, "recovery_drift", {"settings": shared, "runs": records}, markdown(records, args))
    print(markdown(records, args))


def run(todo: list[tuple[float, float, int, Path]], args: argparse.Namespace) -> None:
    """Fine-tune the unpruned teacher once per configuration and write each run's file as it finishes."""
    teacher = driving.pretrained("s")
    tasks = driving.driving_tasks()
    train = driving.SyntheticDriving(args.train_images, size=SIZE, seed=0)
    evaluate = points(args.test_images, TEST_SEED)

    base = evaluate(teacher)
    layers: str | tuple[str, ...] = "auto"
    if args.heads:
        layers = auto_layers(teacher, torch.zeros(1, 3, *SIZE)) + HEADS
    for lr, alpha, seed, path in todo:
        torch.manual_seed(seed)
        start = time.perf_counter()
        student = taskprune.finetune(
            copy.deepcopy(teacher), tasks, train, collate_fn=driving.collate, teacher=teacher,
            distill=taskprune.Distill(layers=layers, alpha=alpha), channel_map={},
            config=FinetuneConfig(epochs=1000, max_steps=args.steps, lr=lr, warmup_steps=args.steps // 10,
                                  batch_size=args.batch_size, seed=seed, bn_batches=args.bn_batches, progress=True,
                                  bn_mode="train", keep_best=False))  # the defaults before issue 25
        metrics = evaluate(student)
        record = {"lr": lr, "alpha": alpha, "seed": seed, "steps": args.steps, "heads": args.heads,
                  "bn_batches": args.bn_batches,
                  "layers": layers, "metrics": metrics,
                  "drop": {m: base[m] - metrics[m] for m in METRICS}, "teacher": base,
                  "minutes": (time.perf_counter() - start) / 60}
        write_json(path, record)


def markdown(records: list[dict], args: argparse.Namespace) -> str:
    lines = ["The unpruned DrivingNet-s teacher at 192x320 given only the recovery fine-tune that `within.py` gives "
             f"every step (mse feature distillation from itself, {args.train_images} synthetic training scenes, "
             f"batch {args.batch_size}, warmup a tenth of the steps, then cosine), evaluated on {args.test_images} "
             "held-out scenes; drop in points against the teacher, positive = worse. `within.py`'s limit is 1.0 "
             "point on every metric.", "",
             "| distilled | BatchNorm statistics | peak lr | alpha | seed | steps | " + " | ".join(METRICS)
             + " | largest drop |",
             "|---|---|---|---|---|---|" + "---|" * (len(METRICS) + 1)]
    for r in sorted(records, key=lambda r: (r.get("heads", False), r.get("bn_batches", 0), -r["lr"], r["alpha"],
                                            r["seed"])):
        drops = [r["drop"][m] for m in METRICS]
        what = "trunk + head outputs" if r.get("heads") else "trunk"
        bn = r.get("bn_batches", 0)
        statistics = f"re-estimated on {bn} batches" if bn else "running averages"
        lines.append(f"| {what} | {statistics} | {r['lr']:g} | {r['alpha']:g} | {r['seed']} | {r['steps']} | "
                     + " | ".join(f"{d:+.2f}" for d in drops) + f" | {max(drops):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
