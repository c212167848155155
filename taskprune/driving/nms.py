"""Box utilities in plain torch: pairwise IoU and greedy non-maximum suppression (no torchvision)."""

from __future__ import annotations

import torch

__all__ = ["box_iou", "nms", "batched_nms"]


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of two sets of (x1, y1, x2, y2) boxes.

    Args:
        boxes1: [N, 4] boxes.
        boxes2: [M, 4] boxes.

    Returns:
        [N, M] IoU; 0 where a box has no area.
    """
    area1 = (boxes1[:, 2] - boxes1[:, 0]).clamp(min=0) * (boxes1[:, 3] - boxes1[:, 1]).clamp(min=0)
    area2 = (boxes2[:, 2] - boxes2[:, 0]).clamp(min=0) * (boxes2[:, 3] - boxes2[:, 1]).clamp(min=0)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: keep the best box, drop every box overlapping it by more than `iou_threshold`, repeat.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2).
        scores: [N] scores.
        iou_threshold: boxes with IoU strictly above this with a kept, better-scored box are removed.

    Returns:
        Indices of the kept boxes (long), in decreasing score order; ties keep the lower index first.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    removed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    # One pass in score order; each kept box suppresses its overlaps in a single vectorised step.
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each class only: boxes of different classes never suppress each other."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # Shifting each class by more than the largest coordinate separates the classes without a loop.
    offsets = classes.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + offsets, scores, iou_threshold)
