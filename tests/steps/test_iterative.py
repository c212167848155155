"""Iterative pruning: cumulative budget, composed channel map, the callback between steps."""

from __future__ import annotations

import pytest
import torch

import taskprune


def test_schedule_reaches_the_last_ratio_and_calls_between(two_head):
    model, x = two_head
    calls = []
    # round_to=None: trunk.0 and trunk.3 lose channels in both steps, which is what the composed map is checked on
    result = taskprune.prune_iteratively(model, x, schedule=[0.2, 0.4], round_to=None, progress=False,
                                         between=lambda m, step: calls.append(step))
    assert calls == [0]
    params = sum(p.numel() for p in result.model.parameters())
    assert abs(1 - params / sum(p.numel() for p in model.parameters()) - 0.4) <= 0.015
    assert abs(result.report.reached - 0.4) <= 0.015
    assert result.report.params_before == sum(p.numel() for p in model.parameters())
    # the composed channel map indexes the ORIGINAL model: the pruned weights are slices of the original ones
    kept_out, kept_in = result.channel_map["trunk.3"], result.channel_map.get("trunk.0", list(range(16)))
    assert torch.equal(result.model.trunk[3].weight, model.trunk[3].weight[kept_out][:, kept_in])


@pytest.mark.parametrize("schedule", [[], [0.4, 0.2], [0.3, 1.2]])
def test_bad_schedule(two_head, schedule):
    model, x = two_head
    with pytest.raises(ValueError, match="schedule"):
        taskprune.prune_iteratively(model, x, schedule=schedule)


def test_a_latency_schedule_is_cumulative_against_the_original(two_head):
    """Each step's latency is measured against the model it prunes; the steps compose to the original's (here the
    stand-in device of tests/conftest.py, whose latency is its MACs)."""
    from taskprune import latency

    model, x = two_head
    result = taskprune.prune_iteratively(model, x, schedule=[0.2, 0.4], target="latency", round_to=None,
                                         progress=False)
    measured = 1 - latency.latency_ratios([model, result.model], x)[1]
    assert result.report.target == "latency" and result.report.reached == pytest.approx(measured, abs=1e-6)
    assert abs(measured - 0.4) <= 0.05 * 0.6 * 1.5  # two steps of at most 5% of the remaining latency each
