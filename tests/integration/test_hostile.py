"""Hostile input: random small conv graphs x random (sometimes invalid) arguments to `prune`.

The property: `prune` either returns a model that runs, keeps every output's shape and meets the budget
within one point (and the caps it was given), or raises ValueError / TypeError / RuntimeError with a message.
Either way the caller's model is untouched. Runs are derandomized (no example database), so the same command
on the same tree sees the same examples. Hypothesis also mixes literal constants of the loaded local modules
into its choices, so running this file alone and within the whole suite gives different (each fixed) examples.
The outcome counts are printed at the end of the module.
"""

from __future__ import annotations

import fnmatch
import math
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from random_graphs import BLOCK_KINDS, HEAD_KINDS, build, graph_specs
from reachable import reach
from state_checks import snapshot, unchanged
from torch import nn

import taskprune
from taskprune.budget import UnreachableBudget
from taskprune.saving import load, save
from taskprune.tasks import call_model, output_leaves

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OUTCOMES: dict[str, Counter[str]] = {}
ALLOWED = (ValueError, TypeError, RuntimeError)
# Examples per test: sized so this file runs in under a minute on the shared 2-core machine (on one thread).
EXAMPLES = 300
ROUND_TRIP_EXAMPLES = 60
# A failure is shrunk to a small spec (hypothesis prints it; `build(spec)` rebuilds the model); shrinking
# takes a minute or two, and only when something fails.
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])



VALID = {
    "ratio": st.floats(0.05, 0.6),
    "target": st.sampled_from(["params", "macs", "channels"]),
    "importance": st.sampled_from(["magnitude", "random"]),
    "round_to": st.one_of(st.none(), st.integers(1, 8)),  # not "auto": it times layers on the device
    "max_layer_ratio": st.floats(0.3, 1.0),
    "seed": st.integers(0, 1000),
}
HOSTILE = {
    "ratio": [0, 1, -0.1, 1.5, math.nan, math.inf, True, "0.3", None],
    "target": ["flops", "", "PARAMS", None, 3],
    "importance": ["tylor", "", None, 3, ("magnitude",)],
    "round_to": [0, -1, 2.5, True, "8"],
    "max_layer_ratio": [0, 1.5, -0.2, math.nan, True],
}


@st.composite
def prune_arguments(draw) -> dict:
    """Valid keyword arguments, except that about one example in five has one hostile value."""
    kwargs = {name: draw(strategy, label=name) for name, strategy in VALID.items()}
    # listed first, so examples shrink towards valid arguments
    hostile = draw(st.sampled_from([*[None] * 20, *HOSTILE]), label="hostile argument")
    if hostile is not None:
        kwargs[hostile] = draw(st.sampled_from(HOSTILE[hostile]), label=f"hostile {hostile}")
    return kwargs


@st.composite
def _protect_patterns(draw, model: torch.nn.Module):
    """Nothing, one or two names or globs, a bare string, or (rarely) a hostile value."""
    names = [n for n, _ in model.named_modules() if n]
    kind = draw(st.sampled_from(["none", "none", "none", "list", "list", "list", "str", "str", "hostile"]))
    if kind == "list":
        patterns = st.sampled_from(names + ["heads.*", "blocks.0*", "stem.*", "*.0"])
        return tuple(draw(st.lists(patterns, min_size=1, max_size=2)))
    if kind == "str":
        return draw(st.sampled_from(names))
    if kind == "hostile":
        return draw(st.sampled_from([("no_such_layer*",), [3], (None,)]))
    return ()


def _record(test: str, outcome: str) -> None:
    OUTCOMES.setdefault(test, Counter())[outcome] += 1
    event(outcome)


def _out_channels(module: torch.nn.Module) -> int | None:
    return getattr(module, "out_channels", None) or getattr(module, "out_features", None)


