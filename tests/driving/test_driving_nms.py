"""NMS and IoU against brute-force references written without the vectorised tricks."""

from __future__ import annotations

import torch

from taskprune.driving.nms import batched_nms, box_iou, nms


def _iou_scalar(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _brute_force_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    remaining = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep = []
    while remaining:
        best = remaining.pop(0)
        keep.append(best)
        remaining = [i for i in remaining if _iou_scalar(boxes[best], boxes[i]) <= threshold]
    return keep


def _random_boxes(generator: torch.Generator, count: int) -> torch.Tensor:
    xy = torch.rand(count, 2, generator=generator) * 100
    wh = torch.rand(count, 2, generator=generator) * 40 + 1
    return torch.cat((xy, xy + wh), dim=1).double()


def test_box_iou_known_values():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0, 0, 0, 0]])
    assert torch.allclose(box_iou(a, b), torch.tensor([[1.0, 50 / 150, 0.0, 0.0]]))


def test_nms_equals_brute_force_on_random_sets():
    generator = torch.Generator().manual_seed(0)
    for trial in range(40):
        count = 1 + trial * 3
        boxes = _random_boxes(generator, count)
        scores = torch.rand(count, generator=generator).double()
        if trial % 5 == 0:
            scores = (scores * 4).round() / 4  # ties
        for threshold in (0.3, 0.5, 0.7):
            expected = _brute_force_nms(boxes.tolist(), scores.tolist(), threshold)
            assert nms(boxes, scores, threshold).tolist() == expected


def test_nms_empty_and_identical_boxes():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3)
    assert nms(boxes, torch.tensor([0.1, 0.9, 0.5]), 0.5).tolist() == [1]


def test_batched_nms_never_suppresses_across_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 10, 10], [0.0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    classes = torch.tensor([0, 0, 1])
    assert sorted(batched_nms(boxes, scores, classes, 0.5).tolist()) == [0, 2]
