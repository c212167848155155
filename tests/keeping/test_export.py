"""export_onnx: ONNX Runtime matches PyTorch on every output structure, a dynamic batch runs at other sizes, a
mismatch names the output, a missing package names the extra. (onnx and onnxruntime come with the dev extra.)"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn
from two_inputs import TwoInputs, build

import taskprune
from taskprune.keeping import export_onnx
from taskprune.tasks import flatten_outputs
from taskprune.testing import get_test_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["yolo_seg", "tiny_driving", "concat_dict", "grouped_split_dataclass"])
def test_export_matches_pytorch(tmp_path, name):
    import onnx

    model, x = get_test_model(name)()
    model.train()
    differences = export_onnx(model, x, tmp_path / "model.onnx")
    assert model.training  # mode restored
    assert len(differences) == len(flatten_outputs(model.eval()(x)))
    assert all(d <= 1e-4 for d in differences.values())
    onnx.checker.check_model(str(tmp_path / "model.onnx"))


def test_export_of_a_pruned_model_with_keyword_inputs(tmp_path):
    inputs = {"image": torch.randn(1, 3, 16, 16), "guide": torch.randn(1, 1, 16, 16)}
    pruned = taskprune.prune(build(TwoInputs), inputs, ratio=0.3, round_to=None, progress=False).model
    differences = export_onnx(pruned, inputs, tmp_path / "model.onnx")
    assert set(differences) == {"seg", "det"}
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "guide"]


@pytest.mark.parametrize("dynamic", [False, True])
def test_dynamic_batch_runs_at_other_batch_sizes(tmp_path, dynamic):
    import onnxruntime

    model, x = get_test_model("tiny_driving")()
    pruned = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False).model
    differences = export_onnx(pruned, x, tmp_path / "model.onnx", dynamic_batch=dynamic)
    assert all(d <= 1e-4 for d in differences.values())
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    batch3 = torch.cat([x, x, x]).numpy()
    if dynamic:
        outputs = session.run(None, {"input": batch3})
        assert all(o.shape[0] == 3 for o in outputs)
    else:
        with pytest.raises(Exception, match="(?i)dimension|shape"):
            session.run(None, {"input": batch3})


class Noisy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return y, y + torch.rand_like(y)  # ONNX Runtime draws other random numbers


def test_parity_failure_names_the_output_and_difference(tmp_path):
    with pytest.raises(RuntimeError, match=r"output 'output_1' differs from PyTorch's by up to [0-9.e-]+"):
        export_onnx(Noisy(), torch.randn(1, 3, 8, 8), tmp_path / "noisy.onnx")
    assert export_onnx(Noisy(), torch.randn(1, 3, 8, 8), tmp_path / "noisy.onnx", check=False) == {}


@pytest.mark.parametrize("package", ["onnx", "onnxruntime"])
def test_missing_package_names_the_extra(tmp_path, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    with pytest.raises(ImportError, match=r"pip install taskprune\[onnx\]"):
        export_onnx(Noisy(), torch.randn(1, 3, 8, 8), tmp_path / "model.onnx")
