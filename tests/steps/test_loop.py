"""The step loop both prune_iteratively and prune_within use: ratios against the original model, composed channel
maps and histories, one report spanning every step."""

from __future__ import annotations

import pytest
from torch import nn

from taskprune import PruneReport, PruneResult
from taskprune.steps import Steps, compose_channel_maps


def _step(reached: float, channel_map: dict[str, list[int]], history: list[list[object]], params: int,
          model: nn.Module | None = None) -> PruneResult:
    report = PruneReport(criterion="magnitude", target="params", ratio=reached, reached=reached,
                         params_before=params, params_after=int(params * (1 - reached)), macs_before=2 * params,
                         macs_after=int(2 * params * (1 - reached)))
    return PruneResult(model=model or nn.Linear(1, 1), report=report, history=history, channel_map=channel_map,
                       example_inputs=("as pruned",))


def test_compose_channel_maps():
    assert compose_channel_maps({"a": [1, 3, 5, 7]}, {"a": [0, 2], "b": [4]}) == {"a": [1, 5], "b": [4]}


def test_the_first_step_prunes_the_ratio_as_asked_and_later_ones_convert_it():
    steps = Steps(nn.Linear(1, 1))
    assert steps.step_ratio(0.3) == 0.3  # exactly: 1 - (1 - 0.3) would be 0.30000000000000004
    steps = steps.then(_step(0.2, {}, [], 1000))
    assert steps.reached == 0.2
    assert steps.step_ratio(0.6) == pytest.approx(0.5)  # 0.8 * (1 - 0.5) leaves 0.4 of the original


def test_steps_compose_reductions_maps_and_histories_and_report_against_the_original():
    first = _step(0.2, {"conv": [0, 2, 3, 5], "head": [1]}, [["conv", True, [1, 4]]], params=1000)
    recovered = nn.Linear(2, 2)
    steps = Steps(nn.Linear(1, 1)).then(first, model=recovered)
    assert steps.model is recovered and steps.taken == 1
    last = _step(0.5, {"conv": [1, 3]}, [["conv", True, [0, 2]]], params=800)
    steps = steps.then(last)
    assert steps.reached == pytest.approx(0.6)
    assert steps.channel_map == {"conv": [2, 5], "head": [1]}
    assert steps.history == [["conv", True, [1, 4]], ["conv", True, [0, 2]]]
    assert first.history == [["conv", True, [1, 4]]]  # the steps' own results are left as they were

    combined = steps.result(last, ratio=0.6)
    assert combined.model is last.model and combined.channel_map == steps.channel_map
    assert combined.report.ratio == 0.6 and combined.report.reached == steps.reached
    assert (combined.report.params_before, combined.report.macs_before) == (1000, 2000)  # the original's size
    assert combined.report.params_after == last.report.params_after
    assert combined.example_inputs == ("as pruned",)


def test_a_given_original_size_and_a_resumed_result_are_kept():
    steps = Steps(nn.Linear(1, 1), params_before=5000, macs_before=7000).then(_step(0.1, {}, [], params=4000))
    assert (steps.params_before, steps.macs_before) == (5000, 7000)
    resumed = Steps.resumed(steps.result(_step(0.1, {}, [], params=4000), ratio=0.1))
    assert resumed.taken == 1 and resumed.params_before == 5000
    assert resumed.step_ratio(0.55) == pytest.approx(0.5)


def test_a_result_needs_a_step():
    with pytest.raises(ValueError, match="at least one step"):
        Steps(nn.Linear(1, 1)).result(_step(0.1, {}, [], 10), ratio=0.1)
