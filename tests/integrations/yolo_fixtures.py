"""What the Ultralytics tests share: the models of the goal, their image size, building and training settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

IMGSZ = 64
# Every model of the goal, with the dataset kind its head needs.
MODELS = {"yolov8n-seg.yaml": "segment", "yolo11n-seg.yaml": "segment", "yolo11n-pose.yaml": "pose",
          "yolo11n-obb.yaml": "obb", "yolov10n.yaml": "detect", "yolo12n.yaml": "detect"}

def build(name: str, data: Path) -> Any:
    """YOLO(name) built by Ultralytics from its YAML, for the classes (and keypoints) of the dataset `data`."""
    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset

    yolo = YOLO(name)
    info = check_det_dataset(str(data))
    extra = {"data_kpt_shape": tuple(info["kpt_shape"])} if "kpt_shape" in info else {}
    net = type(yolo.model)(yolo.model.yaml, nc=info["nc"], verbose=False, **extra)
    net.task = yolo.model.task  # what YOLO(path) reads back to choose its predictor
    yolo.model = net
    return yolo


def train_settings(tmp_path: Path, name: str = "run", **overrides: Any) -> dict[str, Any]:
    """Ultralytics arguments for a few iterations at IMGSZ on the CPU, with nothing plotted or downloaded."""
    return {"imgsz": IMGSZ, "batch": 4, "epochs": 1, "workers": 0, "device": "cpu", "plots": False, "amp": False,
            "project": str(tmp_path), "name": name, "exist_ok": True, "verbose": False, "val": True, **overrides}
