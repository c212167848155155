"""Train a DrivingNet teacher on synthetic driving scenes on the CPU and save its state_dict.

    python examples/driving/train_teacher.py --size s --image-size 192 320 --train-images 8000 --epochs 3 \
        --time-limit 22 --eval-every 3

Writes runs/driving_<size>/driving_<size>.pt (a plain state_dict: torch.load(path, weights_only=True); copy it to
taskprune/driving/weights/ to ship it as `driving.pretrained(size)`)
and prints the validation metrics; a resumable checkpoint goes to runs/driving_<size>/last.pt.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from taskprune.driving import DrivingNet, SyntheticDriving, evaluate, loader
from taskprune.driving.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="s", choices=("n", "s", "m"))
    parser.add_argument("--image-size", type=int, nargs=2, default=(192, 320), metavar=("H", "W"))
    parser.add_argument("--train-images", type=int, default=6000)
    parser.add_argument("--val-images", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 because on a shared 2-core machine OpenMP threads spin-wait for "
                             "each other")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="wall-time budget in minutes; the schedule anneals by then and training stops")
    parser.add_argument("--workers", type=int, default=1, help="loader processes rendering scenes")
    parser.add_argument("--eval-every", type=int, default=1, help="evaluate every this many epochs")
    parser.add_argument("--out", type=Path, default=None, help="default runs/driving_<size>/driving_<size>.pt")
    parser.add_argument("--run-dir", type=Path, default=None, help="default runs/driving_<size>")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this state_dict (continue training an earlier teacher) instead of scratch")
    parser.add_argument("--curve", type=Path, default=None,
                        help="also write the summary and validation curve here (JSON), e.g. benchmarks/results/...")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    size = tuple(args.image_size)
    out = args.out or Path(f"runs/driving_{args.size}/driving_{args.size}.pt")
    run_dir = args.run_dir or Path(f"runs/driving_{args.size}")
    # Train and validation scenes come from different dataset seeds, so no validation scene is seen in training.
    train_data = SyntheticDriving(args.train_images, size=size, seed=args.seed + 1)
    val_data = SyntheticDriving(args.val_images, size=size, seed=10_000 + args.seed)
    model = DrivingNet(size=args.size)
    start = None
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, weights_only=True))
        # where the curve starts: the earlier teacher on the same validation scenes
        start = {"step": 0, "metrics": {k: round(v, 4) for k, v in evaluate(
            model.eval(), loader(val_data, batch_size=args.batch_size)).items()}}
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         eval_every=args.eval_every, time_limit_minutes=args.time_limit,
                         num_workers=args.workers)
    started = time.perf_counter()
    history = train(model, train_data, val_data, config, checkpoint=run_dir / "last.pt",
                    progress=not args.no_progress)
    minutes = (time.perf_counter() - started) / 60

    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    metrics = history[-1].get("metrics") or evaluate(model, loader(val_data, batch_size=args.batch_size))
    summary = {"size": args.size, "image_size": list(size), "train_images": args.train_images,
               "epochs_run": history[-1]["epoch"], "steps": history[-1]["step"], "val_images": args.val_images,
               "train_minutes_this_run": round(minutes, 1), "train_seconds_total": history[-1]["seconds"],
               "threads": args.threads, "workers": args.workers, "metrics": metrics, "checkpoint": str(out),
               "init": None if args.init is None else str(args.init), "lr": args.lr, "seed": args.seed}
    record = json.dumps({"summary": summary, "start": start, "history": history}, indent=2)
    (run_dir / "summary.json").write_text(record)
    if args.curve is not None:
        args.curve.parent.mkdir(parents=True, exist_ok=True)
        args.curve.write_text(record)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
