"""Batches from Ultralytics' own dataloader for a dataset YAML, and the driving scenes written as such a dataset.

`write_driving_dataset` turns `taskprune.driving.SyntheticDriving` scenes into Ultralytics' format (images/ and
labels/ per split, a data YAML), so tests, the example and the benchmark need no download: vehicles are boxes (or
polygons, keypoints at their corners, oriented boxes) and the drivable area is a polygon.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .outputs import YoloNet
from .tasks import hyperparameters

__all__ = ["TASKS", "loader", "write_driving_dataset"]

TASKS = ("detect", "segment", "pose", "obb")
_NAMES = {0: "vehicle", 1: "drivable"}
_CORNERS = 4  # pose: a vehicle's keypoints are its box corners, clockwise from top left


def loader(model: YoloNet, data: str | Path, *, imgsz: int = 640, batch: int = 8, split: str = "train",
           augment: bool = True, workers: int = 0, hyp: Any = None) -> Iterable[dict[str, Any]]:
    """Ultralytics' dataloader over one split of a dataset YAML, as its trainer builds it (`augment=True`: the
    training augmentations; False: letterboxed images as the validator sees them).

    Args:
        model: the Ultralytics network (its task and stride choose the dataset kind and padding).
        data: path of the dataset YAML.
        imgsz, batch, split, workers: as Ultralytics names them.
        hyp: the settings from `hyperparameters` (augmentation strengths, mask ratio, ...).
    """
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    hyp = hyperparameters(model, {"imgsz": imgsz, "data": str(data)}) if hyp is None else hyp
    info = check_det_dataset(str(data))
    if split not in info:
        raise ValueError(f"dataset {data} has no split {split!r}; it has: "
                         f"{', '.join(k for k in ('train', 'val', 'test') if info.get(k))}")
    stride = max(int(model.stride.max()), 32)
    dataset = build_yolo_dataset(hyp, info[split], batch, info, mode="train" if augment else "val", stride=stride)
    return build_dataloader(dataset, batch, workers, shuffle=augment, device="cpu")


def write_driving_dataset(root: str | Path, *, task: str = "segment", train: int = 32, val: int = 16,
                          test: int = 0, size: tuple[int, int] = (128, 128), seed: int = 0) -> Path:
    """Write driving scenes as an Ultralytics dataset under `root`; returns the data YAML's path.

    Args:
        task: "detect" (vehicle and drivable-area boxes), "segment" (vehicle rectangles and drivable-area polygons),
            "pose" (vehicles with their four corners as keypoints) or "obb" (vehicles and the drivable area's
            smallest enclosing rectangle as oriented boxes).
        train, val, test: scenes per split (each split its own seed, so no two share a scene); no test split
            when `test` is 0.
        size: (height, width) of the images.
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; available: {', '.join(TASKS)}")
    import cv2

    from ...driving import SyntheticDriving

    root = Path(root)
    splits = [("train", train, seed), ("val", val, seed + 1_000_003), ("test", test, seed + 2_000_003)]
    for split, count, split_seed in splits[:3 if test else 2]:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        scenes = SyntheticDriving(count, size=size, seed=split_seed)
        for index in range(count):
            item = scenes[index]
            image = (item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            cv2.imwrite(str(root / "images" / split / f"{index:05d}.png"), image[:, :, ::-1])
            lines = _labels(task, item["boxes"].numpy(), item["drivable"].numpy().astype(np.uint8), size, cv2)
            (root / "labels" / split / f"{index:05d}.txt").write_text("".join(f"{line}\n" for line in lines))
    names = {0: "vehicle"} if task == "pose" else _NAMES
    lines = [f"path: {root.resolve()}", "train: images/train", "val: images/val"]
    lines += ["test: images/test"] if test else []
    lines += ["names:"]
    lines += [f"  {k}: {v}" for k, v in names.items()]
    if task == "pose":
        lines += [f"kpt_shape: [{_CORNERS}, 3]", "flip_idx: [1, 0, 3, 2]"]
    path = root / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _labels(task: str, boxes: np.ndarray, drivable: np.ndarray, size: tuple[int, int], cv2: Any) -> list[str]:
    height, width = size
    scale = np.array([width, height], dtype=np.float64)
    lines = []
    for _, x1, y1, x2, y2 in boxes:
        corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64) / scale
        centre, extent = corners.mean(0), corners[2] - corners[0]
        if task == "pose":
            points = " ".join(f"{x:.6f} {y:.6f} 2" for x, y in corners)
            lines.append(f"0 {centre[0]:.6f} {centre[1]:.6f} {extent[0]:.6f} {extent[1]:.6f} {points}")
        elif task == "detect":
            lines.append(f"0 {centre[0]:.6f} {centre[1]:.6f} {extent[0]:.6f} {extent[1]:.6f}")
        else:
            lines.append("0 " + _polygon(corners))
    if task == "pose":
        return lines
    contours, _ = cv2.findContours(drivable, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in contours:
        if cv2.contourArea(contour) < 16:  # specks left where vehicles cut the road
            continue
        if task == "obb":
            points = cv2.boxPoints(cv2.minAreaRect(contour)) / scale
            lines.append("1 " + _polygon(np.clip(points, 0, 1)))
        elif task == "detect":
            x, y, w, h = cv2.boundingRect(contour)
            lines.append(f"1 {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}")
        else:
            points = cv2.approxPolyDP(contour, 1.0, True).reshape(-1, 2) / scale
            if len(points) >= 3:
                lines.append("1 " + _polygon(points))
    return lines


def _polygon(points: np.ndarray) -> str:
    return " ".join(f"{x:.6f} {y:.6f}" for x, y in points)
