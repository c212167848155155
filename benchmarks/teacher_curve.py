"""The driving teacher's validation curve (from examples/driving/train_teacher.py --curve) as a table and a plot.

    python benchmarks/teacher_curve.py        # reads and writes benchmarks/results/teacher_s_curve.{json,md,png}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import RESULTS, write_text

METRICS = ("recall", "map50", "drivable_miou", "lane_acc", "lane_iou")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curve", type=Path, default=RESULTS / "teacher_s_curve.json")
    args = parser.parse_args()
    record = json.loads(args.curve.read_text())
    points = ([record["start"]] if record.get("start") else []) + [h for h in record["history"] if "metrics" in h]
    summary = record["summary"]
    lines = [f"DrivingNet-{summary['size']} at {summary['image_size'][0]}x{summary['image_size'][1]}, validation on "
             f"{summary['val_images']} synthetic scenes (seed 10000) never trained on; step 0 is the teacher it "
             f"started from ({summary.get('init')}).", "",
             "| step | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    lines += [f"| {p['step']} | " + " | ".join(f"{100 * p['metrics'][m]:.1f}" for m in METRICS) + " |" for p in points]
    write_text(args.curve.with_suffix(".md"), "\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for metric in METRICS:
        axis.plot([p["step"] for p in points], [100 * p["metrics"][metric] for p in points], marker="o", label=metric)
    axis.set_xlabel("training steps of this run (batch 16)")
    axis.set_ylabel("validation metric (points)")
    axis.set_title("DrivingNet-s teacher: validation during training")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.curve.with_suffix(".png"), dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
