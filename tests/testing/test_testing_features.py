"""The test models carry the features their docstrings promise (the point of having them)."""

from __future__ import annotations

import pathlib

import torch
from torch import nn

from taskprune.tasks import flatten_outputs
from taskprune.testing import get_test_model, list_test_models, randomize_norms

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[2] / "taskprune" / "testing"


def _modules(name: str, kind: type[nn.Module]) -> list[nn.Module]:
    model, _ = get_test_model(name)()
    return [m for m in model.modules() if isinstance(m, kind)]


def test_package_does_not_import_torch_pruning() -> None:
    # House rule: only taskprune/graph/ talks to torch_pruning.
    for path in PACKAGE_DIR.glob("*.py"):
        assert "torch_pruning" not in path.read_text(), path.name


def test_every_kind_has_models() -> None:
    assert all(list_test_models(kind=kind) for kind in ("tiny", "zoo", "large"))


def test_tiny_set_covers_grouped_depthwise_transposed_prelu() -> None:
    convs = [m for name in list_test_models(kind="tiny") for m in _modules(name, nn.Conv2d)]
    assert any(m.groups == m.in_channels == m.out_channels > 1 for m in convs)
    assert any(1 < m.groups < m.in_channels for m in convs)
    assert _modules("transposed_decoder", nn.ConvTranspose2d)
    assert all(m.num_parameters > 1 for m in _modules("transposed_decoder", nn.PReLU))


def test_yolo_heads_reshape_to_anchors() -> None:
    model, example_inputs = get_test_model("yolo_seg")()
    det, seg = model(example_inputs)
    assert det.shape == (1, 3, 8, 8, 8)
    assert seg.shape == (1, 2, 32, 32)


def test_yolop_detect_keeps_anchor_buffers() -> None:
    model, example_inputs = get_test_model("yolop_like")()
    buffers = dict(model.named_buffers())
    assert buffers["detect.anchors"].shape == (3, 3, 2)
    assert "detect.anchors" not in dict(model.named_parameters())
    (decoded, raw), drivable, lane = model(example_inputs)
    assert [r.shape[-1] for r in raw] == [6, 6, 6]
    assert decoded.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 6)
    assert drivable.shape == lane.shape == (1, 2, 64, 64)


def test_fpn_head_is_one_module_applied_to_every_level() -> None:
    model, example_inputs = get_test_model("fpn_shared_head")()
    calls = []
    model.head.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[-1]))
    cls, box = model(example_inputs)
    assert calls == [8, 4, 2]
    assert len(cls) == len(box) == 3


def test_yolov8_returns_neck_features_and_freezes_dfl() -> None:
    model, example_inputs = get_test_model("yolov8_seg_like")()
    predictions, (levels, coefficients, protos), neck = model(example_inputs)
    assert [f.shape[1] for f in neck] == [48, 64, 96]
    assert predictions.shape[-1] == coefficients.shape[-1] == sum(f.shape[-1] * f.shape[-2] for f in levels)
    assert protos.shape == (1, 8, 16, 16)
    assert not model.head.dfl.conv.weight.requires_grad


def test_deeplab_returns_out_and_aux() -> None:
    model, example_inputs = get_test_model("deeplab_like")()
    assert set(model(example_inputs)) == {"out", "aux"}


def test_per_channel_parameters_outside_layers() -> None:
    convnext, _ = get_test_model("convnext_like")()
    assert any(name.endswith("gamma") and p.dim() == 1 for name, p in convnext.named_parameters())
    vit, _ = get_test_model("vit_like")()
    names = dict(vit.named_parameters())
    assert names["cls_token"].shape == (1, 1, 64)
    assert names["pos_embed"].shape == (1, 65, 64)


def test_randomize_norms_spreads_batchnorm() -> None:
    norm = nn.BatchNorm2d(8)
    randomize_norms(nn.Sequential(norm))
    assert norm.weight.std() > 0
    assert norm.running_mean.abs().sum() > 0


def test_flatten_outputs_orders_nested_containers() -> None:
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    assert [t.item() for t in flatten_outputs({"x": (a, [b]), "y": c})] == [0.0, 1.0, 2.0]
    assert flatten_outputs(None) == []
