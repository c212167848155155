"""DrivingNet: output structure and shapes, sizes, decode, and that `import taskprune` leaves it alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from taskprune.driving import DrivingNet, DrivingOutput


def test_output_structure_and_shapes():
    model = DrivingNet(size="n").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert isinstance(out, DrivingOutput)
    assert [tuple(t.shape) for t in out.det] == [(2, 18, 8, 12), (2, 18, 4, 6), (2, 18, 2, 3)]
    assert out.drivable.shape == out.lane.shape == (2, 2, 64, 96)


def test_sizes_grow_and_m_is_yolop_scale():
    params = {size: sum(p.numel() for p in DrivingNet(size=size).parameters()) for size in "nsm"}
    assert params["n"] < params["s"] < params["m"]
    assert 7e6 <= params["m"] <= 9e6


def test_several_classes_widen_the_head():
    model = DrivingNet(size="n", num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out.det[0].shape[1] == 3 * (5 + 3)
    assert all(d.shape[1] == 6 for d in model.decode(out, conf_threshold=0.0))


def test_bad_arguments_name_the_choices():
    with pytest.raises(ValueError, match="available: n, s, m"):
        DrivingNet(size="xl")
    with pytest.raises(ValueError, match="multiples of 32"):
        DrivingNet(size="n")(torch.rand(1, 3, 50, 64))


def test_decode_boxes_are_sorted_thresholded_and_inside_reach():
    torch.manual_seed(0)
    model = DrivingNet(size="n").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
        boxes = model.decode(out, conf_threshold=0.001, iou_threshold=0.5, max_detections=50)[0]
    assert boxes.shape[1] == 6 and 0 < len(boxes) <= 50
    assert (boxes[:, 4] > 0.001).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_import_taskprune_does_not_import_driving():
    code = "import sys, taskprune; print('taskprune.driving' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_driving_package_never_imports_torch_pruning():
    package = Path(__file__).resolve().parents[2] / "taskprune" / "driving"
    offenders = [p.name for p in package.glob("*.py") if "torch_pruning" in p.read_text()]
    assert offenders == []
