"""How `load` makes a model that is not its original class again: by the rebuild its maker registered, named in
the file; keeping/ itself knows no maker (it does not import extract), and a version-2 file still loads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import fx, nn

import taskprune
from taskprune.keeping import list_rebuilds, mark_rebuild, register_rebuild
from taskprune.keeping.rebuild import rebuild_of


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)))


def _traced_again(fresh_model, example_inputs, recorded, tasks, where):
    calls.append(dict(recorded))
    graph_module = fx.symbolic_trace(fresh_model)
    mark_rebuild(graph_module, "traced_for_test", recorded["architecture"])
    return graph_module


calls: list[dict] = []
register_rebuild("traced_for_test", _traced_again)


def _traced(tmp_path: Path) -> tuple[Path, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    graph_module = fx.symbolic_trace(Twice().eval())
    mark_rebuild(graph_module, "traced_for_test", "tests.Twice", note="kept")
    result = taskprune.prune(graph_module, x, ratio=0.25, round_to=None, progress=False)
    assert rebuild_of(result.model) == {"kind": "traced_for_test", "architecture": "tests.Twice", "note": "kept"}
    taskprune.save(result, tmp_path / "traced.pt")
    return tmp_path / "traced.pt", result.model, x


def test_load_makes_a_marked_model_again_with_its_registered_rebuild(tmp_path):
    path, pruned, x = _traced(tmp_path)
    calls.clear()
    loaded = taskprune.load(path, Twice())
    assert calls == [{"kind": "traced_for_test", "architecture": "tests.Twice", "note": "kept"}]
    assert isinstance(loaded, fx.GraphModule) and torch.equal(loaded(x), pruned(x))
    assert taskprune.saving.read_metadata(path)["architecture"] == "tests.Twice"


def test_a_file_naming_an_unregistered_rebuild_is_refused_with_the_registered_ones(tmp_path):
    path, _, _ = _traced(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["rebuild"]["kind"] = "gone"
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"made by 'gone', which no imported module rebuilds; rebuilds available: "
                                         r"extract, .*traced_for_test"):
        taskprune.load(path, Twice())


def test_marking_or_registering_is_checked_by_name():
    with pytest.raises(ValueError, match=r"Unknown rebuild 'nope'; available: extract, .*traced_for_test"):
        mark_rebuild(fx.symbolic_trace(Twice()), "nope", "tests.Twice")
    with pytest.raises(ValueError, match="'extract' is already registered"):
        register_rebuild("extract", _traced_again)
    assert "extract" in list_rebuilds()
    assert rebuild_of(Twice()) is None


def test_a_version_2_file_of_an_extracted_model_still_loads(tmp_path):
    """Version 2 wrote the extraction as an `extract` entry without a kind; the reader maps it to the rebuild."""
    model, x = _two_tasks(), torch.randn(1, 3, 8, 8)
    extracted = taskprune.extract(model, x, keep=["b"])
    taskprune.save(extracted, tmp_path / "b.pt")
    payload = torch.load(tmp_path / "b.pt", weights_only=True)
    recorded = payload.pop("rebuild")
    assert recorded.pop("kind") == "extract"
    payload.update(format_version=2, extract=recorded)
    torch.save(payload, tmp_path / "b.pt")
    loaded = taskprune.load(tmp_path / "b.pt", _two_tasks())
    assert list(loaded(x)) == ["b"] and torch.equal(loaded(x)["b"], extracted.model(x)["b"])


def test_keeping_imports_no_maker_of_models():
    """load replays a recorded history: it reaches extract only through the registry."""
    folder = Path(taskprune.__file__).parent / "keeping"
    for source in folder.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "extract" not in (node.module or "").split("."), f"{source.name} imports {node.module}"


class _TwoTasks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Conv2d(3, 8, 3, padding=1)
        self.a, self.b = nn.Conv2d(8, 2, 1), nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.relu(self.trunk(x))
        return {"a": self.a(features), "b": self.b(features)}


def _two_tasks() -> nn.Module:
    torch.manual_seed(1)
    return _TwoTasks().eval()
