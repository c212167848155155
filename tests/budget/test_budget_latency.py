"""The latency knapsack and the latency model over a table (HALP): optimal against brute force, widths read right.

Nothing here asserts on a measured time: tables are synthetic or injected."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from latency_models import _misaligned_table, _predicted, wide_model
from torch import nn

from taskprune import latency
from taskprune.budget import LatencyModel, plan_latency
from taskprune.graph import PruningGraph
from taskprune.groups import ChannelGroup, ParamSlice
from taskprune.latency import LatencyTable, LayerLatency
from taskprune.tasks import Tasks


@pytest.fixture
def wide() -> tuple[nn.Module, torch.Tensor]:
    return wide_model()


def _independent_groups(slopes: list[float], channels: int = 64) -> tuple[list[ChannelGroup], LatencyTable]:
    """One norm layer per group, its latency linear in its width with the given slope per channel."""
    groups, layers = [], {}
    counts = tuple(range(1, channels + 1))
    for index, slope in enumerate(slopes):
        name = f"layer{index}"
        idx = torch.arange(channels)
        groups.append(ChannelGroup(index, name, channels, (name,), (), (ParamSlice(f"{name}.weight", 0, idx, idx),)))
        layers[name] = LayerLatency("norm", slope * channels, channels, channels, out_counts=counts,
                                    out_times=tuple(float(c) for c in counts))
    return groups, LatencyTable(total=1.0, alignment=1, layers=layers)


@pytest.mark.parametrize("fraction", [0.75, 0.5, 0.3125])
def test_latency_solver_matches_brute_force_optimum(fraction):
    slopes = [4.0, 1.0, 2.0]
    groups, table = _independent_groups(slopes)
    generator = torch.Generator().manual_seed(0)
    scores = [torch.rand(64, generator=generator) * (i + 1) for i in range(3)]
    step = 16
    plan = plan_latency(groups, scores, LatencyModel(groups, table), fraction, max_layer_ratio=0.75, round_to=step)

    normalised = [s / s.mean() for s in scores]
    order = [torch.argsort(n, stable=True) for n in normalised]
    dense = sum(s * 64 for s in slopes)
    best = math.inf
    for removed in itertools.product(range(0, 49, step), repeat=3):  # max_layer_ratio 0.75: at most 48 of 64
        time = sum(s * (64 - r) for s, r in zip(slopes, removed, strict=True))
        if time <= fraction * dense + 1e-9:
            lost = sum(float(n[o[:r]].sum()) for n, o, r in zip(normalised, order, removed, strict=True))
            best = min(best, lost)
    lost = sum(float(normalised[i][torch.tensor(c)].sum()) for i, c in plan.items())
    assert lost == pytest.approx(best)
    assert LatencyModel(groups, table).predict(plan) <= fraction + 1e-9


def test_latency_solver_compares_gradient_scores_across_groups():
    """Per-group normalisation makes every group's average channel worth the same; gradient criteria (estimates of
    the loss change) keep the difference: a group whose channels all matter less goes first."""
    groups, table = _independent_groups([1.0, 1.0])
    scores = [torch.linspace(5.0, 15.0, 64), torch.ones(64)]  # group 0 matters 10x more, but varies inside
    for comparable, emptied in [(False, 0), (True, 1)]:
        plan = plan_latency(groups, scores, LatencyModel(groups, table), 0.75, max_layer_ratio=0.75, round_to=16,
                            comparable=comparable)
        assert list(plan) == [emptied] and len(plan[emptied]) == 32


def test_latency_model_multiplies_input_and_output_widths(wide):
    model, x = wide
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    table = _misaligned_table(model)
    predictor = LatencyModel(graph.groups, table)
    plan = {g.index: list(range(g.channels // 2)) for g in graph.groups if g.prunable}
    graph.apply(plan)
    assert predictor.predict(plan) * predictor.dense == pytest.approx(_predicted(table, model))


def test_latency_model_reads_transposed_convolutions_the_other_way_round():
    """A ConvTranspose2d weight is [in, out, kh, kw]: the group of its outputs narrows its output side."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.ConvTranspose2d(8, 6, 2, stride=2), nn.ReLU(),
                          nn.Conv2d(6, 2, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    graph = PruningGraph(model, x, Tasks.from_output(model(x)))
    table = latency.macs_table(model, x)
    predictor = LatencyModel(graph.groups, table)
    plan = {g.index: list(range(g.channels - 1)) for g in graph.groups if g.prunable}  # all but one channel
    predicted = predictor.predict(plan) * predictor.dense
    graph.apply(plan)
    expected = sum(layer.base * m.in_channels / layer.in_full * m.out_channels / layer.out_full
                   for name, layer in table.layers.items() for m in [dict(model.named_modules())[name]])
    assert model[2].in_channels == 1 and model[2].out_channels == 1
    assert predicted == pytest.approx(expected)

