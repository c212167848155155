"""The helpers every stage shares: restoring modes, copying a model, the torch.distributed world, atomic writes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from taskprune._runtime import atomic_write, copy_model, preserved_modes, world


def test_preserved_modes_gives_back_every_submodules_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2), nn.Dropout())).train()
    model[1][0].eval()
    with preserved_modes(model, eval=True):
        assert not any(m.training for m in model.modules())
    assert model.training and model[1].training and not model[1][0].training and model[1][1].training
    with pytest.raises(KeyError), preserved_modes(model, eval=True):
        raise KeyError("the block fails")
    assert not model[1][0].training and model[1][1].training


class CachesItsBias(nn.Module):
    """Keeps a tensor computed in its forward, as LeViT's eval-mode attention-bias cache does."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(4))
        self.cache: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "bias" not in self.cache:
            self.cache["bias"] = 2 * self.bias
        return x + self.cache["bias"]


def test_copy_model_copies_a_model_holding_a_tensor_its_forward_computed():
    model = CachesItsBias()
    model(torch.zeros(4))  # autograd on: the cached tensor is not a leaf
    with pytest.raises(RuntimeError, match="deepcopy protocol"):
        copy.deepcopy(model)
    twin = copy_model(model)
    assert torch.equal(twin.cache["bias"], model.cache["bias"]) and twin.cache["bias"].grad_fn is None
    assert twin.cache["bias"].data_ptr() != model.cache["bias"].data_ptr()
    assert twin.bias is not model.bias and torch.equal(twin.bias, model.bias)
    assert model.cache["bias"].grad_fn is not None  # the original keeps its own


def test_world_outside_torch_distributed():
    assert world() == (0, 1)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "nested" / "result.json"
    atomic_write(target, lambda partial: partial.write_text("first"))
    assert target.read_text() == "first"

    def crash(partial):
        partial.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, crash)
    assert target.read_text() == "first" and [p.name for p in target.parent.iterdir()] == ["result.json"]
