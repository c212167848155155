"""The cost model is exact, plans respect caps, reachable budgets are reached and the rest refused with a fix."""

from __future__ import annotations

import warnings

import pytest
import torch
from state_checks import snapshot, unchanged
from torch import nn

import taskprune
from taskprune import latency
from taskprune.budget import CostModel, UnreachableBudget, get_target, plan_pruning
from taskprune.graph import PruningGraph, count_params
from taskprune.tasks import Tasks
from taskprune.testing import get_test_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _params_cost(model: nn.Module, graph: PruningGraph) -> CostModel:
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    return CostModel(graph.groups, shapes, dict.fromkeys(shapes, 1.0), count_params(model), "params")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cost_model_predicts_params_exactly(two_head, seed):
    model, x = two_head
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    total = count_params(model)
    cost = CostModel(graph.groups, shapes, dict.fromkeys(shapes, 1.0), total, "params")
    generator = torch.Generator().manual_seed(seed)
    plan = {}
    for group in graph.groups:
        if not group.prunable:
            continue
        count = int(torch.randint(0, group.channels - 1, (1,), generator=generator))
        plan[group.index] = torch.randperm(group.channels, generator=generator)[:count].tolist()
        cost.removal(group.index, torch.tensor(plan[group.index], dtype=torch.long), commit=True)
    graph.apply(plan)
    assert cost.cost == count_params(model)


def test_plan_respects_caps_and_ratio(two_head):
    model, x = two_head
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    cost = CostModel(graph.groups, shapes, dict.fromkeys(shapes, 1.0), count_params(model), "params")
    scores = [torch.arange(g.channels, dtype=torch.float32) + 1 for g in graph.groups]
    plan = plan_pruning(graph.groups, scores, cost, 0.3, max_layer_ratio=0.6, round_to=2)
    assert abs(cost.reduction() - 0.3) <= 0.01
    for group in graph.groups:
        removed = plan.get(group.index, [])
        kept = group.channels - len(removed)
        assert len(removed) <= 0.6 * group.channels
        if removed:
            assert kept % 2 == 0
            # least important first: the removed ones are the lowest-scored indices
            assert sorted(removed) == list(range(len(removed)))


