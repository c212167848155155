"""Contract tests for the models of taskprune.testing: they build, run, are finite, deterministic, traceable."""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

from taskprune import testing
from taskprune.tasks import call_model, flatten_outputs
from taskprune.testing import get_test_model, list_test_models, register_test_model, registered_model

ALL_SMALL = [(kind, name) for kind in ("tiny", "zoo") for name in list_test_models(kind=kind)]
ATTRIBUTION_CONVS = {"trunk.0", "trunk.3", "neck", "only_a", "only_b", "head_a", "head_b"}


def _run(model: nn.Module, example_inputs: object) -> object:
    with torch.no_grad():
        return call_model(model, example_inputs)


def _check_factory(factory: testing.ModelFactory) -> None:
    model, example_inputs = factory()
    assert isinstance(model, nn.Module)
    assert not model.training, "factories return models in eval mode"
    outputs = flatten_outputs(_run(model, example_inputs))
    assert outputs, "the model returned no tensors"
    for tensor in outputs:
        assert torch.isfinite(tensor).all()
    again_model, again_inputs = factory()
    for first, second in zip(flatten_outputs(again_inputs), flatten_outputs(example_inputs), strict=True):
        assert torch.equal(first, second)
    for first, second in zip(outputs, flatten_outputs(_run(again_model, again_inputs)), strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize(("kind", "name"), ALL_SMALL)
def test_factory_runs_finite_and_deterministic(kind: str, name: str) -> None:
    assert registered_model(name).kind == kind
    _check_factory(get_test_model(name))


@pytest.mark.parametrize("name", list_test_models(kind="tiny"))
def test_tiny_models_are_tiny(name: str) -> None:
    model, _ = get_test_model(name)()
    assert 2_000 <= sum(p.numel() for p in model.parameters()) <= 250_000


@pytest.mark.parametrize("name", list_test_models(kind="tiny"))
def test_batchnorm_is_not_at_its_defaults(name: str) -> None:
    model, _ = get_test_model(name)()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    for norm in norms:
        assert not torch.allclose(norm.weight, torch.ones_like(norm.weight))
        assert not torch.allclose(norm.running_var, torch.ones_like(norm.running_var))


def test_factories_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    get_test_model("yolo_seg")()
    assert torch.equal(torch.rand(3), expected)


def test_one_registry_keyed_by_function_name() -> None:
    assert list_test_models("yolo*", kind="tiny") == ["yolo_seg"]
    assert list_test_models("yolo*", kind="zoo") == ["yolo11_seg_like", "yolop_like", "yolov8_seg_like"]
    assert sorted(list_test_models()) == sorted(list_test_models(kind="tiny") + list_test_models(kind="zoo")
                                                + list_test_models(kind="large"))
    assert all(get_test_model(name).__name__ == name for name in list_test_models())
    with pytest.raises(ValueError, match="Unknown test model 'yolo_sge'; available: .*yolo_seg"):
        get_test_model("yolo_sge")
    with pytest.raises(ValueError, match="Unknown test model kind 'huge'; available: tiny, zoo, large"):
        list_test_models(kind="huge")
    with pytest.raises(ValueError, match="already registered"):
        register_test_model("tiny")(get_test_model("yolo_seg"))


def test_output_containers_cover_the_declared_kinds() -> None:
    kinds = {type(_run(*get_test_model(name)())).__name__ for name in list_test_models(kind="tiny")}
    assert {"tuple", "dict", "DrivingOutput", "DetSegOutput"} <= kinds


def test_attribution_answer_names_real_convs() -> None:
    model, example_inputs = get_test_model("attribution_net")()
    convs = {name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs == ATTRIBUTION_CONVS
    assert set(_run(model, example_inputs)) == {"a", "b"}


def _build_graph(model: nn.Module, example_inputs: object) -> tp.DependencyGraph:
    return tp.DependencyGraph().build_dependency(
        model, example_inputs=example_inputs, output_transform=flatten_outputs
    )


@pytest.mark.parametrize(("kind", "name"), ALL_SMALL)
def test_torch_pruning_builds_a_dependency_graph(kind: str, name: str) -> None:
    model, example_inputs = get_test_model(name)()
    graph = _build_graph(model, example_inputs)
    assert graph.module2node


# yolop_like's graph builds, but listing its groups does not finish in torch-pruning 1.6.1: the Detect head's
# eval decoding (slices of the last dim after a permute, a cat on dim -1, a view to [B, N, 5 + nc] and a cat of
# all levels on dim 1) sends DependencyGraph._fix_dependency_graph_non_recursive into a combinatorial walk.
# It stays in the zoo as a case the pruner must refuse clearly (or handle with a time limit).
# yolo11_seg_like: the flatten mappings torch-pruning puts around C2PSA's attention (a view to heads, split,
# transpose, matmul) form cycles that double the indices on every lap; its search grew past 20 GB here.
# raft_like: the same through its correlation lookup (a reshape of the flow to sampling points, grid_sample);
# the search had not finished after 5 minutes and held more than 5 GB.
GROUPS_HANG = {"yolop_like", "yolo11_seg_like", "yolo11n_seg", "raft_like"}


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, n in ALL_SMALL if n not in GROUPS_HANG])
def test_torch_pruning_lists_groups(kind: str, name: str) -> None:
    model, example_inputs = get_test_model(name)()
    assert len(list(_build_graph(model, example_inputs).get_all_groups())) > 0


