"""Ultralytics YOLO end to end: prune, recover with Ultralytics' own trainer, validate, export.

With no arguments it needs nothing from the network: it writes generated driving scenes as an Ultralytics dataset,
trains YOLO11n-seg (built from Ultralytics' YAML) on them for a few epochs, then:

1. prunes 30% of the parameters, task-aware (the parts of Ultralytics' loss are the tasks), and 30% of the measured
   latency (`target="latency"`);
2. recovers each with Ultralytics' trainer, the pruned network kept, distilling from the dense model;
3. validates every model with Ultralytics' metrics (box and mask mAP) and measures its latency against the dense one;
4. saves the pruned model as an ordinary Ultralytics checkpoint, reloads it with `YOLO(path)` and exports ONNX.

    python examples/ultralytics_yolo.py                                 # generated scenes, about 15 min on 1 core
    python examples/ultralytics_yolo.py --model yolo11n-seg.pt --data my.yaml --imgsz 640 --epochs 0

`--epochs 0` skips training the dense model (a trained checkpoint given as --model). Needs
`pip install taskprune[ultralytics]` (docs/ultralytics.md says how to install torch and torchvision first).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # read when ultralytics is imported: no online checks or downloads
os.environ.setdefault("YOLO_AUTOINSTALL", "0")


def metrics_row(yolo, data: str, imgsz: int, project: Path, name: str) -> dict[str, float]:
    metrics = yolo.val(data=data, imgsz=imgsz, batch=16, workers=0, plots=False, project=str(project), name=name,
                       exist_ok=True, verbose=False)
    row = {"box mAP50": metrics.box.map50, "box mAP50-95": metrics.box.map}
    if hasattr(metrics, "seg"):
        row.update({"mask mAP50": metrics.seg.map50, "mask mAP50-95": metrics.seg.map})
    return {k: float(v) for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolo11n-seg.yaml", help="an Ultralytics YAML or checkpoint")
    parser.add_argument("--data", default=None, help="a dataset YAML (default: generated driving scenes)")
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20, help="training of the dense model (0: use --model)")
    parser.add_argument("--recover-epochs", type=int, default=5)
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--out", type=Path, default=Path("runs/ultralytics_example"))
    parser.add_argument("--quick", action="store_true", help="a run of a few iterations at 64 px (what CI runs)")
    args = parser.parse_args()
    scenes = 128
    if args.quick:
        args.imgsz, args.epochs, args.recover_epochs, scenes = 64, 1, 1, 8

    from rich.console import Console
    from rich.table import Table
    from ultralytics import YOLO

    from taskprune.integrations import ultralytics as tpu

    tpu.offline_fonts()  # Ultralytics' dataset check would download its label font otherwise
    out = args.out.resolve()
    data = args.data or str(tpu.write_driving_dataset(out / "scenes", task="segment", train=scenes, val=scenes // 4,
                                                      size=(args.imgsz, args.imgsz)))
    train = dict(imgsz=args.imgsz, batch=16, workers=0, plots=False, project=str(out), exist_ok=True, verbose=False)
    dense = YOLO(args.model)
    if args.epochs:
        dense.train(data=data, epochs=args.epochs, name="dense", **train)
    rows = {"dense": metrics_row(dense, data, args.imgsz, out, "val_dense") | {"params": _params(dense),
                                                                                "latency": 1.0}}
    for label, target in (("params", "params"), ("latency", "latency")):
        pruned = tpu.prune(dense, ratio=args.ratio, imgsz=args.imgsz, data=data, importance="task_taylor",
                           target=target, batch=16, num_batches=8)
        print(pruned.report)
        tpu.train(pruned.yolo, data=data, epochs=args.recover_epochs, name=f"recovered_{label}", teacher=dense,
                  channel_map=pruned.channel_map, **train)
        rows[f"-{args.ratio:.0%} {label}, recovered"] = metrics_row(pruned.yolo, data, args.imgsz, out,
                                                                    f"val_{label}") | {
            "params": _params(pruned.yolo), "latency": tpu.latency_ratio(dense, pruned.yolo, imgsz=args.imgsz)}
        path = out / f"pruned_{label}.pt"
        pruned.yolo.save(path)  # an ordinary Ultralytics checkpoint holding the pruned network
        reloaded = YOLO(str(path))
        if _params(reloaded) != _params(pruned.yolo):
            raise RuntimeError(f"{path} did not reload the pruned network")
        print("ONNX:", reloaded.export(format="onnx", imgsz=args.imgsz))

    table = Table(title=f"{args.model} on {data}")
    columns = list(rows["dense"])
    for column in ["model", *columns]:
        table.add_column(column)
    for name, row in rows.items():
        table.add_row(name, *(f"{row[c]:,}" if c == "params" else f"{row[c]:.3f}" for c in columns))
    Console().print(table)


def _params(yolo) -> int:
    return sum(p.numel() for p in yolo.model.parameters())


if __name__ == "__main__":
    main()