@pytest.mark.parametrize("name", ["vit_like", "convnext_like", "two_task_vit"])
def test_cost_model_counts_bare_parameters_exactly(name):
    """Class tokens, position embeddings and layer scales are pruned with their group: the cost model must see
    them shrink (it did not, and vit_like at ratio=0.6 removed 62.7% of its parameters)."""
    model, x = get_test_model(name)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch-pruning announces the unwrapped parameters
        graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    bare = {n for n, p in model.named_parameters() if "." not in n or n.endswith("gamma")}
    owning = [g for g in graph.groups if {piece.param for piece in g.slices} & bare]
    assert owning, "no group owns a bare parameter: nothing is tested"
    cost = _params_cost(model, graph)
    generator = torch.Generator().manual_seed(0)
    plan = {}
    for group in owning:
        plan[group.index] = torch.randperm(group.channels, generator=generator)[:group.channels // 3].tolist()
        cost.removal(group.index, torch.tensor(plan[group.index], dtype=torch.long), commit=True)
    graph.apply(plan)
    assert cost.cost == count_params(model)


def _two_coupled_groups() -> tuple[nn.Module, torch.Tensor]:
    """Two groups whose costs are coupled (the second layer's input is the first one's output): few plans."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 13, 3, padding=1), nn.BatchNorm2d(13), nn.ReLU(),
                          nn.Conv2d(13, 31, 3, padding=1), nn.BatchNorm2d(31), nn.ReLU(), nn.Conv2d(31, 4, 1))
    return model.eval(), torch.randn(1, 3, 8, 8)


def test_planner_finds_a_plan_whenever_one_exists():
    """Every ratio some plan reaches within the planner's tolerance (by brute force over the two groups' step
    counts) is planned; the others are refused. Greedy steps and single swaps refused 15 of the 79 reachable
    ratios from 0.01 to 0.79 (at 0.07: 8.8% planned where 7.3% was there)."""
    model, x = _two_coupled_groups()
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    scores = [torch.arange(g.channels, dtype=torch.float32) + 1 for g in graph.groups]
    first, second = graph.groups
    reachable = set()
    for count in range(int(0.8 * first.channels) + 1):
        cost = _params_cost(model, graph)
        cost.removal(first.index, torch.arange(count), commit=True)
        reachable |= {cost.reduction(cost.removal(second.index, torch.arange(other)))
                      for other in range(int(0.8 * second.channels) + 1)}
    planned = refused = 0
    for ratio in [r / 100 for r in range(1, 80, 2)]:
        exists = any(abs(r - ratio) <= 0.009 for r in reachable)
        cost = _params_cost(model, graph)
        try:
            plan_pruning(graph.groups, scores, cost, ratio, max_layer_ratio=0.8, round_to=None)
        except UnreachableBudget as refused_error:
            assert not exists, f"ratio {ratio}: refused ({refused_error}) but a plan exists"
            refused += 1
        else:
            assert abs(cost.reduction() - ratio) <= 0.009
            planned += 1
    assert planned and refused  # both outcomes are exercised


def test_a_plan_in_coarse_steps_is_also_found_in_finer_steps():
    """Any plan in steps of 32 is a plan in steps of 16 and 8. On the two-task ViT at 0.6 the greedy in steps of
    16 stopped short (the embedding's next step overshoots by 10 points) and refused."""
    model, x = get_test_model("two_task_vit")()
    coarse = taskprune.prune(model, x, ratio=0.6, round_to=32, progress=False)
    assert abs(coarse.report.reached - 0.6) <= 0.01
    for step in (16, 8):
        finer = taskprune.prune(model, x, ratio=0.6, round_to=step, progress=False)
        assert abs(finer.report.reached - 0.6) <= 0.01 and finer.report.round_to == step


@pytest.mark.parametrize("alignment", [16, 32])
def test_vit_with_bare_parameters_meets_the_budget_by_default(alignment):
    """The issue's ViT: embedding 128, class token and position embedding, four blocks, two task heads, ratio 0.6
    with the default round_to, on a device whose probe says 16 or 32 (it overshot to 62.8%)."""
    model, x = get_test_model("two_task_vit")()
    with latency.override(alignment=alignment):
        result = taskprune.prune(model, x, ratio=0.6, progress=False)
    report = result.report
    assert abs(report.reached - 0.6) <= 0.01
    assert abs(1 - count_params(result.model) / count_params(model) - 0.6) <= 0.01
    assert alignment % report.round_to == 0
    assert any(f"round_to='auto': steps of {report.round_to} were used; this device runs multiples of "
               f"{alignment} channels fastest (" in n for n in report.notes), report.notes
    assert not any("round_to" in w for w in report.warnings), report.warnings  # a choice, not a warning
    assert all(g.after % report.round_to == 0 for g in report.groups if g.after != g.before)


def test_auto_says_which_multiple_it_fell_back_to_and_why(two_head, injected_alignment):
    """In steps of 16 the two-head model cannot lose 20% (its groups have 8 to 32 channels): auto falls back, and
    the report says to what and why."""
    model, x = two_head
    assert latency.device_alignment() == injected_alignment == 16
    report = taskprune.prune(model, x, ratio=0.2, progress=False).report
    assert abs(report.reached - 0.2) <= 0.01 and report.round_to == 8
    assert any("steps of 8 were used; this device runs multiples of 16 channels fastest (no plan in steps of 16 "
               "removes 20.0% of params: the closest, in steps of 16, removes" in n for n in report.notes), \
        report.notes
    assert report.warnings == []  # auto's fallback is what "auto" means: the user's request was met
    assert ("channel multiple", "8") in report.summary_rows()


def test_auto_refuses_only_after_every_multiple_and_names_the_fix(two_head):
    model, x = two_head
    with pytest.raises(UnreachableBudget) as refused:
        taskprune.prune(model, x, ratio=0.6, max_layer_ratio=0.1, progress=False)
    message = str(refused.value)
    assert "round_to='auto' tried steps of 16, 8, 4, 2, 1 and none meets the budget" in message
    assert (f"lower ratio to {refused.value.closest:.3f}"[:-1] in message
            and "raise max_layer_ratio (now 0.1)" in message)
    assert refused.value.round_to == 1 and refused.value.closest < 0.6


def test_a_measured_miss_is_refused_not_returned(monkeypatch):
    """The rule for every target: a result outside the promise is not returned. With bare parameters left out of
    the cost model (the old bug), vit_like at 0.6 measured 62.7%: prune raises and the model is untouched."""
    model, x = get_test_model("vit_like")()
    before = snapshot(model)
    params = get_target("params")
    original = params.cost_model

    def without_bare_parameters(groups, profile):  # the seam prune builds its cost model by: the target's
        for group in groups:
            group.slices = tuple(piece for piece in group.slices if "." in piece.param)
        return original(groups, profile)

    monkeypatch.setattr(params, "cost_model", without_bare_parameters)
    with pytest.raises(UnreachableBudget, match=r"measured params reduction 6\d\.\d% misses the requested 60\.0% .*"
                                                r"please report it\); ask for ratio=0\.5"):
        taskprune.prune(model, x, ratio=0.6, round_to=None, progress=False)
    assert unchanged(model, before)


def test_scores_a_criterion_normalised_itself_are_used_as_they_are(two_head):
    """Per group, a constant factor on one group's scores cancels (each group is divided by its mean); with
    per_group=False the group scored lower loses more channels."""
    model, x = two_head
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    target = min((g for g in graph.groups if g.prunable), key=lambda g: g.channels)

    def removed(scale: float, per_group: bool) -> dict[int, int]:
        scores = [torch.linspace(1, 2, g.channels) * (scale if g is target else 1.0) for g in graph.groups]
        plan = plan_pruning(graph.groups, scores, _params_cost(model, graph), 0.3, max_layer_ratio=0.9,
                            round_to=None, per_group=per_group)
        return {g.index: len(plan.get(g.index, [])) for g in graph.groups}

    assert removed(0.25, per_group=True) == removed(1.0, per_group=True)
    quarter, same = removed(0.25, per_group=False), removed(1.0, per_group=False)
    assert quarter[target.index] > same[target.index]
    assert sum(quarter.values()) - quarter[target.index] < sum(same.values()) - same[target.index]