def test_attribution_groups_match_the_answer() -> None:
    # Each conv of the answer must root a group of its own: the heads read the neck by concatenation, which
    # (unlike a residual add) does not couple channels across convs.
    model, example_inputs = get_test_model("attribution_net")()
    names = {module: name for name, module in model.named_modules()}
    roots = set()
    for group in _build_graph(model, example_inputs).get_all_groups():
        out_convs = {
            names[dep.target.module]
            for dep, _ in group
            if isinstance(dep.target.module, nn.Conv2d) and dep.handler.__name__ == "prune_out_channels"
        }
        assert len(out_convs) == 1
        roots |= out_convs
    assert roots == ATTRIBUTION_CONVS


def test_torch_pruning_alone_prunes_an_unreshaped_4d_head() -> None:
    # Why taskprune protects outputs: without ignored_layers, MetaPruner treats the detection head's conv like
    # any other and removes its output channels, silently changing the detection format.
    model, example_inputs = get_test_model("plain_det_seg")()
    det_before, _ = _run(model, example_inputs)
    pruner = tp.pruner.MetaPruner(
        model,
        example_inputs,
        importance=tp.importance.GroupMagnitudeImportance(),
        pruning_ratio=0.5,
        ignored_layers=[],
        output_transform=flatten_outputs,
    )
    pruner.step()
    det_after, _ = _run(model, example_inputs)
    assert det_before.shape[1] == 24
    assert det_after.shape[1] < det_before.shape[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", list_test_models(kind="large"))
def test_large_models(name: str) -> None:
    _check_factory(get_test_model(name))
    model, example_inputs = get_test_model(name)()
    graph = _build_graph(model, example_inputs)
    # fcos_resnet50_fpn: torch-pruning's own search from the head's output convs (views over every position of
    # five levels) took 350 s here; its groups are listed by tests/test_graph.py's and the benchmarks' prunes
    if name not in GROUPS_HANG | {"fcos_resnet50_fpn"}:
        assert len(list(graph.get_all_groups())) > 0


@pytest.mark.slow
def test_large_detectors_are_their_published_sizes() -> None:
    # torchvision's fcos_resnet50_fpn has 32.3M parameters; Ultralytics' YOLO11n-seg 2.9M
    fcos, x = get_test_model("fcos_resnet50_fpn")()
    assert 32_000_000 <= sum(p.numel() for p in fcos.parameters()) <= 32_500_000
    assert set(_run(fcos, x)) == {"cls_logits", "bbox_regression", "bbox_ctrness"}
    yolo, x = get_test_model("yolo11n_seg")()
    assert 2_800_000 <= sum(p.numel() for p in yolo.parameters()) <= 3_000_000
    detections, coefficients, protos = _run(yolo, x)
    assert tuple(x.shape) == (1, 3, 384, 640) and protos.shape == (1, 32, 96, 160)


@pytest.mark.slow
def test_resnet50_three_head_is_resnet50_sized() -> None:
    model, example_inputs = get_test_model("resnet50_three_head")()
    assert 23_000_000 <= model.backbone_parameters() <= 26_000_000
    assert tuple(example_inputs.shape) == (1, 3, 384, 640)
    det, drivable, lane = _run(model, example_inputs)
    assert det.dim() == 4
    assert drivable.shape[-2:] == lane.shape[-2:] == (384, 640)
