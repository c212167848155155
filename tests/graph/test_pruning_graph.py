"""The dependency search and the graph behind `prune`: the same groups as torch-pruning's own search, bounded work
on attention over reshaped positions, torch-pruning's failures confined to the roots they touch, index mappings
refreshed once per graph, and an unsafe-group probe that never traces again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.dependency import index_mapping as tp_index_mapping

import taskprune
from taskprune.graph import PruningGraph
from taskprune.tasks import Tasks, flatten_outputs
from taskprune.testing import get_test_model, list_test_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(taskprune.__file__).resolve().parents[1]  # the checkout whose taskprune is under test

# Models where torch-pruning's own search finishes and every local index has one root (in espnet_like's position
# attention one index is reached from several roots, and which one a merge keeps depends on the visiting order).
COMPARED = [*list_test_models(kind="tiny"), "resnet_basic_like", "mobilenetv3_small_like", "densenet_like",
            "convnext_like",
            "vit_like", "deeplab_like", "fpn_shared_head", "yolov8_seg_like"]


def _items(graph: tp.DependencyGraph, group: tp.dependency.Group) -> set[tuple[str, str, frozenset]]:
    names = {m: n for n, m in graph.model.named_modules()} | graph._param_to_name
    return {(names.get(item.dep.target.module, item.dep.target.name), item.dep.handler.__name__,
             frozenset(zip(item.idxs, item.root_idxs, strict=True))) for item in group}


@pytest.mark.parametrize("name", COMPARED)
def test_groups_are_torch_prunings_groups(name):
    """Every group `prune` may cut holds the same (layer, pruning function, local index, root index) as
    torch-pruning's own search finds from the same root."""
    model, x = {name: get_test_model(name) for name in list_test_models()
                if name in list_test_models(kind="tiny") + list_test_models(kind="zoo")}[name]()
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    model, x = {name: get_test_model(name) for name in list_test_models()
                if name in list_test_models(kind="tiny") + list_test_models(kind="zoo")}[name]()
    theirs = tp.DependencyGraph().build_dependency(model, x, output_transform=flatten_outputs, verbose=False)
    modules = dict(model.named_modules())
    for module, handler in graph._roots:
        root = graph.names[module]
        idxs = list(range(graph.dg.get_out_channels(module)))
        # taskprune's conv and linear pruners extend torch-pruning's (a layer's own per-channel parameters):
        # start their search from their own function of the same name
        their_handler = getattr(theirs.get_pruner_of_module(modules[root]), handler.__name__)
        expected = _items(theirs, theirs.get_pruning_group(modules[root], their_handler, idxs))
        assert _items(graph.dg, graph.dg.get_pruning_group(module, handler, idxs)) == expected, root
    assert len(graph._roots) >= 3


_PSA_NET = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import torch
from torch import nn
torch.set_num_threads(1)
from taskprune.graph import PruningGraph
from taskprune.tasks import Tasks
from taskprune.testing.memory import peak_mb
from taskprune.testing.zoo_yolo11 import C2PSA

class PSANet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.SiLU())
        self.psa = C2PSA(32, num_heads=2)
        self.head = nn.Conv2d(32, 4, 1)

    def forward(self, x):
        return self.head(self.psa(self.stem(x)))

torch.manual_seed(0)
model, x = PSANet().eval(), torch.randn(1, 3, 8, 8)
graph = PruningGraph(model, x, Tasks.from_output(model(x)))
print("\\n".join(graph.warnings))
print("groups", len(graph.groups), "peak MB", int(peak_mb()))
"""


def test_attention_over_reshaped_positions_is_searched_with_bounded_work():
    """A C2PSA block (split, heads by `view`, matmul over positions, residual) on an 8x8 image. The old search
    ran out of a 3 GB address space within a minute here (its flatten mappings double the indices on every lap of a
    cycle); now the graph is read in well under a second and the attention's roots are kept whole with a reason."""
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(_PSA_NET)], capture_output=True, text=True,
                           timeout=120, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert child.returncode == 0, child.stderr[-2000:]
    assert "psa.m.0.attn.qkv.0: kept whole: torch-pruning's index mappings give channel index" in child.stdout
    assert int(child.stdout.split("peak MB")[1]) < 1500


