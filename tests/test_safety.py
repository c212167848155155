"""Verification after pruning: an output whose shape or values break is refused with an error that names the
output and the layer, and the caller's model (also with inplace=True) is left bit for bit as it was.

The models below break only when several channels go (removing one channel, what the unsafe-group probe tries,
changes nothing), and only through Python arithmetic on a shape that no graph can see: verification is the last
line of defence, and these tests fail if it is skipped.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from state_checks import snapshot, unchanged
from torch import nn

import taskprune
from taskprune.safety import verify_outputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Trunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                   nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.seg = nn.Conv2d(32, 2, 1)
        self.aux = nn.Conv2d(32, 4, 1)


class PoolSizeFromWidth(_Trunk):
    """The aux output is pooled to a size computed from the trunk's width: 4x4 at 31 or 32 channels."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        size = (features.shape[1] + 1) // 8
        return {"seg": self.seg(features), "aux": F.adaptive_avg_pool2d(self.aux(features), size)}


class ScaleFromWidth(_Trunk):
    """The seg output is scaled by sqrt(width - 30): NaN once the trunk has fewer than 30 channels."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        scale = torch.tensor(float(features.shape[1] - 30)).sqrt()
        return {"seg": self.seg(features) * scale, "aux": self.aux(features)}


def _model(cls: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return cls().eval()


def _structure(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in model.named_parameters()]


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize(("cls", "message"), [
    (PoolSizeFromWidth, r"pruning changed output 'aux' from \[1, 4, 4, 4\] to .*3, 3.*produced by layer\(s\) aux"),
    (ScaleFromWidth, r"output 'seg' has non-finite values; produced by seg"),
])
def test_a_broken_output_is_refused_and_the_model_untouched(cls, message, inplace):
    model = _model(cls)
    x = torch.randn(1, 3, 16, 16)
    before, structure = snapshot(model), _structure(model)
    expected = model(x)
    with pytest.raises(RuntimeError, match=message):
        taskprune.prune(model, x, ratio=0.4, round_to=None, inplace=inplace, progress=False)
    assert unchanged(model, before) and _structure(model) == structure
    assert all(torch.equal(a, b) for a, b in zip(model(x).values(), expected.values(), strict=True))


def test_the_probe_does_not_catch_these_models():
    """Guards the tests above: one channel less must not break them, so only verification can."""
    for cls in (PoolSizeFromWidth, ScaleFromWidth):
        model = _model(cls)
        model.trunk[3] = nn.Conv2d(32, 31, 3, padding=1)
        model.trunk[4] = nn.BatchNorm2d(31)
        model.seg, model.aux = nn.Conv2d(31, 2, 1), nn.Conv2d(31, 4, 1)
        output = model.eval()(torch.randn(1, 3, 16, 16))
        assert output["aux"].shape == _model(cls)(torch.randn(1, 3, 16, 16))["aux"].shape
        assert torch.isfinite(output["seg"]).all()


def test_verify_outputs_names_missing_and_reshaped_outputs():
    model = nn.Conv2d(3, 2, 1)
    x = torch.randn(1, 3, 4, 4)
    verify_outputs(model, x, {"output": (1, 2, 4, 4)}, {"output": ["conv"]})
    with pytest.raises(RuntimeError, match=r"output 'output' from \[1, 5, 4, 4\] to \(1, 2, 4, 4\).*conv"):
        verify_outputs(model, x, {"output": (1, 5, 4, 4)}, {"output": ["conv"]})
