"""Driving metrics as YOLOP reports them, and the multi-task summary Delta_m.

- Detection: Recall and mAP50. Predictions are matched to ground truth greedily in score order at IoU >= 0.5 (each
  ground-truth box matched once); AP is the area under the precision envelope over all recall points (all-point
  interpolation, VOC 2010+), averaged over the classes present in the ground truth.
- Drivable area: mIoU over its two classes (background, drivable), from one confusion matrix over the whole set.
- Lane lines: pixel accuracy of the lane class (its recall, TP / (TP + FN), as YOLOP's code computes it) and IoU of
  the lane class.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .nms import box_iou

__all__ = ["evaluate", "DetectionMatcher", "SegmentationCounter", "average_precision", "decoded_batches",
           "match_detections", "delta_m"]


def match_detections(pred: torch.Tensor, truth: torch.Tensor, iou_threshold: float = 0.5) -> np.ndarray:
    """True-positive flag of each prediction of one image.

    Args:
        pred: [N, 6] (x1, y1, x2, y2, score, class).
        truth: [M, 5] (class, x1, y1, x2, y2).
        iou_threshold: a match needs IoU >= this and the same class.

    Returns:
        bool [N], in the order of `pred`: True where the prediction takes an unmatched ground-truth box.
    """
    tp = np.zeros(len(pred), bool)
    if len(pred) == 0 or len(truth) == 0:
        return tp
    iou = box_iou(pred[:, :4].double(), truth[:, 1:].double()).numpy()
    iou[pred[:, 5].numpy()[:, None] != truth[:, 0].numpy()[None, :]] = 0
    taken = np.zeros(len(truth), bool)
    for i in np.argsort(-pred[:, 4].numpy(), kind="stable"):
        candidates = np.where(~taken & (iou[i] >= iou_threshold))[0]
        if len(candidates):
            best = candidates[np.argmax(iou[i, candidates])]
            taken[best] = tp[i] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_truth: int) -> float:
    """All-point interpolated AP: sum over recall steps of the step times the best precision at or beyond it.

    Args:
        scores: [N] prediction scores.
        tp: bool [N], whether each prediction is a true positive.
        num_truth: ground-truth boxes of the class; AP is 0 when predictions exist but none, nan if both absent.
    """
    if num_truth == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(tp[order])
    recall = hits / num_truth
    precision = hits / np.arange(1, len(order) + 1)
    recall = np.concatenate(([0.0], recall))
    envelope = np.maximum.accumulate(np.concatenate((precision, [0.0]))[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * envelope[:-1]))


@dataclass
class DetectionMatcher:
    """Accumulates matched detections over images; `result()` gives recall and mAP50.

    Args:
        iou_threshold: IoU for a true positive (0.5 for mAP50).
        recall_threshold: score above which a detection counts for Recall.
    """

    iou_threshold: float = 0.5
    recall_threshold: float = 0.1
    _scores: list[np.ndarray] = field(default_factory=list)
    _tp: list[np.ndarray] = field(default_factory=list)
    _classes: list[np.ndarray] = field(default_factory=list)
    _truth_classes: list[np.ndarray] = field(default_factory=list)

    def update(self, preds: Sequence[torch.Tensor], truths: Sequence[torch.Tensor]) -> None:
        """Add a batch: per image, predictions [N, 6] and ground truth [M, 5] (class, x1, y1, x2, y2)."""
        if len(preds) != len(truths):
            raise ValueError(f"got {len(preds)} prediction sets for {len(truths)} images")
        for pred, truth in zip(preds, truths, strict=True):
            pred, truth = pred.detach().cpu().float(), truth.detach().cpu().float()
            self.add_matched(pred[:, 4].numpy(), match_detections(pred, truth, self.iou_threshold),
                             pred[:, 5].numpy().astype(np.int64), truth[:, 0].numpy().astype(np.int64))

    def add_matched(self, scores: np.ndarray, tp: np.ndarray, classes: np.ndarray, truth_classes: np.ndarray) -> None:
        """Add one image already matched: its predictions' scores, true-positive flags and classes, and its
        ground-truth classes."""
        self._scores.append(scores)
        self._tp.append(tp)
        self._classes.append(classes)
        self._truth_classes.append(truth_classes)

    def result(self) -> dict[str, float]:
        """{"recall", "map50"} in [0, 1]: means over the classes present in the ground truth (0 if none)."""
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0)
        tp = np.concatenate(self._tp) if self._tp else np.zeros(0, bool)
        classes = np.concatenate(self._classes) if self._classes else np.zeros(0, np.int64)
        truth = np.concatenate(self._truth_classes) if self._truth_classes else np.zeros(0, np.int64)
        aps, recalls = [], []
        for cls in np.unique(truth):
            mine, count = classes == cls, int((truth == cls).sum())
            aps.append(average_precision(scores[mine], tp[mine], count))
            recalls.append(float((tp[mine] & (scores[mine] >= self.recall_threshold)).sum()) / count)
        return {"recall": float(np.mean(recalls)) if recalls else 0.0, "map50": float(np.mean(aps)) if aps else 0.0}


@dataclass
class SegmentationCounter:
    """Binary confusion counts over a whole dataset for one mask task."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add [B, 2, H, W] logits (argmax decides) against a [B, H, W] mask in {0, 1}."""
        pred = logits.argmax(dim=1).bool()
        truth = target.to(pred.device).bool()
        self.tp += int((pred & truth).sum())
        self.fp += int((pred & ~truth).sum())
        self.fn += int((~pred & truth).sum())
        self.tn += int((~pred & ~truth).sum())

    def iou(self) -> float:
        """IoU of the positive class (0 when it is absent from both prediction and truth)."""
        union = self.tp + self.fp + self.fn
        return self.tp / union if union else 0.0

    def background_iou(self) -> float:
        union = self.tn + self.fp + self.fn
        return self.tn / union if union else 0.0

    def miou(self) -> float:
        """Mean IoU over background and positive class."""
        return (self.iou() + self.background_iou()) / 2

    def recall(self) -> float:
        """Positive-class pixel recall: YOLOP's "lane accuracy"."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


def delta_m(metrics: Mapping[str, float], base: Mapping[str, float],
            lower_is_better: Iterable[str] = ()) -> float:
    """Multi-task performance change against a base model (Maninis et al. 2019), positive is better.

    Delta_m = (1/T) sum_i (-1)^{l_i} (M_i - M_base,i) / M_base,i over the T metrics of `base`, where l_i = 1 for
    metrics in `lower_is_better`. A pruned student that keeps every metric of its teacher scores 0; one that loses
    10% of every metric scores -0.1.

    Args:
        metrics: the model's metrics, e.g. `evaluate(student, val)`.
        base: the reference's metrics, e.g. `evaluate(teacher, val)`; every key must be in `metrics`.
        lower_is_better: names of metrics where lower is better (errors, losses).

    Raises:
        ValueError: when a base metric is missing from `metrics` or is zero.
    """
    lower = set(lower_is_better)
    changes = []
    for name, reference in base.items():
        if name not in metrics:
            raise ValueError(f"metric {name!r} of the base is missing from metrics (has: {', '.join(metrics)})")
        if reference == 0:
            raise ValueError(f"base metric {name!r} is 0; a relative change is undefined")
        sign = -1.0 if name in lower else 1.0
        changes.append(sign * (metrics[name] - reference) / reference)
    if not changes:
        raise ValueError("base has no metrics")
    return float(np.mean(changes))


@torch.no_grad()
def evaluate(model: nn.Module, data: Iterable[Mapping[str, torch.Tensor]], conf_threshold: float = 0.001,
             iou_threshold: float = 0.6, recall_threshold: float = 0.1,
             device: torch.device | str | None = None) -> dict[str, float]:
    """YOLOP's metrics of a DrivingNet (or a pruned copy) over batches from `taskprune.driving.loader`.

    Args:
        model: a DrivingNet or pruned DrivingNet; put in eval mode for the call and restored afterwards.
        data: batches with "image", "boxes" [M, 6], "drivable", "lane".
        conf_threshold: score threshold before NMS (low, so the precision-recall curve is complete).
        iou_threshold: NMS IoU threshold.
        recall_threshold: score from which a detection counts towards Recall.
        device: where to run; defaults to the model's device.

    Returns:
        {"recall", "map50", "drivable_miou", "lane_acc", "lane_iou"}, each in [0, 1].
    """
    if not hasattr(model, "decode"):
        raise TypeError(f"evaluate needs a DrivingNet-like model with .decode(output), got {type(model).__name__}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    detections = DetectionMatcher(recall_threshold=recall_threshold)
    drivable, lane = SegmentationCounter(), SegmentationCounter()
    try:
        for batch, output, preds in decoded_batches(model, data, conf_threshold, iou_threshold, device):
            boxes = batch["boxes"]
            truths = [boxes[boxes[:, 0] == i, 1:] for i in range(len(batch["image"]))]
            detections.update(preds, truths)
            drivable.update(output.drivable, batch["drivable"])
            lane.update(output.lane, batch["lane"])
    finally:
        model.train(was_training)
    return {**detections.result(), "drivable_miou": drivable.miou(), "lane_acc": lane.recall(),
            "lane_iou": lane.iou()}


def decoded_batches(model: nn.Module, data: Iterable[Mapping[str, torch.Tensor]], conf_threshold: float,
                    iou_threshold: float, device: torch.device,
                    ) -> Iterator[tuple[Mapping[str, torch.Tensor], Any, list[torch.Tensor]]]:
    """Each batch of `data` with the output of a DrivingNet-like `model` on its images (moved to `device`) and
    the detections `model.decode` makes of that output; the caller sets the model's mode."""
    for batch in data:
        output = model(batch["image"].to(device))
        yield batch, output, cast(Any, model).decode(output, conf_threshold=conf_threshold, iou_threshold=iou_threshold)