class TwoBranches(nn.Module):
    """stem -> (a, b) -> concat -> head; `mid` after `a` gives a group the concat never sees."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.a_out = nn.Conv2d(16, 16, 1)
        self.b = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stem(x)
        return self.head(torch.cat([self.a_out(self.mid(self.a(features))), self.b(features)], 1))


def _two_branches() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return TwoBranches().eval(), torch.randn(1, 3, 16, 16)


def test_a_mapping_that_raises_costs_only_the_roots_that_reach_it(monkeypatch):
    """torch-pruning's concat mapping raises for b's slot: b is kept whole and named, the other groups prune.
    (The old search let the exception out of `prune`.)"""
    original = tp_index_mapping._ConcatIndexMapping.__call__

    def fails_for_b(self, idxs):
        if self.offset[0] == 16 and not self.reverse:
            raise IndexError("an unusual concat")
        return original(self, idxs)

    monkeypatch.setattr(tp_index_mapping._ConcatIndexMapping, "__call__", fails_for_b)
    model, x = _two_branches()
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    assert any(w.startswith("b.0: kept whole: torch-pruning's index mapping") and "IndexError" in w
               for w in result.report.warnings)
    assert result.model.b[0].out_channels == 16
    assert result.model.mid[0].out_channels < 16
    assert abs(result.report.reached - 0.3) <= 0.01


def test_a_mapping_update_that_raises_while_building_costs_only_its_node(monkeypatch):
    """torch-pruning's shape inference fails on the concat while the graph is built: the roots that reach the
    concat are kept whole, the stem and `mid` still prune. (The old build raised out of `prune`.)"""
    def fails(*args, **kwargs):
        raise KeyError("no shape")

    monkeypatch.setattr(tp.dependency.shape_infer, "infer_channels_between", fails)
    model, x = _two_branches()
    result = taskprune.prune(model, x, ratio=0.2, round_to=None, progress=False)
    whole = [w for w in result.report.warnings if "could not map channel indices through" in w]
    assert {w.split(":")[0] for w in whole} == {"a_out", "b.0"}
    assert result.model.mid[0].out_channels < 16 and result.model.b[0].out_channels == 16


def test_a_trace_that_fails_names_the_step(monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("unsupported op")

    monkeypatch.setattr(tp.DependencyGraph, "_trace", fails)
    model, x = _two_branches()
    with pytest.raises(RuntimeError, match="torch-pruning failed while tracing the forward of TwoBranches: "
                                           "RuntimeError: unsupported op"):
        taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)


def test_index_mappings_are_computed_once_per_graph_not_per_root(monkeypatch):
    calls = []
    original = tp_index_mapping.update_concat_index_mapping
    monkeypatch.setattr(tp_index_mapping, "update_concat_index_mapping",
                        lambda graph, node: calls.append(node) or original(graph, node))
    model, x = get_test_model("yolov8_seg_like")()
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    concats = [n for n in graph.dg.module2node.values() if n.type == tp.ops.OPTYPE.CONCAT]
    assert len(graph.groups) > 40
    assert len(calls) == len(concats)  # the old search refreshed every concat for every root: 988 calls here


def test_the_probe_prunes_copies_without_tracing_again(monkeypatch):
    """vit_like has two unsafe groups among six, so the probe bisects; the model is traced once (the old probe
    traced it again, and searched every group again, on every bisection step)."""
    traces = []
    original = tp.DependencyGraph._trace
    monkeypatch.setattr(tp.DependencyGraph, "_trace", lambda self, *a, **k: traces.append(1) or original(self, *a, **k))
    model, x = get_test_model("vit_like")()
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    assert sorted(g.layer for g in result.report.groups if g.note) == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    assert len(traces) == 1


def test_a_pruned_copy_leaves_the_graph_and_its_model_as_they_were():
    model, x = get_test_model("resnet_basic_like")()
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        expected = model(x)
    plan = {g.index: list(range(g.channels // 2)) for g in graph.groups if g.prunable}
    first = graph.copy()
    first.apply(plan)
    second = graph.copy()
    second.apply(plan)
    assert taskprune.graph.count_params(first.model) == taskprune.graph.count_params(second.model) \
        < taskprune.graph.count_params(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(x), expected)
    assert graph.history() == [] and len(first.history()) == len(plan)


def test_frozen_batchnorm_buffers_are_pruned_with_their_convs():
    """torchvision's FrozenBatchNorm2d keeps its terms in buffers; the old graph could not slice them, so every
    backbone group of the FCOS lookalike was kept whole and ratio=0.3 was out of reach."""
    model, x = get_test_model("fcos_like")()
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    pruned = result.model
    assert abs(result.report.reached - 0.3) <= 0.01
    assert pruned.layer3[0].conv1.out_channels < model.layer3[0].conv1.out_channels
    for conv, norm in ((pruned.layer3[0].conv1, pruned.layer3[0].bn1), (pruned.conv1, pruned.bn1)):
        assert all(b.shape == (conv.out_channels,) for b in norm.buffers())


def test_the_probe_copies_a_graph_whose_trace_filled_a_cache():
    """A LeViT-style attention-bias cache filled while tracing (autograd on) holds a non-leaf tensor: every probe
    copy failed with 'Only Tensors created explicitly by the user support the deepcopy protocol', so every group
    was kept whole and prune refused at 0%."""
    from taskprune.graph import find_unsafe_groups

    class CachedScale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.out = nn.Conv2d(8, 4, 1)
            self.scale = nn.Parameter(torch.ones(1))
            self.cache: dict[str, torch.Tensor] = {}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if "scale" not in self.cache:
                self.cache["scale"] = self.scale * 2
            return self.out(self.conv(x)) * self.cache["scale"]

    model, x = CachedScale().eval(), torch.randn(1, 3, 8, 8)
    graph = PruningGraph(model, x, Tasks.from_output(torch.zeros(1)))
    assert model.cache["scale"].grad_fn is not None, "the trace should have filled the cache with autograd on"
    trial = graph.copy()
    assert trial.model.cache["scale"].grad_fn is None
    assert find_unsafe_groups(graph, x, [g.root for g in graph.groups], {"output": (1, 4, 6, 6)}) == {}


class GainConv(nn.Conv2d):
    """A conv subclass with a gain of its own per output channel (weight standardisation's learnable gain)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 3, padding=1)
        self.gain = nn.Parameter(torch.rand(c_out, 1, 1, 1) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight * self.gain, self.bias, padding=1)


def test_a_layers_own_per_channel_parameter_is_sliced_with_its_channels():
    """torch-pruning slices a conv's weight and bias only: the gain kept 8 entries for 6 channels and the
    forward failed, so the probe kept every group whole and prune refused at 0%."""
    from taskprune.graph import replay_history

    model = nn.Sequential(GainConv(3, 8), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    graph = PruningGraph(model, x, Tasks.from_output(torch.zeros(1)))
    (group,) = graph.groups
    assert {s.param for s in group.slices} >= {"0.weight", "0.bias", "0.gain", "2.weight"}
    gain = model[0].gain.detach().clone()
    graph.apply({group.index: [1, 5]})
    kept = [0, 2, 3, 4, 6, 7]
    assert model[0].gain.shape == (6, 1, 1, 1) and torch.equal(model[0].gain.detach(), gain[kept])
    assert model(x).shape == (1, 4, 8, 8)
    fresh = nn.Sequential(GainConv(3, 8), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    replay_history(fresh, x, graph.history())  # what taskprune.load does
    assert fresh[0].gain.shape == (6, 1, 1, 1) and fresh(x).shape == (1, 4, 8, 8)