def _check_pruned(model, result, example, kwargs, protect) -> str:
    """Everything a returned result promises; returns the outcome to record."""
    assert result.model is not model
    expected = {k: t.shape for k, t in output_leaves(call_model(model, example))}
    for inputs in (example, torch.randn_like(example)):
        with torch.no_grad():
            outputs = output_leaves(call_model(result.model.eval(), inputs))
        assert {k: t.shape for k, t in outputs} == expected
        assert all(torch.isfinite(t).all() for _, t in outputs)
    ratio, target = kwargs["ratio"], kwargs["target"]
    if target == "params":
        before = sum(p.numel() for p in model.parameters())
        after = sum(p.numel() for p in result.model.parameters())
        assert abs((1 - after / before) - ratio) <= 0.01, (1 - after / before, ratio)
    assert abs(result.report.reached - ratio) <= 0.01, (result.report.reached, ratio, target)
    for group in result.report.groups:
        if group.after != group.before:
            assert group.before - group.after <= math.floor(kwargs["max_layer_ratio"] * group.before), group
            if kwargs["round_to"]:
                assert group.after % kwargs["round_to"] == 0, group
    patterns = (protect,) if isinstance(protect, str) else protect
    pruned_modules = dict(result.model.named_modules())
    for name, module in model.named_modules():
        if name and any(fnmatch.fnmatchcase(name, p) for p in patterns) and _out_channels(module):
            assert _out_channels(pruned_modules[name]) == _out_channels(module), f"{name} is protected"
    return "pruned"


def _valid(kwargs: dict) -> bool:
    """Whether every argument was drawn from VALID (not replaced by a hostile value)."""
    round_to, layer = kwargs["round_to"], kwargs["max_layer_ratio"]
    return (type(kwargs["ratio"]) is float and 0.05 <= kwargs["ratio"] <= 0.6
            and kwargs["target"] in ("params", "macs", "channels") and kwargs["importance"] in ("magnitude", "random")
            and (round_to is None or (type(round_to) is int and 1 <= round_to <= 8))
            and type(layer) is float and 0.3 <= layer <= 1.0)


def _check_refusal(model, example, kwargs, protect, wrong_input, error) -> str:
    """A refusal of valid arguments is right only when the budget is out of reach; returns the outcome. (For the
    MACs target the largest step is not computed here, so its refusals are counted, not checked.)"""
    if wrong_input or not _valid(kwargs) or not isinstance(error, UnreachableBudget):
        return f"raised {type(error).__name__}"
    if kwargs["target"] == "macs":
        return "refused: macs (not checked)"
    within = reach(model, example, kwargs["target"], kwargs["max_layer_ratio"], kwargs["round_to"], protect)
    assert not within.covers(kwargs["ratio"]), (
        f"refused a reachable request: {error} (reachable up to {within.maximum:.1%}, largest step "
        f"{within.step:.1%})")
    return "refused: out of reach"


@SETTINGS
@given(spec=graph_specs(), kwargs=prune_arguments(), data=st.data())
def test_prune_returns_a_working_model_or_a_clear_error(spec, kwargs, data):
    model, example = build(spec)
    protect = data.draw(_protect_patterns(model), label="protect")
    # rarely, example inputs the model cannot take (one channel too many): prune must refuse them
    wrong_input = data.draw(st.sampled_from([*[False] * 15, True]), label="wrong input")
    inputs = torch.randn(1, example.shape[1] + 1, *example.shape[2:]) if wrong_input else example
    before = snapshot(model)
    try:
        result = taskprune.prune(model, inputs, protect=protect, progress=False, **kwargs)
    except ALLOWED as error:
        assert str(error).strip(), f"{type(error).__name__} without a message"
        _record("prune", _check_refusal(model, example, kwargs, protect, wrong_input, error))
    else:
        assert not wrong_input, "prune accepted inputs the model cannot take"
        _record("prune", _check_pruned(model, result, example, kwargs, protect))
    assert unchanged(model, before), "prune changed the caller's model"


@settings(SETTINGS, max_examples=ROUND_TRIP_EXAMPLES)
@given(spec=graph_specs(), ratio=st.floats(0.05, 0.6), target=st.sampled_from(["params", "macs", "channels"]))
def test_save_load_round_trip_on_random_graphs(tmp_path_factory, spec, ratio, target):
    model, example = build(spec)
    try:
        result = taskprune.prune(model, example, ratio=ratio, target=target, round_to=None, progress=False)
    except ALLOWED:
        _record("save/load", "prune raised")
        return
    path = tmp_path_factory.mktemp("io") / "pruned.pt"
    save(result, path, example_inputs=example)
    loaded = load(path, build(spec)[0])
    with torch.no_grad():
        expected = output_leaves(call_model(result.model.eval(), example))
        got = output_leaves(call_model(loaded.eval(), example))
    assert [k for k, _ in got] == [k for k, _ in expected]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(expected, got, strict=True))
    _record("save/load", "round trip exact")


