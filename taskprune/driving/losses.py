"""Losses of the driving tasks, each `loss(task_output, batch) -> scalar tensor` as `taskprune.Tasks` expects.

A batch is what `taskprune.driving.loader` yields: "image" [B, 3, H, W], "boxes" [M, 6] as (image index in the
batch, class, x1, y1, x2, y2) in pixels, "drivable" and "lane" long [B, H, W].

Detection follows YOLOv5 (which YOLOP uses): a ground-truth box is assigned to every anchor whose shape is within
a factor 4 of it, in its centre cell and the two nearest neighbouring cells; positives regress their box with CIoU;
objectness is BCE against the CIoU of the prediction (0 for negatives), balanced across scales; classes use BCE
when there are several.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .model import ANCHORS, STRIDES

__all__ = ["detection_loss", "segmentation_loss", "drivable_loss", "lane_loss", "bbox_ciou"]

_ANCHOR_RATIO = 4.0
_LEVEL_BALANCE = (4.0, 1.0, 0.4)  # small-object scale weighs more, as in YOLOv5


def bbox_ciou(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU (Zheng et al. 2020) of matching (cx, cy, w, h) boxes [N, 4]: IoU minus centre and aspect terms."""
    p1, p2 = pred[:, :2] - pred[:, 2:] / 2, pred[:, :2] + pred[:, 2:] / 2
    t1, t2 = target[:, :2] - target[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2
    inter = (torch.min(p2, t2) - torch.max(p1, t1)).clamp(min=0).prod(dim=1)
    union = pred[:, 2:].prod(dim=1) + target[:, 2:].prod(dim=1) - inter + eps
    iou = inter / union
    enclosing = torch.max(p2, t2) - torch.min(p1, t1)
    diagonal = (enclosing ** 2).sum(dim=1) + eps
    centre_distance = ((pred[:, :2] - target[:, :2]) ** 2).sum(dim=1)
    aspect = (4 / math.pi ** 2) * (torch.atan(target[:, 2] / (target[:, 3] + eps))
                                   - torch.atan(pred[:, 2] / (pred[:, 3] + eps))) ** 2
    with torch.no_grad():
        alpha = aspect / (aspect - iou + 1 + eps)
    return iou - centre_distance / diagonal - alpha * aspect


def _batch_boxes(batch: Any) -> torch.Tensor:
    if not isinstance(batch, dict) or "boxes" not in batch:
        raise TypeError("the detection loss needs a batch dict with 'boxes' [M, 6] (image index, class, x1, y1, x2, "
                        "y2); build batches with taskprune.driving.loader")
    boxes = batch["boxes"]
    if boxes.dim() != 2 or boxes.shape[1] != 6:
        raise ValueError(f"batch['boxes'] must be [M, 6] (image index, class, x1, y1, x2, y2), got "
                         f"{tuple(boxes.shape)}")
    return boxes


def _assign(boxes: torch.Tensor, anchors: torch.Tensor, stride: int, height: int, width: int
            ) -> tuple[torch.Tensor, ...]:
    """Positives of one scale: (image, anchor, row, col) indices and target (cx, cy, w, h) in cell units, class."""
    centre = (boxes[:, 2:4] + boxes[:, 4:6]) / 2 / stride
    size = (boxes[:, 4:6] - boxes[:, 2:4]) / stride
    anchor_cells = anchors / stride
    ratio = size[None] / anchor_cells[:, None]  # [A, M, 2]
    match = torch.max(ratio, 1 / ratio.clamp(min=1e-9)).amax(dim=2) < _ANCHOR_RATIO
    anchor_idx, box_idx = match.nonzero(as_tuple=True)
    xy = centre[box_idx]
    frac = xy % 1
    # The centre cell plus the horizontally and vertically nearest neighbours, YOLOv5's 3-cell assignment.
    offsets = [torch.zeros_like(xy)]
    masks = [torch.ones(len(xy), dtype=torch.bool, device=xy.device)]
    for axis in (0, 1):
        for sign, near in ((-1.0, frac[:, axis] < 0.5), (1.0, frac[:, axis] >= 0.5)):
            shift = torch.zeros_like(xy)
            shift[:, axis] = sign
            offsets.append(shift)
            masks.append(near & (xy[:, axis] + sign >= 0) & (xy[:, axis] + sign < (width, height)[axis]))
    cells, keep_box, keep_anchor = [], [], []
    for shift, mask in zip(offsets, masks, strict=True):
        cells.append((xy[mask] + shift[mask]).floor())
        keep_box.append(box_idx[mask])
        keep_anchor.append(anchor_idx[mask])
    cell = torch.cat(cells).long()
    col, row = cell[:, 0].clamp(0, width - 1), cell[:, 1].clamp(0, height - 1)
    box_idx, anchor_idx = torch.cat(keep_box), torch.cat(keep_anchor)
    target = torch.cat((centre[box_idx] - torch.stack((col, row), 1), size[box_idx]), dim=1)
    return boxes[box_idx, 0].long(), anchor_idx, row, col, target, boxes[box_idx, 1].long()


def detection_loss(det: tuple[torch.Tensor, ...], batch: Any, box_gain: float = 0.05, obj_gain: float = 1.0,
                   cls_gain: float = 0.5, scale: float = 10.0) -> torch.Tensor:
    """YOLOv5 detection loss of DrivingNet's raw `det` maps against `batch["boxes"]`.

    Args:
        det: the three raw maps [B, A*(5+nc), H/s, W/s] for strides 8, 16, 32.
        batch: a batch dict with "boxes" [M, 6] (image index, class, x1, y1, x2, y2 in pixels).
        box_gain, obj_gain, cls_gain: YOLOv5's weights of the three terms.
        scale: overall factor that brings the sum to the size of the segmentation losses.

    Returns:
        Scalar loss: scale * (box_gain * (1 - CIoU) + obj_gain * objectness BCE + cls_gain * class BCE).
    """
    boxes = _batch_boxes(batch).to(det[0].device, det[0].dtype)
    anchors_all = torch.tensor(ANCHORS, dtype=det[0].dtype, device=det[0].device)
    num_anchors = anchors_all.shape[1]
    box_loss = obj_loss = cls_loss = det[0].new_zeros(())
    for level, (raw, stride) in enumerate(zip(det, STRIDES, strict=True)):
        batch_size, channels, height, width = raw.shape
        num_classes = channels // num_anchors - 5
        pred = raw.view(batch_size, num_anchors, 5 + num_classes, height, width).permute(0, 1, 3, 4, 2)
        target_obj = torch.zeros(pred.shape[:4], dtype=pred.dtype, device=pred.device)
        image, anchor, row, col, target, cls = _assign(boxes, anchors_all[level], stride, height, width)
        if len(image):
            chosen = pred[image, anchor, row, col]
            xy = chosen[:, :2].sigmoid() * 2 - 0.5
            wh = (chosen[:, 2:4].sigmoid() * 2) ** 2 * anchors_all[level][anchor] / stride
            ciou = bbox_ciou(torch.cat((xy, wh), 1), target)
            box_loss = box_loss + (1 - ciou).mean()
            target_obj[image, anchor, row, col] = ciou.detach().clamp(min=0).to(pred.dtype)
            if num_classes > 1:
                onehot = F.one_hot(cls, num_classes).to(pred.dtype)
                cls_loss = cls_loss + F.binary_cross_entropy_with_logits(chosen[:, 5:], onehot)
        obj_loss = obj_loss + _LEVEL_BALANCE[level] * F.binary_cross_entropy_with_logits(pred[..., 4], target_obj)
    return scale * (box_gain * box_loss + obj_gain * obj_loss + cls_gain * cls_loss)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 0.0) -> torch.Tensor:
    """Cross-entropy of [B, 2, H, W] logits against a long [B, H, W] mask, plus `dice_weight` x soft Dice of class 1.

    Dice counters the imbalance of thin structures (lane pixels are a few percent of the image).
    """
    if logits.dim() != 4 or logits.shape[1] != 2:
        raise ValueError(f"segmentation logits must be [B, 2, H, W], got {tuple(logits.shape)}")
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"segmentation target must be [B, H, W] = {(logits.shape[0], *logits.shape[2:])}, got "
                         f"{tuple(target.shape)}")
    target = target.long()
    loss = F.cross_entropy(logits, target)
    if dice_weight:
        prob = logits.softmax(dim=1)[:, 1]
        positive = (target == 1).to(prob.dtype)
        dice = 1 - (2 * (prob * positive).sum() + 1) / (prob.sum() + positive.sum() + 1)
        loss = loss + dice_weight * dice
    return loss


def drivable_loss(logits: torch.Tensor, batch: Any) -> torch.Tensor:
    """Drivable-area loss: cross-entropy against `batch["drivable"]`."""
    return segmentation_loss(logits, batch["drivable"].to(logits.device))


def lane_loss(logits: torch.Tensor, batch: Any) -> torch.Tensor:
    """Lane-line loss: cross-entropy plus Dice against `batch["lane"]`."""
    return segmentation_loss(logits, batch["lane"].to(logits.device), dice_weight=1.0)
