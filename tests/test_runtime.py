"""The three helpers every stage shares: restoring modes, the torch.distributed world, atomic writes."""

from __future__ import annotations

import pytest
from torch import nn

from taskprune._runtime import atomic_write, preserved_modes, world


def test_preserved_modes_gives_back_every_submodules_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2), nn.Dropout())).train()
    model[1][0].eval()
    with preserved_modes(model, eval=True):
        assert not any(m.training for m in model.modules())
    assert model.training and model[1].training and not model[1][0].training and model[1][1].training
    with pytest.raises(KeyError), preserved_modes(model, eval=True):
        raise KeyError("the block fails")
    assert not model[1][0].training and model[1][1].training


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