class DeadBranchNet(nn.Module):
    """Two heads off a tiny trunk, plus a conv whose output is computed and never used (a dead branch)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(1, 2, 3)
        self.block = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())
        self.unused = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())
        self.head_a = nn.Sequential(_conv_bn_relu(2, 2, 3), nn.Conv2d(2, 1, 1))
        self.head_b = nn.Sequential(_conv_bn_relu(2, 2, 3), nn.Conv2d(2, 1, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stem = self.stem(x)
        block = self.block(stem)
        self.unused(block)
        return {"a": self.head_a(stem), "b": self.head_b(block)}


def _conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())


def test_macs_target_is_met_or_refused_with_parameter_free_layers():
    """Regression, found by the random graphs: the MACs plan left out the ReLUs' MACs and missed by 1.5 points
    (reached 0.515 for 0.5) without saying so."""
    torch.manual_seed(0)
    model, x = DeadBranchNet().eval(), torch.randn(1, 1, 16, 16)
    try:
        result = taskprune.prune(model, x, ratio=0.5, target="macs", max_layer_ratio=1.0, round_to=None,
                                 progress=False)
    except ValueError:
        return  # saying why not is also keeping the promise
    assert abs(result.report.reached - 0.5) <= 0.01, result.report.reached


def test_macs_target_with_two_pooled_heads_and_residual_adds():
    """Regression, found by the random graphs: 51.2% of MACs removed for 50% (parameter-free adds of a residual
    and a fuse, global pooling, depthwise convolutions)."""
    spec = {"in_channels": 1, "size": [16, 16], "stem": 4,
            "blocks": [{"kind": "residual", "width": 3, "width_b": 3, "kernel": 1, "stride": 1, "bn": False,
                        "add": False, "source": 0},
                       {"kind": "fuse", "width": 3, "width_b": 3, "kernel": 1, "stride": 1, "bn": False,
                        "add": True, "source": 0},
                       {"kind": "conv", "width": 16, "width_b": 3, "kernel": 1, "stride": 1, "bn": False,
                        "add": False, "source": 0},
                       {"kind": "depthwise", "width": 8, "width_b": 3, "kernel": 1, "stride": 1, "bn": False,
                        "add": False, "source": 0},
                       {"kind": "fuse", "width": 3, "width_b": 3, "kernel": 1, "stride": 1, "bn": False,
                        "add": False, "source": 0}],
            "heads": [{"kind": "cls", "outputs": 1, "hidden": 3, "source": 0},
                      {"kind": "cls", "outputs": 1, "hidden": 3, "source": 5}],
            "output": "dict", "seed": 0}
    model, x = build(spec)
    result = taskprune.prune(model, x, ratio=0.5, target="macs", round_to=2, max_layer_ratio=1.0, progress=False)
    assert abs(result.report.reached - 0.5) <= 0.01, result.report.reached


def test_generator_covers_every_block_and_head_kind():
    """The random graphs are not trivially alike: every block kind, head kind and output format is built."""
    seen: Counter[str] = Counter()

    @settings(max_examples=60, derandomize=True, database=None, deadline=None)
    @given(spec=graph_specs())
    def collect(spec):
        model, example = build(spec)
        output = model(example)
        seen.update(block["kind"] for block in spec["blocks"])
        seen.update(head["kind"] for head in spec["heads"])
        seen[type(output).__name__] += 1
        assert len(output_leaves(output)) == len(spec["heads"])

    collect()
    kinds = {*BLOCK_KINDS, *HEAD_KINDS, "dict", "tuple", "Tensor"}
    assert kinds <= set(seen), kinds - set(seen)



@pytest.fixture(scope="module", autouse=True)
def _report_outcomes(request):
    """Print how many examples each property test tried and how they ended, even when output is captured."""
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for test, counts in OUTCOMES.items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            print(f"\nhostile {test}: {sum(counts.values())} examples: {outcomes}")
