"""BDD100K reader on a small tree of files written here: letterbox of image, boxes and masks, and clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

Image = pytest.importorskip("PIL.Image")

from taskprune.driving import BDD100K  # noqa: E402
from taskprune.driving.bdd100k import letterbox_geometry  # noqa: E402


def _write_sample(root: Path, name: str, split: str = "val") -> None:
    for folder in ("images", "det_annotations", "da_seg_annotations", "ll_seg_annotations"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    # A 144x256 frame (16:9 like BDD100K's 720x1280), red on the left half so the letterbox is visible.
    pixels = np.zeros((144, 256, 3), np.uint8)
    pixels[:, :128, 0] = 255
    Image.fromarray(pixels).save(root / "images" / split / f"{name}.png")
    objects = [
        {"category": "car", "box2d": {"x1": 20, "y1": 40, "x2": 100, "y2": 120}},
        {"category": "truck", "box2d": {"x1": 200, "y1": 0, "x2": 300, "y2": 50}},  # runs off the right edge
        {"category": "person", "box2d": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}},
        {"category": "area/drivable", "poly2d": [[0, 0]]},
    ]
    (root / "det_annotations" / split / f"{name}.json").write_text(json.dumps({"frames": [{"objects": objects}]}))
    drivable = np.zeros((144, 256), np.uint8)
    drivable[100:, :] = 255
    lane = np.zeros((144, 256), np.uint8)
    lane[:, 64:66] = 255
    Image.fromarray(drivable).save(root / "da_seg_annotations" / split / f"{name}.png")
    Image.fromarray(lane).save(root / "ll_seg_annotations" / split / f"{name}.png")


def test_letterbox_geometry():
    assert letterbox_geometry(720, 1280, (384, 640)) == (0.5, 360, 640, 12, 0)
    assert letterbox_geometry(144, 256, (96, 128)) == (0.5, 72, 128, 12, 0)


def test_item_letterboxed_with_boxes_and_masks(tmp_path):
    _write_sample(tmp_path, "a")
    data = BDD100K(tmp_path, split="val", size=(96, 128))
    assert len(data) == 1
    item = data[0]
    assert item["image"].shape == (3, 96, 128)
    # Scale 0.5, 12 rows of grey padding on top and bottom.
    assert torch.allclose(item["image"][:, :12], torch.full((3, 12, 128), 114 / 255))
    assert item["image"][0, 50, 10] > 0.99 and item["image"][0, 50, 120] < 0.01
    # car and truck kept (person and the area dropped); the truck is clipped to the image.
    expected = torch.tensor([[0.0, 10, 32, 50, 72], [0.0, 100, 12, 128, 37]])
    assert torch.allclose(item["boxes"], expected)
    assert item["drivable"].dtype == torch.long
    assert item["drivable"][:12].sum() == 0 and item["drivable"][-12:].sum() == 0  # padding is not drivable
    assert item["drivable"][12 + 50:84].all() and not item["drivable"][12:12 + 50].any()
    assert set(torch.nonzero(item["lane"].any(0)).flatten().tolist()) == {32}


def test_missing_label_names_the_file(tmp_path):
    _write_sample(tmp_path, "a")
    (tmp_path / "ll_seg_annotations" / "val" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"ll_seg_annotations.*a\.png"):
        BDD100K(tmp_path, split="val", size=(96, 128))


def test_missing_split_and_unknown_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="images"):
        BDD100K(tmp_path, split="train")
    with pytest.raises(ValueError, match="available: train, val, test"):
        BDD100K(tmp_path, split="valid")


def test_corrupt_files_name_the_file(tmp_path):
    _write_sample(tmp_path, "a")
    _write_sample(tmp_path, "b")
    (tmp_path / "images" / "val" / "a.png").write_bytes(b"not a png")
    (tmp_path / "det_annotations" / "val" / "b.json").write_text("{broken")
    data = BDD100K(tmp_path, split="val", size=(96, 128))
    with pytest.raises(ValueError, match=r"a\.png"):
        data[0]
    with pytest.raises(ValueError, match=r"b\.json"):
        data[1]


def test_without_pillow_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"taskprune\[bdd100k\]"):
        BDD100K(tmp_path)
