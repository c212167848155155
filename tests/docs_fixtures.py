"""Tiny stand-ins for the names doc examples use without defining them (`model`, `tasks`, `train_loader`).

Every page's python blocks run in one namespace that starts as `namespace(workdir)`. A page that defines a
name itself (most do) shadows the stand-in. The stand-ins are small on purpose: a three-task driving model of
70k parameters on 64x64 images, four batches of two, losses that are cheap but real (the targets come from the
model itself, as in `examples/custom_model.py`), so that a page's examples run in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import taskprune
from taskprune.testing import TinyDrivingNet, get_test_model


def det_loss(det: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Stand-in detection loss: smooth L1 against the batch's detection targets."""
    return F.smooth_l1_loss(det, batch["det"])


def seg_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Stand-in segmentation loss: cross-entropy against the batch's mask."""
    return F.cross_entropy(logits, batch["mask"])


def batches(model: torch.nn.Module, count: int, seed: int, size: int = 64) -> list[dict[str, torch.Tensor]]:
    """`count` batches of two random images, labelled by `model`: {"image", "det", "mask"}."""
    generator = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(count):
        images = torch.randn(2, 3, size, size, generator=generator)
        with torch.no_grad():
            out = model(images)
        data.append({"image": images, "det": out.det + 0.1 * torch.randn(out.det.shape, generator=generator),
                     "mask": out.drivable.argmax(1)})
    return data


def write_bdd100k(root: Path, names: tuple[str, ...] = ("a", "b"), split: str = "val") -> Path:
    """A two-image tree in YOLOP's BDD100K layout (needs Pillow), for the examples that read one."""
    import numpy as np
    from PIL import Image

    for folder in ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.full((144, 256, 3), 90, np.uint8)).save(root / "images" / split / f"{name}.jpg")
        objects = [{"category": "car", "box2d": {"x1": 20, "y1": 60, "x2": 90, "y2": 110}}]
        labels = json.dumps({"frames": [{"objects": objects}]})
        (root / "det_annotations" / split / f"{name}.json").write_text(labels)
        drivable = np.zeros((144, 256), np.uint8)
        drivable[100:] = 255
        lane = np.zeros((144, 256), np.uint8)
        lane[:, 120:123] = 255
        Image.fromarray(drivable).save(root / "da_seg_annotations" / split / f"{name}.png")
        Image.fromarray(lane).save(root / "ll_seg_annotations" / split / f"{name}.png")
    return root


def namespace(workdir: Path) -> dict[str, Any]:
    """The names a page may use without defining them, fresh for every page."""
    torch.manual_seed(0)
    model, example_inputs = get_test_model("tiny_driving")()
    train_loader = batches(model, 4, seed=1)
    tasks = taskprune.Tasks(
        outputs={"det": lambda out: out.det, "drivable": lambda out: out.drivable,
                 "lane": lambda out: out.lane},
        losses={"det": det_loss, "drivable": seg_loss, "lane": seg_loss},
        inputs=lambda batch: batch["image"],
    )
    names: dict[str, Any] = {
        "model": model,                      # a TinyDrivingNet in eval mode: output .det, .drivable, .lane
        "example_inputs": example_inputs,    # [1, 3, 64, 64]
        "MyNet": TinyDrivingNet,             # the model's class: MyNet() is a fresh, unpruned instance
        "fresh_model": TinyDrivingNet(),
        "tasks": tasks,
        "det_loss": det_loss,
        "seg_loss": seg_loss,
        "train_loader": train_loader,        # a list of batches {"image", "det", "mask"}
        "val_loader": batches(model, 2, seed=2),
        "images": train_loader[0]["image"],  # one batch of model inputs
    }
    try:
        names["root"] = write_bdd100k(workdir / "bdd100k")  # a BDD100K tree in YOLOP's layout
    except ImportError:  # no Pillow: the pages that read BDD100K fail and say so
        pass
    return names
