"""Distill config, FeatureDistiller and the feature losses, on a hand-built two-scale, two-task model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from taskprune.distill import Distill, FeatureDistiller, auto_layers
from taskprune.distill.losses import cwd_loss, feature_loss, pkd_loss, selection_adapter
from taskprune.tasks import Tasks

LOSSES = ("mse", "pkd", "cwd")
KEEP_STEM = [0, 2, 5]
KEEP_DOWN = [1, 3, 4, 6, 7, 9]


class TwoScaleNet(nn.Module):
    """A trunk at full and half resolution; a segmentation head on both scales, a classifier on the half scale.

    Modules reaching both tasks: stem, stem_bn (full scale), down, down_bn (half scale). `cls_conv` runs last at
    the half scale but serves the classifier only, and `seg_head` runs last at full scale but serves segmentation
    only, so neither is a shared trunk output.
    """

    def __init__(self, c1: int = 8, c2: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, c1, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(c1)
        self.act = nn.ReLU()
        self.down = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.down_bn = nn.BatchNorm2d(c2)
        self.seg_head = nn.Conv2d(c1 + c2, 2, 1)
        self.cls_conv = nn.Conv2d(c2, 6, 3, padding=1)
        self.cls_head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.act(self.stem_bn(self.stem(x)))
        d = self.act(self.down_bn(self.down(s)))
        seg = self.seg_head(torch.cat([s, F.interpolate(d, scale_factor=2.0)], 1))
        cls = self.cls_head(self.act(self.cls_conv(d)).mean((2, 3)))
        return seg, cls


def make_teacher(seed: int = 0) -> TwoScaleNet:
    torch.manual_seed(seed)
    teacher = TwoScaleNet()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval-mode features are not just the conv's
        for bn in (teacher.stem_bn, teacher.down_bn):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return teacher.eval()


def slice_student(teacher: TwoScaleNet, keep_stem: list[int] = KEEP_STEM, keep_down: list[int] = KEEP_DOWN,
                  ) -> tuple[TwoScaleNet, dict[str, list[int]]]:
    """What pruning would give: the teacher with only the kept channels of stem and down (and their BNs)."""
    student = TwoScaleNet(len(keep_stem), len(keep_down))
    seg_inputs = keep_stem + [teacher.stem.out_channels + i for i in keep_down]
    with torch.no_grad():
        student.stem.weight.copy_(teacher.stem.weight[keep_stem])
        student.stem.bias.copy_(teacher.stem.bias[keep_stem])
        student.down.weight.copy_(teacher.down.weight[keep_down][:, keep_stem])
        student.down.bias.copy_(teacher.down.bias[keep_down])
        for name, keep in (("stem_bn", keep_stem), ("down_bn", keep_down)):
            for key, value in getattr(teacher, name).state_dict().items():
                getattr(student, name).state_dict()[key].copy_(value if value.dim() == 0 else value[keep])
        student.seg_head.weight.copy_(teacher.seg_head.weight[:, seg_inputs])
        student.seg_head.bias.copy_(teacher.seg_head.bias)
        student.cls_conv.weight.copy_(teacher.cls_conv.weight[:, keep_down])
        student.cls_conv.bias.copy_(teacher.cls_conv.bias)
        student.cls_head.load_state_dict(teacher.cls_head.state_dict())
    channel_map = {"stem": keep_stem, "stem_bn": keep_stem, "down": keep_down, "down_bn": keep_down}
    return student.eval(), channel_map


def images(seed: int = 1, batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


# --- config ---------------------------------------------------------------------------------------------------


def test_distill_normalises_and_round_trips():
    config = Distill(layers=["stem_bn", "down_bn"], loss="cwd", align="adapter", alpha=2, tau=4)
    assert config.layers == ("stem_bn", "down_bn")
    assert isinstance(config.alpha, float) and config.tau == 4.0
    assert Distill.from_dict(config.to_dict()) == config
    assert Distill.from_dict(Distill().to_dict()) == Distill()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"loss": "kl"}, ValueError, "cwd, mse, pkd"),
        ({"align": "conv"}, ValueError, "adapter, select"),
        ({"layers": "stem_bn"}, ValueError, "layers=('stem_bn',)"),
        ({"layers": ()}, ValueError, "non-empty"),
        ({"layers": ("a", "a")}, ValueError, "more than once"),
        ({"layers": 3}, TypeError, "layers"),
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"tau": 0}, ValueError, "tau"),
        ({"tau": "2"}, TypeError, "tau"),
    ],
)
def test_distill_rejects_bad_values(kwargs, error, message):
    with pytest.raises(error, match=None) as info:
        Distill(**kwargs)
    assert message in str(info.value)


def test_distill_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="valid: layers, loss, align, alpha, tau"):
        Distill.from_dict({"loss": "mse", "temperature": 2.0})


# --- losses ---------------------------------------------------------------------------------------------------


def test_pkd_is_one_minus_pearson_per_channel():
    student, teacher = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    pearson = [np.corrcoef(student[:, c].flatten().numpy(), teacher[:, c].flatten().numpy())[0, 1] for c in range(4)]
    assert pkd_loss(student, teacher).item() == pytest.approx(1 - float(np.mean(pearson)), abs=1e-4)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.1, 10.0), shift=st.floats(-5.0, 5.0), seed=st.integers(0, 1000))
def test_pkd_ignores_per_channel_scale_and_shift(scale, shift, seed):
    generator = torch.Generator().manual_seed(seed)
    student, teacher = torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 3, 4, 4, generator=generator)
    assert pkd_loss(student * scale + shift, teacher).item() == pytest.approx(pkd_loss(student, teacher).item(),
                                                                             abs=1e-3)


def test_cwd_matches_the_closed_form():
    student, teacher, tau = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), 2.0
    p_t = torch.softmax(teacher.reshape(6, 16) / tau, dim=1)
    p_s = torch.softmax(student.reshape(6, 16) / tau, dim=1)
    expected = (p_t * (p_t.log() - p_s.log())).sum() * tau**2 / 6
    assert cwd_loss(student, teacher, tau).item() == pytest.approx(expected.item(), rel=1e-5)


def test_cwd_needs_spatial_dimensions_and_names_are_checked():
    with pytest.raises(ValueError, match="spatial"):
        cwd_loss(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="available: cwd, mse, pkd"):
        feature_loss("l1", torch.randn(2, 3), torch.randn(2, 3))


# --- FeatureDistiller -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("align", ["select", "adapter"])
@pytest.mark.parametrize("loss", LOSSES)
def test_kd_loss_is_zero_for_an_identical_student(loss, align):
    teacher = make_teacher()
    student = copy.deepcopy(teacher)  # eval mode too: BatchNorm must use the same statistics as the teacher
    x = images()
    distiller = FeatureDistiller(teacher, student, Distill(loss=loss, align=align), example_inputs=x)
    kd_loss, outputs = distiller(x)
    assert distiller.layers == ("stem_bn", "down_bn")
    assert kd_loss.item() == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(outputs, teacher(x))


@pytest.mark.parametrize("align", ["select", "adapter"])
@pytest.mark.parametrize("loss", LOSSES)
def test_kd_loss_is_positive_for_a_different_student_and_scaled_by_alpha(loss, align):
    teacher = make_teacher()
    student, channel_map = slice_student(teacher)
    x = images()
    kd = {}
    for alpha in (1.0, 3.0):
        distiller = FeatureDistiller(teacher, student, Distill(loss=loss, align=align, alpha=alpha),
                                     channel_map=channel_map, example_inputs=x)
        kd[alpha] = distiller(x)[0].item()
        distiller.remove()
    assert kd[1.0] > 1e-4
    assert kd[3.0] == pytest.approx(3 * kd[1.0], rel=1e-5)


def test_selection_follows_the_channel_map():
    teacher = make_teacher()
    student, channel_map = slice_student(teacher)
    x = images()
    # stem_bn of the hand-sliced student computes exactly the teacher's kept channels.
    exact = FeatureDistiller(teacher, student, Distill(layers=("stem_bn",)), channel_map=channel_map)
    assert exact(x)[0].item() == pytest.approx(0.0, abs=1e-10)
    shifted = FeatureDistiller(teacher, student, Distill(layers=("stem_bn",)), channel_map={"stem_bn": [1, 2, 5]})
    assert shifted(x)[0].item() > 1e-2


def test_adapter_starts_as_the_selection_and_is_the_only_parameter():
    teacher = make_teacher()
    student, channel_map = slice_student(teacher)
    x = images()
    distiller = FeatureDistiller(teacher, student, Distill(layers=("stem_bn",), align="adapter"),
                                 channel_map=channel_map, example_inputs=x)
    assert sorted(distiller.state_dict()) == ["adapters.stem_bn.bias", "adapters.stem_bn.weight"]
    adapter = distiller.adapters["stem_bn"]
    with torch.no_grad():
        mapped = adapter(student.stem_bn(student.stem(x)))
        target = teacher.stem_bn(teacher.stem(x))
    pruned = [c for c in range(8) if c not in KEEP_STEM]
    torch.testing.assert_close(mapped[:, KEEP_STEM], target[:, KEEP_STEM])
    assert mapped[:, pruned].abs().max().item() == 0.0
    assert list(FeatureDistiller(teacher, student, Distill(), channel_map=channel_map).parameters()) == []
    assert selection_adapter(None, 4, 4).weight[:, :, 0, 0].equal(torch.eye(4))


@pytest.mark.parametrize("align", ["select", "adapter"])
def test_gradient_reaches_the_student_and_adapter_never_the_teacher(align):
    teacher = make_teacher()
    student, channel_map = slice_student(teacher)
    student.train()
    x = images()
    distiller = FeatureDistiller(teacher, student, Distill(loss="pkd", align=align), channel_map=channel_map,
                                 example_inputs=x)
    kd_loss, _ = distiller(x)
    kd_loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert not teacher.training
    assert student.stem.weight.grad is not None and student.stem.weight.grad.abs().sum() > 0
    assert student.down_bn.weight.grad is not None and student.down_bn.weight.grad.abs().sum() > 0
    assert student.seg_head.weight.grad is None  # the heads are after the taps: KD does not reach them
    for parameter in distiller.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    assert len(list(distiller.parameters())) == (4 if align == "adapter" else 0)


def test_auto_layers_are_the_last_shared_module_per_scale():
    teacher = make_teacher()
    x = images()
    assert auto_layers(teacher, x) == ("stem_bn", "down_bn")
    tasks = Tasks(outputs={"seg": lambda out: out[0], "cls": lambda out: out[1]})
    assert auto_layers(teacher, x, tasks) == ("stem_bn", "down_bn")
    # With the classifier as the only task, the last module at half scale serving it is cls_conv.
    only_cls = Tasks(outputs={"cls": lambda out: out[1]})
    assert auto_layers(teacher, x, only_cls) == ("stem_bn", "cls_conv")
    # Resolved lazily on the first call when no example inputs are given.
    student, channel_map = slice_student(teacher)
    distiller = FeatureDistiller(teacher, student, channel_map=channel_map)
    assert distiller.layers is None
    distiller(x)
    assert distiller.layers == ("stem_bn", "down_bn")


def test_kd_in_a_user_loop_lowers_the_feature_distance():
    teacher = make_teacher()
    torch.manual_seed(3)
    student = slice_student(teacher)[0]
    for module in student.modules():  # start from a scrambled student
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.3)
    student.train()
    channel_map = slice_student(teacher)[1]
    x = images(batch=8)
    distiller = FeatureDistiller(teacher, student, Distill(loss="mse"), channel_map=channel_map)

    def distance() -> float:
        with torch.no_grad():
            return distiller(x)[0].item()

    before = distance()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(40):
        kd_loss, _ = distiller(x)
        optimizer.zero_grad()
        kd_loss.backward()
        optimizer.step()
    assert distance() < 0.5 * before


def test_unknown_layer_lists_close_matches():
    teacher = make_teacher()
    student, channel_map = slice_student(teacher)
    with pytest.raises(ValueError, match=r"'stem_bm'.*did you mean 'stem_bn'"):
        FeatureDistiller(teacher, student, Distill(layers=("stem_bm",)), channel_map=channel_map)


def test_shapes_that_do_not_fit_the_map_name_the_layer_and_both_shapes():
    teacher = make_teacher()
    student, channel_map = slice_student(teacher)
    x = images()
    wrong = dict(channel_map, down_bn=[0, 1, 2])
    with pytest.raises(ValueError) as info:
        FeatureDistiller(teacher, student, Distill(), channel_map=wrong, example_inputs=x)
    message = str(info.value)
    assert "'down_bn'" in message and "(4, 6, 8, 8)" in message and "(4, 10, 8, 8)" in message
    with pytest.raises(ValueError, match=r"'stem_bn'.*\(4, 3, 16, 16\).*\(4, 8, 16, 16\).*identity"):
        FeatureDistiller(teacher, student, Distill(), channel_map=None)(x)


def test_bad_channel_map_and_missing_example_inputs_are_rejected():
    teacher = make_teacher()
    student, _ = slice_student(teacher)
    with pytest.raises(ValueError, match="'stem_bn'.*sorted"):
        FeatureDistiller(teacher, student, Distill(), channel_map={"stem_bn": [5, 0, 2]})
    with pytest.raises(ValueError, match="example_inputs"):
        FeatureDistiller(teacher, student, Distill(align="adapter"))
    with pytest.raises(TypeError, match="distill"):
        FeatureDistiller(teacher, student, "mse")  # type: ignore[arg-type]


def test_remove_takes_the_hooks_off_both_models():
    teacher = make_teacher()
    student, channel_map = slice_student(teacher)
    with FeatureDistiller(teacher, student, Distill(), channel_map=channel_map, example_inputs=images()):
        assert len(student.stem_bn._forward_hooks) == 1 and len(teacher.stem_bn._forward_hooks) == 1
    assert all(not m._forward_hooks for m in [*student.modules(), *teacher.modules()])
