"""The three driving tasks as a `taskprune.Tasks`, and the loader that batches driving datasets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..tasks import Tasks
from .losses import detection_loss, drivable_loss, lane_loss

__all__ = ["driving_tasks", "loader", "collate"]


def driving_tasks(weights: Mapping[str, float] | None = None) -> Tasks:
    """Tasks "det", "drivable" and "lane" of `DrivingNet`, with their losses and the batch's "image" as input.

    Args:
        weights: optional loss weight per task name (default 1.0 each).

    Example:
        >>> tasks = driving_tasks()
        >>> tasks.names
        ('det', 'drivable', 'lane')
    """
    return Tasks(
        outputs={"det": _det_output, "drivable": _drivable_output, "lane": _lane_output},
        losses={"det": detection_loss, "drivable": drivable_loss, "lane": lane_loss},
        inputs=_image,
        weights=dict(weights or {}),
    )


# Named functions rather than lambdas so that a Tasks can be pickled into DataLoader workers or torchrun ranks.
def _det_output(output: Any) -> Any:
    return output.det


def _drivable_output(output: Any) -> Any:
    return output.drivable


def _lane_output(output: Any) -> Any:
    return output.lane


def _image(batch: Any) -> Any:
    return batch["image"]


def collate(items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack images and masks; concatenate boxes into [M, 6] with the item's index in the batch first.

    Raises:
        ValueError: when items differ in image size (use one `size` for the dataset).
    """
    shapes = {tuple(item["image"].shape) for item in items}
    if len(shapes) != 1:
        raise ValueError(f"cannot batch images of different shapes {sorted(shapes)}; give the dataset one size")
    boxes = [torch.cat((torch.full((len(item["boxes"]), 1), float(i)), item["boxes"].float()), dim=1)
             for i, item in enumerate(items)]
    return {
        "image": torch.stack([item["image"] for item in items]),
        "boxes": torch.cat(boxes) if boxes else torch.zeros(0, 6),
        "drivable": torch.stack([item["drivable"] for item in items]),
        "lane": torch.stack([item["lane"] for item in items]),
    }


def loader(data: Dataset, batch_size: int = 16, shuffle: bool = False, num_workers: int = 0, seed: int = 0,
           drop_last: bool = False) -> DataLoader:
    """A DataLoader over a driving dataset that batches its variable-length boxes (see `collate`).

    Args:
        data: `SyntheticDriving`, `BDD100K` or any dataset of the same item dicts.
        batch_size: items per batch.
        shuffle: reshuffle every epoch, in an order fixed by `seed`.
        num_workers: loader worker processes (0 renders in the main process).
        seed: seed of the shuffling order.
        drop_last: drop a final incomplete batch.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, collate_fn=collate,
                      generator=generator, drop_last=drop_last, persistent_workers=num_workers > 0)
