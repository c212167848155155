"""The main demo: prune the reference driving network for its three tasks, check it, keep it.

    python examples/quickstart.py                # about a minute on a 2-core CPU
    python examples/quickstart.py --ratio 0.4 --importance task_taylor

Uses the committed synthetic-scene teacher when it is there (benchmarks/checkpoints/driving_s_teacher.pt),
otherwise a randomly initialised network (the pruning works the same; the metrics then mean little).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import taskprune
from taskprune import driving

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratio", type=float, default=0.33, help="fraction of parameters to remove")
    parser.add_argument("--importance", default="conflict_taylor", choices=taskprune.list_criteria())
    parser.add_argument("--size", default="s", choices=["n", "s", "m"])
    parser.add_argument("--batches", type=int, default=8, help="batches of gradients to score with")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "quickstart")
    args = parser.parse_args()
    torch.manual_seed(0)

    model = driving.DrivingNet(size=args.size)
    checkpoint = ROOT / "benchmarks" / "checkpoints" / f"driving_{args.size}_teacher.pt"
    if checkpoint.exists():
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
        print(f"teacher: {checkpoint.relative_to(ROOT)}")
    else:
        print("teacher: none found, using a random initialisation")
    model.eval()

    size = (192, 320)
    train = driving.loader(driving.SyntheticDriving(8 * args.batches, size=size, seed=0), batch_size=8)
    val = driving.loader(driving.SyntheticDriving(64, size=size, seed=10_000), batch_size=8)
    example = torch.zeros(1, 3, *size)

    result = taskprune.prune(model, example, ratio=args.ratio, importance=args.importance,
                             tasks=driving.driving_tasks(), data=train, num_batches=args.batches)
    print(result.report)

    before, after = driving.evaluate(model, val), driving.evaluate(result.model, val)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="synthetic validation, before any fine-tuning")
    for column in ("metric", "dense", "pruned"):
        table.add_column(column)
    for key in before:
        table.add_row(key, f"{before[key]:.3f}", f"{after[key]:.3f}")
    Console().print(table)

    args.out.mkdir(parents=True, exist_ok=True)
    taskprune.save(result, args.out / "pruned.pt")
    (args.out / "report.json").write_text(result.report.to_json())
    (args.out / "report.md").write_text(result.report.to_markdown())
    print(f"saved {args.out / 'pruned.pt'} and the report (JSON, markdown) beside it")


if __name__ == "__main__":
    main()
