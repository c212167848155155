"""Sampling noise of the driving metrics: per-scene records, so a set of scenes can be resampled.

`evaluate` gives one number per metric for a set of scenes; another set of the same size gives another number.
`evaluate_scenes` keeps what every scene contributed (its detections and its confusion counts), so that
`SceneRecords.interval` can bootstrap the metrics over scenes: the 95% interval says how far a metric moves between
scene sets of this size, which is the noise any difference measured on the set has to beat.

Example:
    >>> records = driving.evaluate_scenes(teacher, driving.loader(driving.SyntheticDriving(500, seed=30_000)))
    >>> records.metrics()["lane_iou"], records.interval(resamples=1000)["lane_iou"]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .metrics import DetectionMatcher, SegmentationCounter, decoded_batches, match_detections

__all__ = ["SceneRecords", "evaluate_scenes"]

_COUNTS = ("tp", "fp", "fn", "tn")


@dataclass(frozen=True)
class SceneRecords:
    """What every scene of a set contributed to the driving metrics.

    Attributes:
        detections: per scene, (scores [N], true-positive flags [N], classes [N], ground-truth classes [M]).
        drivable, lane: per scene, confusion counts (tp, fp, fn, tn) of the mask task, int64 [S, 4].
        recall_threshold: the score from which a detection counts towards Recall.
    """

    detections: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]
    drivable: np.ndarray
    lane: np.ndarray
    recall_threshold: float = 0.1

    def __len__(self) -> int:
        return len(self.detections)

    def metrics(self, scenes: np.ndarray | None = None) -> dict[str, float]:
        """The metrics of `evaluate` over the given scene indices (repeats allowed; default: every scene once)."""
        index = np.arange(len(self)) if scenes is None else np.asarray(scenes)
        matcher = DetectionMatcher(recall_threshold=self.recall_threshold)
        for i in index:
            matcher.add_matched(*self.detections[i])
        drivable = SegmentationCounter(*(int(v) for v in self.drivable[index].sum(axis=0)))
        lane = SegmentationCounter(*(int(v) for v in self.lane[index].sum(axis=0)))
        return {**matcher.result(), "drivable_miou": drivable.miou(), "lane_acc": lane.recall(),
                "lane_iou": lane.iou()}

    def interval(self, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap interval of every metric over scenes: (low, high) holding `level` of the resamples.

        Args:
            resamples: bootstrap resamples (each draws len(self) scenes with replacement).
            seed: seed of the resampling, so an interval is reproducible.
            level: the share of the resampled metrics the interval holds.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        if resamples < 2:
            raise ValueError(f"resamples must be at least 2, got {resamples!r}")
        rng = np.random.default_rng(seed)
        samples = [self.metrics(rng.integers(0, len(self), len(self))) for _ in range(resamples)]
        tail = 100 * (1 - level) / 2
        return {name: (float(np.percentile([s[name] for s in samples], tail)),
                       float(np.percentile([s[name] for s in samples], 100 - tail))) for name in samples[0]}


@torch.no_grad()
def evaluate_scenes(model: nn.Module, data: Iterable[Mapping[str, torch.Tensor]], conf_threshold: float = 0.001,
                    iou_threshold: float = 0.6, recall_threshold: float = 0.1) -> SceneRecords:
    """Run `model` over `data` as `evaluate` does and keep every scene's contribution (see `SceneRecords`);
    `evaluate_scenes(model, data).metrics() == evaluate(model, data)` with the same thresholds."""
    if not hasattr(model, "decode"):
        raise TypeError(f"evaluate_scenes needs a DrivingNet-like model with .decode(output), "
                        f"got {type(model).__name__}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    detections: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    drivable: list[list[int]] = []
    lane: list[list[int]] = []
    try:
        for batch, output, preds in decoded_batches(model, data, conf_threshold, iou_threshold, device):
            boxes = batch["boxes"]
            for i, pred in enumerate(preds):
                pred, truth = pred.detach().cpu().float(), boxes[boxes[:, 0] == i, 1:].cpu().float()
                detections.append((pred[:, 4].numpy(), match_detections(pred, truth),
                                   pred[:, 5].numpy().astype(np.int64), truth[:, 0].numpy().astype(np.int64)))
                drivable.append(_counts(output.drivable[i:i + 1], batch["drivable"][i:i + 1]))
                lane.append(_counts(output.lane[i:i + 1], batch["lane"][i:i + 1]))
    finally:
        model.train(was_training)
    return SceneRecords(tuple(detections), np.array(drivable, np.int64).reshape(-1, 4),
                        np.array(lane, np.int64).reshape(-1, 4), recall_threshold)


def _counts(logits: torch.Tensor, target: torch.Tensor) -> list[int]:
    counter = SegmentationCounter()
    counter.update(logits, target)
    return [getattr(counter, name) for name in _COUNTS]
