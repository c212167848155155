"""extract(): only the kept tasks are computed, their outputs bit-identical to the original's on any input, what
served only dropped tasks is gone, and the result can be pruned, saved, loaded and exported."""

from __future__ import annotations

import pytest
import torch
from state_checks import snapshot, unchanged
from torch import nn

import taskprune
from taskprune import driving
from taskprune.extract import extract
from taskprune.tasks import Tasks, call_model, flatten_outputs, output_leaves
from taskprune.testing import get_test_model, list_test_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODELS = {name: get_test_model(name) for name in list_test_models()
          if name in list_test_models(kind="tiny") + list_test_models(kind="zoo")}
MULTI_TASK = sorted(name for name in MODELS if len(output_leaves(call_model(*MODELS[name]()))) > 1)


def _other_inputs(x):
    """Inputs the extraction never saw: other values and, for tensors, a batch of two."""
    generator = torch.Generator().manual_seed(7)
    if isinstance(x, torch.Tensor):
        return torch.randn((2, *x.shape[1:]), generator=generator)
    if isinstance(x, dict):
        return {k: torch.randn(v.shape, generator=generator) for k, v in x.items()}
    return tuple(torch.randn(v.shape, generator=generator) for v in x)


@pytest.mark.parametrize("name", MULTI_TASK)
def test_kept_outputs_are_bit_identical_and_the_rest_is_gone(name):
    model, x = MODELS[name]()
    before = snapshot(model)
    tasks = Tasks.from_output(call_model(model, x))
    keep = list(tasks.names[:1])
    result = extract(model, x, keep=keep)
    assert unchanged(model, before)
    other = _other_inputs(x)
    with torch.no_grad():
        expected, got = call_model(model, other), call_model(result.model, other)
    assert list(got) == keep
    assert all(torch.equal(a, b) for a, b in zip(flatten_outputs(tasks.task_output(keep[0], expected)),
                                                 flatten_outputs(got[keep[0]]), strict=True))
    removed = {m for entry in result.report.removed.values() for m in entry["modules"]}
    remaining = {n for n, _ in result.model.named_modules()}
    assert not removed & remaining
    params = sum(p.numel() for p in result.model.parameters())
    assert result.report.params_after == params
    assert result.report.params_before - params == sum(e["params"] for e in result.report.removed.values())


def test_drivingnet_without_lanes():
    torch.manual_seed(0)
    model = driving.DrivingNet(size="n").eval()
    tasks = driving.driving_tasks()
    result = extract(model, torch.zeros(1, 3, 64, 96), keep=["det", "drivable"], tasks=tasks)
    assert set(result.report.removed) == {"lane"}
    lane = result.report.removed["lane"]
    assert lane["modules"] and all(m.startswith("lane_head") for m in lane["modules"])
    assert lane["params"] == sum(p.numel() for p in model.lane_head.parameters())
    assert result.report.macs_after < result.report.macs_before
    images = torch.randn(2, 3, 96, 128)  # another size than the example: DrivingNet's shape check passes again
    with torch.no_grad():
        expected, got = model(images), result.model(images)
    assert torch.equal(got["drivable"], expected.drivable)
    assert all(torch.equal(a, b) for a, b in zip(got["det"], expected.det, strict=True))
    assert "lane_head" not in dict(result.model.named_children())


def test_keep_names_known_tasks():
    model, x = get_test_model("tiny_driving")()
    with pytest.raises(ValueError, match=r"keep names unknown task\(s\) \['lanes'\]; tasks are: det, drivable"):
        extract(model, x, keep=["lanes"], tasks=Tasks(outputs={"det": lambda o: o.det,
                                                               "drivable": lambda o: o.drivable}))
    with pytest.raises(ValueError, match="keep names no task"):
        extract(model, x, keep=[])


class ValueBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"a": self.a(x), "b": self.b(x) * 2 if x.sum() > 0 else self.b(x)}


def test_a_branch_on_tensor_values_is_refused_and_named():
    """Branches on shapes are followed (DrivingNet checks its input size); a branch on values cannot be one graph."""
    with pytest.raises(RuntimeError, match=r"branches on tensor values \(File .*test_extraction.py.*x.sum\(\) > 0"):
        extract(ValueBranch().eval(), torch.ones(1, 3, 4, 4), keep=["a"])


class DictTwoHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.det, self.seg = nn.Conv2d(32, 6, 1), nn.Sequential(nn.Conv2d(32, 8, 3, padding=1), nn.Conv2d(8, 2, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {"det": self.det(features), "seg": self.seg(features)}


def _fresh() -> DictTwoHead:
    torch.manual_seed(0)
    return DictTwoHead().eval()


def test_extract_then_prune_then_save_load_and_export(tmp_path):
    model, x = _fresh(), torch.randn(1, 3, 16, 16)
    extracted = extract(model, x, keep=["det"])
    pruned = taskprune.prune(extracted.model, x, ratio=0.3, round_to=None, progress=False)
    assert list(pruned.model(x)) == ["det"]
    taskprune.save(pruned, tmp_path / "det.pt")
    assert taskprune.saving.read_metadata(tmp_path / "det.pt")["format_version"] == 3
    loaded = taskprune.load(tmp_path / "det.pt", _fresh())
    assert torch.equal(loaded(x)["det"], pruned.model(x)["det"])
    differences = taskprune.export_onnx(loaded, x, tmp_path / "det.onnx")
    assert set(differences) == {"det"}


def test_load_asks_for_tasks_it_cannot_rebuild(tmp_path):
    model = driving.DrivingNet(size="n").eval()
    x = torch.zeros(1, 3, 64, 96)
    result = extract(model, x, keep=["det"], tasks=driving.driving_tasks())
    taskprune.save(result, tmp_path / "det.pt")
    with pytest.raises(ValueError, match="pass the same tasks"):
        taskprune.load(tmp_path / "det.pt", driving.DrivingNet(size="n"))
    loaded = taskprune.load(tmp_path / "det.pt", driving.DrivingNet(size="n").eval(), tasks=driving.driving_tasks())
    assert all(torch.equal(a, b) for a, b in zip(loaded(x)["det"], result.model(x)["det"], strict=True))
