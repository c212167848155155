"""BDD100K in the layout YOLOP uses, letterboxed to one size, with the same items as `SyntheticDriving`.

    root/images/{train,val}/<name>.jpg
    root/det_annotations/{train,val}/<name>.json      frames[0].objects[]: {"category", "box2d": {x1, y1, x2, y2}}
    root/da_seg_annotations/{train,val}/<name>.png    drivable area, nonzero = drivable
    root/ll_seg_annotations/{train,val}/<name>.png    lane lines, nonzero = lane

Cars, buses, trucks and trains become one class 0 ("vehicle"), as in YOLOP; other categories are dropped. Decoding
JPEG and PNG needs Pillow, the optional extra `pip install taskprune[bdd100k]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["BDD100K", "VEHICLE_CATEGORIES", "letterbox_geometry"]

VEHICLE_CATEGORIES = frozenset({"car", "bus", "truck", "train"})
SPLITS = ("train", "val", "test")
_PAD_VALUE = 114 / 255  # YOLO's grey letterbox border


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("BDD100K needs Pillow to decode JPEG and PNG files: "
                          "pip install taskprune[bdd100k]") from error
    return Image


def letterbox_geometry(height: int, width: int, size: tuple[int, int]) -> tuple[float, int, int, int, int]:
    """How an image of (height, width) fits into `size` = (H, W) keeping its aspect ratio, centred.

    Returns:
        (scale, new_height, new_width, pad_top, pad_left): pixel (x, y) maps to (x * scale + pad_left,
        y * scale + pad_top).
    """
    scale = min(size[0] / height, size[1] / width)
    new_h, new_w = round(height * scale), round(width * scale)
    return scale, new_h, new_w, (size[0] - new_h) // 2, (size[1] - new_w) // 2


class BDD100K(Dataset):
    """BDD100K images with vehicle boxes, drivable-area and lane-line masks, letterboxed to `size`.

    Args:
        root: directory holding images/, det_annotations/, da_seg_annotations/ and ll_seg_annotations/.
        split: "train", "val" or "test".
        size: output (height, width); YOLOP uses (384, 640).

    Items: "image" float [3, H, W] in [0, 1] (grey border), "boxes" float [N, 5] (0, x1, y1, x2, y2) in output
    pixels, "drivable" and "lane" long [H, W] in {0, 1} (0 in the border).

    Raises:
        ImportError: Pillow is not installed.
        FileNotFoundError: the split's image folder is missing or empty, or an image lacks one of its three labels
            (the message names the file).
    """

    def __init__(self, root: str | Path, split: str = "val", size: tuple[int, int] = (384, 640)) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown BDD100K split {split!r}; available: {', '.join(SPLITS)}")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (height, width) of positive ints, got {size!r}")
        self._image_module = _pillow()
        self.root, self.split, self.size = Path(root), split, (int(size[0]), int(size[1]))
        image_dir = self.root / "images" / split
        if not image_dir.is_dir():
            raise FileNotFoundError(f"BDD100K image folder not found: {image_dir}")
        self.images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not self.images:
            raise FileNotFoundError(f"no .jpg or .png images in {image_dir}")
        # Checked here, once, so a missing label fails at construction and not deep inside a loader worker.
        for image in self.images:
            for path in self._label_paths(image):
                if not path.is_file():
                    raise FileNotFoundError(f"BDD100K label file missing for {image.name}: {path}")

    def _label_paths(self, image: Path) -> tuple[Path, Path, Path]:
        return (self.root / "det_annotations" / self.split / f"{image.stem}.json",
                self.root / "da_seg_annotations" / self.split / f"{image.stem}.png",
                self.root / "ll_seg_annotations" / self.split / f"{image.stem}.png")

    def __len__(self) -> int:
        return len(self.images)

    def _read(self, path: Path, mode: str) -> np.ndarray:
        try:
            with self._image_module.open(path) as image:
                return np.asarray(image.convert(mode))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot decode {path}: {error}") from error

    def _read_boxes(self, path: Path) -> np.ndarray:
        try:
            objects = json.loads(path.read_text())["frames"][0]["objects"]
            boxes = [(0.0, o["box2d"]["x1"], o["box2d"]["y1"], o["box2d"]["x2"], o["box2d"]["y2"])
                     for o in objects if o.get("category") in VEHICLE_CATEGORIES and "box2d" in o]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise ValueError(f"cannot read detection labels from {path}: {error!r}") from error
        return np.array(boxes, np.float32).reshape(-1, 5)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image_path = self.images[index]
        det_path, drivable_path, lane_path = self._label_paths(image_path)
        image = torch.from_numpy(self._read(image_path, "RGB").copy()).permute(2, 0, 1).float() / 255
        drivable = torch.from_numpy(self._read(drivable_path, "L") > 0)
        lane = torch.from_numpy(self._read(lane_path, "L") > 0)
        height, width = image.shape[1:]
        for name, mask in (("drivable", drivable), ("lane", lane)):
            if tuple(mask.shape) != (height, width):
                raise ValueError(f"{name} mask {tuple(mask.shape)} does not match image {(height, width)} for "
                                 f"{image_path.name}")
        scale, new_h, new_w, top, left = letterbox_geometry(height, width, self.size)
        boxes = self._read_boxes(det_path)
        boxes[:, 1:] *= scale
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] + left, left, left + new_w)
        boxes[:, [2, 4]] = np.clip(boxes[:, [2, 4]] + top, top, top + new_h)
        boxes = boxes[(boxes[:, 3] > boxes[:, 1]) & (boxes[:, 4] > boxes[:, 2])]
        return {
            "image": _place(F.interpolate(image[None], (new_h, new_w), mode="bilinear", antialias=True,
                                          align_corners=False)[0], self.size, top, left, _PAD_VALUE),
            "boxes": torch.from_numpy(boxes),
            "drivable": _place(_resize_mask(drivable, new_h, new_w), self.size, top, left, 0).long(),
            "lane": _place(_resize_mask(lane, new_h, new_w), self.size, top, left, 0).long(),
        }


def _resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(mask[None, None].float(), (height, width), mode="nearest")[0, 0]


def _place(tensor: torch.Tensor, size: tuple[int, int], top: int, left: int, fill: float) -> torch.Tensor:
    """Put `tensor` ([C, h, w] or [h, w]) at (top, left) in a canvas of `size` filled with `fill`."""
    canvas = torch.full((*tensor.shape[:-2], *size), fill, dtype=tensor.dtype)
    canvas[..., top:top + tensor.shape[-2], left:left + tensor.shape[-1]] = tensor
    return canvas
