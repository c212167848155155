"""Losses: values on known cases, gradients, and that the detection assignment agrees with decode."""

from __future__ import annotations

import math

import pytest
import torch

from taskprune.driving import DrivingNet, SyntheticDriving, driving_tasks, loader
from taskprune.driving.losses import bbox_ciou, detection_loss, segmentation_loss
from taskprune.driving.model import ANCHORS, decode_raw


def test_ciou_identical_is_one_and_disjoint_is_negative():
    box = torch.tensor([[5.0, 5.0, 4.0, 2.0]])
    assert bbox_ciou(box, box).item() == pytest.approx(1.0, abs=1e-5)
    assert bbox_ciou(box, torch.tensor([[20.0, 20.0, 4.0, 2.0]])).item() < 0


def test_segmentation_loss_perfect_and_wrong():
    target = torch.randint(0, 2, (2, 8, 8))
    perfect = torch.stack((1 - target, target), 1).float() * 20
    assert segmentation_loss(perfect, target, dice_weight=1.0).item() < 1e-3
    assert segmentation_loss(-perfect, target).item() > 5
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        segmentation_loss(perfect, target[0])


def test_detection_loss_fits_a_box_that_decode_recovers():
    # Optimising the raw maps alone must produce a decoded box on the target: assignment and decode must agree.
    truth = torch.tensor([[0.0, 0.0, 20.0, 14.0, 44.0, 40.0]])  # image 0, class 0, a 24x26 box
    det = [torch.zeros(1, 18, 64 // s, 96 // s, requires_grad=True) for s in (8, 16, 32)]
    optimizer = torch.optim.Adam(det, lr=0.1)
    for _ in range(150):
        loss = detection_loss(tuple(det), {"boxes": truth})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decoded = decode_raw(tuple(d.detach() for d in det), torch.tensor(ANCHORS), 1)[0]
    best = decoded[decoded[:, 4].argmax(), :4]
    assert torch.allclose(best, truth[0, 2:], atol=2.0)


def test_detection_loss_without_boxes_is_finite_and_rejects_bad_boxes():
    det = tuple(torch.randn(2, 18, 64 // s, 96 // s) for s in (8, 16, 32))
    assert math.isfinite(detection_loss(det, {"boxes": torch.zeros(0, 6)}).item())
    with pytest.raises(ValueError, match=r"\[M, 6\]"):
        detection_loss(det, {"boxes": torch.zeros(3, 5)})
    with pytest.raises(TypeError, match="loader"):
        detection_loss(det, torch.zeros(1))


def test_driving_tasks_losses_backpropagate_into_the_model():
    tasks = driving_tasks(weights={"lane": 2.0})
    assert tasks.names == ("det", "drivable", "lane") and tasks.weight("lane") == 2.0
    model = DrivingNet(size="n")
    batch = next(iter(loader(SyntheticDriving(2, size=(64, 96)), batch_size=2)))
    output = model(tasks.model_inputs(batch))
    for name in tasks.names:
        model.zero_grad()
        loss = tasks.loss(name, tasks.task_output(name, output), batch)
        assert loss.dim() == 0 and loss.item() > 0
        loss.backward(retain_graph=True)
        assert model.stem[0].weight.grad.abs().sum() > 0  # every task reaches the shared backbone
