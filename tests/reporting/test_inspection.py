"""inspect(): the groups, tasks, protected outputs and sizes prune would work with, nothing pruned."""

from __future__ import annotations

import json

import pytest
import torch

import taskprune
from taskprune.testing import get_test_model


def test_inspect_shows_groups_tasks_outputs_and_sizes(two_head):
    model, x = two_head
    before = {k: v.clone() for k, v in model.state_dict().items()}
    found = taskprune.inspect(model, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    by_root = {g.layer: g for g in found.groups}
    assert by_root["trunk.3"].tasks == ("a", "b") and by_root["a.0"].tasks == ("a",)
    assert found.protected_outputs == ["a.2", "b.2"]
    assert found.outputs == {"a": [1, 6, 16, 16], "b": [1, 2, 16, 16]}
    assert found.tasks == {"a": ["a"], "b": ["b"]}
    assert found.params == sum(p.numel() for p in model.parameters())
    assert {layer.name for layer in found.layers} >= {"trunk.0", "a.2"}
    data = json.loads(found.to_json())
    assert isinstance(data["groups"], list) and data["protected_outputs"] == ["a.2", "b.2"]
    assert "channel groups" in str(found)


def test_inspect_names_groups_kept_whole():
    model, x = get_test_model("grouped_split_dataclass")()
    found = taskprune.inspect(model, x)
    assert any("grouped convolution" in g.kept_whole for g in found.groups)


def test_inspect_refuses_what_is_not_a_model():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        taskprune.inspect("model", torch.zeros(1))
