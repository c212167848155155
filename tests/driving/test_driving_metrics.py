"""Detection and segmentation metrics on hand-built cases, and AP against a second, loop-based implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taskprune.driving.metrics import (
    DetectionMatcher,
    SegmentationCounter,
    average_precision,
    delta_m,
    match_detections,
)


def _reference_ap(scores: list[float], tp: list[bool], num_truth: int) -> float:
    """All-point AP the slow way: at each recall level reached, the best precision at that recall or beyond."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    points = []
    hits = 0
    for rank, i in enumerate(order, start=1):
        hits += tp[i]
        points.append((hits / num_truth, hits / rank))
    ap, previous = 0.0, 0.0
    for level in sorted({r for r, _ in points}):
        best = max(p for r, p in points if r >= level)
        ap += (level - previous) * best
        previous = level
    return ap


def test_average_precision_hand_computed():
    # TP, FP, TP, FP, TP against 3 truths: precision 1, 2/3, 3/5 at recall 1/3, 2/3, 1.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    tp = np.array([True, False, True, False, True])
    assert average_precision(scores, tp, 3) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # Precision envelope: a later higher precision lifts earlier recall levels (FP first, then 2 TP of 4 truths).
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([False, True, True]), 4) == pytest.approx(
        0.5 * 2 / 3)


def test_average_precision_matches_reference_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(200):
        count = int(rng.integers(1, 30))
        scores = rng.random(count)
        tp = rng.random(count) < 0.5
        num_truth = int(tp.sum() + rng.integers(0, 5)) or 1
        expected = _reference_ap(scores.tolist(), tp.tolist(), num_truth)
        assert average_precision(scores, tp, num_truth) == pytest.approx(expected)


def test_average_precision_edge_cases():
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert np.isnan(average_precision(np.zeros(0), np.zeros(0, bool), 0))


def test_match_detections_each_truth_once_and_best_score_first():
    truth = torch.tensor([[0.0, 0, 0, 10, 10]])
    pred = torch.tensor([[0.0, 0, 10, 10, 0.5, 0], [0.0, 0, 10, 10, 0.9, 0], [50, 50, 60, 60, 0.99, 0]])
    assert match_detections(pred, truth).tolist() == [False, True, False]
    # IoU exactly 0.5 counts; another class does not.
    half = torch.tensor([[0.0, 0, 10, 20, 0.9, 0], [0.0, 0, 10, 10, 0.8, 1]])
    assert match_detections(half, torch.tensor([[0.0, 0, 0, 10, 10]])).tolist() == [True, False]


def test_detection_matcher_perfect_empty_and_half():
    truths = [torch.tensor([[0.0, 0, 0, 10, 10], [0.0, 20, 20, 40, 40]]), torch.tensor([[0.0, 5, 5, 25, 25]])]
    perfect = [torch.cat((t[:, 1:], torch.full((len(t), 1), 0.9), t[:, :1]), 1) for t in truths]
    matcher = DetectionMatcher()
    matcher.update(perfect, truths)
    assert matcher.result() == {"recall": 1.0, "map50": 1.0}
    empty = DetectionMatcher()
    empty.update([torch.zeros(0, 6), torch.zeros(0, 6)], truths)
    assert empty.result() == {"recall": 0.0, "map50": 0.0}
    # Only the first image's boxes found, one of them below the recall threshold: AP 2/3, recall 1/3.
    half = DetectionMatcher(recall_threshold=0.5)
    first = perfect[0].clone()
    first[1, 4] = 0.2
    half.update([first, torch.zeros(0, 6)], truths)
    assert half.result()["map50"] == pytest.approx(2 / 3)
    assert half.result()["recall"] == pytest.approx(1 / 3)


def test_segmentation_counter_known_values():
    target = torch.tensor([[[1, 1, 0, 0]]])
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 1, 0] = torch.tensor([5.0, -5.0, 5.0, -5.0])  # predicts 1, 0, 1, 0
    counter = SegmentationCounter()
    counter.update(logits, target)
    assert (counter.tp, counter.fp, counter.fn, counter.tn) == (1, 1, 1, 1)
    assert counter.iou() == pytest.approx(1 / 3)
    assert counter.recall() == pytest.approx(0.5)
    assert counter.miou() == pytest.approx(1 / 3)


def test_delta_m_sign_and_lower_is_better():
    base = {"map50": 0.8, "lane_iou": 0.4}
    assert delta_m(base, base) == 0.0
    assert delta_m({"map50": 0.72, "lane_iou": 0.36}, base) == pytest.approx(-0.1)
    assert delta_m({"error": 0.5}, {"error": 1.0}, lower_is_better=["error"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lane_iou"):
        delta_m({"map50": 0.8}, base)
