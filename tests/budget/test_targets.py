"""Budget targets: a registry by name, and everything prune() knows about a target comes from its `Target`."""

from __future__ import annotations

import pytest
import torch

import taskprune
from taskprune.budget import (
    TARGETS,
    ChannelCount,
    CostModel,
    Outcome,
    Target,
    UnreachableBudget,
    get_target,
    list_targets,
    register_target,
    unregister_target,
)
from taskprune.budget.targets import ParamsTarget
from taskprune.groups import ChannelGroup


def _groups() -> list[ChannelGroup]:
    """Two groups of 8 and 24 channels."""
    return [ChannelGroup(index=i, layer=name, channels=n, out_layers=(name,), in_layers=(), slices=())
            for i, (name, n) in enumerate((("a", 8), ("b", 24)))]


def test_the_builtin_targets_in_the_order_the_errors_list_them():
    assert TARGETS == ("params", "macs", "channels", "latency")
    assert list_targets() == list(TARGETS)
    assert list_targets("*s") == ["params", "macs", "channels"]
    assert [get_target(n).name for n in TARGETS] == list(TARGETS)
    assert [get_target(n).timed for n in TARGETS] == [False, False, False, True]
    assert [get_target(n).counted for n in TARGETS] == [False, True, False, False]
    with pytest.raises(ValueError, match="Unknown target 'flops'; available: params, macs, channels, latency"):
        get_target("flops")
    with pytest.raises(ValueError, match=r"Unknown target \['params'\]; available: params"):
        get_target(["params"])  # type: ignore[arg-type]


def test_what_each_target_measures():
    groups = _groups()
    outcome = Outcome(params_before=1000, params_after=600, macs_before=5000, macs_after=4000, groups=groups,
                      removals={0: [0, 1], 1: [3, 4, 5, 6, 7, 8]})
    assert get_target("params").reduction(outcome) == pytest.approx(0.4)
    assert get_target("macs").reduction(outcome) == pytest.approx(0.2)
    assert get_target("channels").reduction(outcome) == pytest.approx(8 / 32)
    with pytest.raises(ValueError, match="measured while planning"):
        get_target("latency").reduction(outcome)
    assert get_target("params").misses(0.3, 0.311) and not get_target("params").misses(0.3, 0.309)
    assert not get_target("latency").misses(0.3, 0.9)  # refused while planning, on its measurements


def test_channel_count_counts_channels():
    groups = _groups()
    cost = ChannelCount(groups)
    assert cost.removal(1, torch.arange(4)) == 4.0 and cost.reduction() == 0.0  # asked, not committed
    cost.removal(1, torch.arange(4), commit=True)
    assert cost.reduction() == pytest.approx(4 / 32) and cost.reduction(4.0) == pytest.approx(8 / 32)
    cost.removal(1, torch.arange(2), commit=True, restore=True)
    assert cost.reduction() == pytest.approx(2 / 32) and cost.target == "channels"


def test_a_new_target_is_one_class_and_one_registration(two_head):
    model, x = two_head

    @register_target
    class Weights(ParamsTarget):
        name = "weights"

    try:
        assert "weights" in list_targets()
        with pytest.raises(ValueError, match="available: params, macs, channels, latency, weights"):
            taskprune.prune(model, x, ratio=0.3, target="flops", progress=False)
        ours = taskprune.prune(model, x, ratio=0.3, target="weights", round_to=None, progress=False)
        params = taskprune.prune(model, x, ratio=0.3, target="params", round_to=None, progress=False)
        assert ours.channel_map == params.channel_map and ours.report.target == "weights"
        register_target(Weights)  # the same class again is no conflict
        with pytest.raises(ValueError, match="a target named 'weights' is already registered"):
            register_target(type("Other", (ParamsTarget,), {"name": "weights"}))
    finally:
        unregister_target("weights")  # the registry is global: leave it as other tests expect
    assert list_targets() == list(TARGETS)
    with pytest.raises(ValueError, match="Unknown target 'weights'; available: params"):
        unregister_target("weights")
    with pytest.raises(ValueError, match="target class Nameless needs a name"):
        register_target(type("Nameless", (Target,), {}))


def test_prune_plans_and_checks_with_the_targets_cost_model_tolerance_and_message(two_head):
    """A target whose cost model prices every parameter at half its size plans for twice the request: prune
    measures it (params, as the target says), finds it outside the target's tolerance, and refuses with the
    target's name and reason."""
    model, x = two_head

    @register_target
    class HalfPriced(ParamsTarget):
        name = "half_priced"
        tolerance = 0.001
        miss = "this target prices parameters at half"

        def cost_model(self, groups, profile):
            rates = dict.fromkeys(profile.shapes, 0.5)
            return CostModel(groups, profile.shapes, rates, profile.params, self.name)

    try:
        with pytest.raises(UnreachableBudget, match=r"measured half_priced reduction .* misses the requested 20\.0% "
                                                    r"by more than a point \(this target prices parameters at half\)"):
            taskprune.prune(model, x, ratio=0.2, target="half_priced", round_to=None, progress=False)
    finally:
        unregister_target("half_priced")
