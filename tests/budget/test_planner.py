"""The planner: round_to="auto" and its fallbacks, the measured latency passes, one rule for a miss.

Nothing here asserts on a measured time: tables are synthetic or injected."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from latency_models import _misaligned_table, _predicted, wide_model
from torch import nn

import taskprune
from taskprune import driving, latency
from taskprune.budget import UnreachableBudget
from taskprune.graph import count_macs
from taskprune.latency import LatencyTable


@pytest.fixture
def wide() -> tuple[nn.Module, torch.Tensor]:
    return wide_model()


def test_auto_rounding_is_never_slower_than_dense_where_plain_pruning_is(wide):
    model, x = wide
    table = _misaligned_table(model)
    dense = _predicted(table, model)
    shown = 0
    with latency.override(table=table, alignment=16):
        for target, ratio in [("params", 0.3), ("params", 0.5), ("macs", 0.4), ("macs", 0.6), ("channels", 0.4)]:
            plain = taskprune.prune(model, x, ratio=ratio, target=target, round_to=None, progress=False)
            try:
                auto = taskprune.prune(model, x, ratio=ratio, target=target, progress=False)
            except ValueError as refused:  # coarse model: no plan meets the budget without slowing down
                assert "predicted slower than the dense model" in str(refused)
                continue
            assert _predicted(table, auto.model) <= dense
            assert abs(auto.report.reached - ratio) <= 0.01
            shown += _predicted(table, plain.model) > dense  # where the table punishes plain pruning
    assert shown >= 2


def test_auto_rounding_keeps_the_device_multiple_unless_a_finer_one_cuts_2_percent_more_macs(wide):
    from taskprune.testing import get_test_model

    cases = [(*wide, 0.5), (*get_test_model("transposed_decoder")(), 0.5)]
    chosen = set()
    with latency.override(alignment=16):
        for model, x, ratio in cases:
            auto = taskprune.prune(model, x, ratio=ratio, progress=False)
            coarse, fine = (taskprune.prune(model, x, ratio=ratio, round_to=step, progress=False) for step in (16, 8))
            finer_pays = count_macs(fine.model, x) < 0.98 * count_macs(coarse.model, x)
            expected = fine if finer_pays else coarse
            assert [g.after for g in auto.report.groups] == [g.after for g in expected.report.groups]
            assert any("steps of 8 were used" in n for n in auto.report.notes) == finer_pays
            chosen.add(finer_pays)
    assert chosen == {True, False}  # both branches of the rule are exercised


def test_auto_rounding_on_a_device_without_a_staircase_does_not_round(wide, monkeypatch):
    model, x = wide
    monkeypatch.setattr(latency, "macs_table", lambda *a: pytest.fail("nothing to compare: no MACs table needed"))
    with latency.override(alignment=1):
        auto = taskprune.prune(model, x, ratio=0.4, progress=False)
    plain = taskprune.prune(model, x, ratio=0.4, round_to=None, progress=False)
    assert [g.after for g in auto.report.groups] == [g.after for g in plain.report.groups]


def test_latency_target_corrects_a_biased_prediction(wide, monkeypatch):
    model, x = wide
    table = _misaligned_table(model)
    table = LatencyTable(total=1.0, alignment=16, layers=table.layers)
    dense = _predicted(table, model)
    passes = []

    def biased_clock(models, example_inputs, **kwargs):  # the device is 20% slower than the table says
        passes.append(1)
        return [1.0, min(1.0, 1.2 * _predicted(table, models[1]) / dense)]

    monkeypatch.setattr(latency, "latency_ratios", biased_clock)
    with latency.override(table=table):
        result = taskprune.prune(model, x, ratio=0.5, target="latency", round_to=4, progress=False)
    assert len(passes) >= 2
    assert abs((1 - result.report.reached) / 0.5 - 1) <= 0.05
    for change in result.report.groups:
        assert change.after == change.before or change.after % 4 == 0


def test_latency_target_confirms_a_lucky_measurement(wide, monkeypatch):
    """A pass whose first measurement lands in the 5% band by luck is measured twice again; the report gives
    the fresh timings' mean, and a biased device still gets corrected."""
    model, x = wide
    table = LatencyTable(total=1.0, alignment=16, layers=_misaligned_table(model).layers)
    dense = _predicted(table, model)
    calls = []

    def noisy_clock(models, example_inputs, **kwargs):  # 20% slower than the table, except a lucky first call
        calls.append(1)
        truth = min(1.0, 1.2 * _predicted(table, models[1]) / dense)
        return [1.0, truth / 1.2 if len(calls) == 1 else truth]

    monkeypatch.setattr(latency, "latency_ratios", noisy_clock)
    with latency.override(table=table):
        result = taskprune.prune(model, x, ratio=0.5, target="latency", round_to=4, progress=False)
    assert len(calls) >= 4  # the lucky pass, its two fresh timings, and at least one corrected pass
    truth = 1.2 * _predicted(table, result.model) / dense
    assert abs(truth / 0.5 - 1) <= 0.05
    assert abs((1 - result.report.reached) - truth) <= 0.05 * 0.5


def test_latency_target_never_stops_on_the_timing_that_landed_in_the_band(wide, monkeypatch):
    """The device runs 3% slower than the table; every pruned copy's first timing is 3% lucky. Averaged with one
    confirmation, a pass at 3% (outside the 2.5% the search stops at) would measure 1.5% and stop the search;
    judged on fresh timings only, the search goes on and returns a plan truly within 2.5%, reported at its truth."""
    model, x = wide
    table = LatencyTable(total=1.0, alignment=16, layers=_misaligned_table(model).layers)
    dense = _predicted(table, model)
    timed: set[int] = set()

    def lucky_first_clock(models, example_inputs, **kwargs):
        truth = min(1.0, 1.03 * _predicted(table, models[1]) / dense)
        first = id(models[1]) not in timed
        timed.add(id(models[1]))
        return [1.0, 0.97 * truth if first else truth]

    monkeypatch.setattr(latency, "latency_ratios", lucky_first_clock)
    with latency.override(table=table):
        result = taskprune.prune(model, x, ratio=0.5, target="latency", round_to=4, progress=False)
    truth = 1.03 * _predicted(table, result.model) / dense
    assert abs(truth / 0.5 - 1) <= 0.025
    assert 1 - result.report.reached == pytest.approx(truth)


def test_latency_target_aims_at_the_middle_of_the_band(wide, monkeypatch):
    """A pass 4% off is inside the 5% band but at its edge: the solver tries again and keeps the closer plan."""
    model, x = wide
    table = LatencyTable(total=1.0, alignment=16, layers=_misaligned_table(model).layers)
    dense = _predicted(table, model)
    seen = []

    def slow_clock(models, example_inputs, **kwargs):  # the device is 4% slower than the table says
        seen.append(min(1.0, 1.04 * _predicted(table, models[1]) / dense))
        return [1.0, seen[-1]]

    monkeypatch.setattr(latency, "latency_ratios", slow_clock)
    with latency.override(table=table):
        result = taskprune.prune(model, x, ratio=0.5, target="latency", round_to=4, progress=False)
    assert 0.025 < abs(seen[0] / 0.5 - 1) <= 0.05  # the first pass was acceptable, and not accepted
    assert len(set(seen)) >= 2
    assert abs((1 - result.report.reached) / 0.5 - 1) == pytest.approx(min(abs(v / 0.5 - 1) for v in seen))


@pytest.mark.parametrize(("step", "unit"), [(0, 16), (8, 8)])
def test_latency_target_plans_in_the_tables_finest_measured_step(wide, monkeypatch, step, unit):
    model, x = wide
    table = LatencyTable(total=1.0, alignment=16, layers=_misaligned_table(model).layers, step=step)
    dense = _predicted(table, model)
    monkeypatch.setattr(latency, "latency_ratios", lambda models, *a, **k: [1.0, _predicted(table, models[1]) / dense])
    with latency.override(table=table):
        result = taskprune.prune(model, x, ratio=0.4, target="latency", progress=False)
    changed = [g for g in result.report.groups if g.after != g.before]
    assert changed and all(g.after % unit == 0 for g in changed)


def test_round_to_must_be_auto_none_or_positive_int(wide):
    model, x = wide
    with pytest.raises(ValueError, match="round_to must be 'auto', None or a positive int"):
        taskprune.prune(model, x, ratio=0.3, round_to="fast", progress=False)


def _csp_fpn_device() -> tuple[nn.Module, torch.Tensor, LatencyTable, Any]:
    """The issue's small three-task model (CSP backbone, FPN, 64x96) on a stand-in device: a table that steps at
    16 channels, measured in half-steps of 8, and an end-to-end clock 20% slower than the table says (as untimed
    ops make a real device), so the passes must re-aim and the caps can stop them."""
    torch.manual_seed(0)
    model, x = driving.DrivingNet(size="n").eval(), torch.randn(1, 3, 64, 96)
    table = LatencyTable(total=1.0, alignment=16, layers=latency.macs_table(model, x).layers, step=8)
    dense = _predicted(table, model, snap=8)

    def clock(models, example_inputs, **kwargs):
        return [1.0, min(1.0, 1.2 * _predicted(table, models[1], snap=8) / dense)]

    return model, x, table, clock


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(("ratio", "round_to", "met"), [(0.3, None, True), (0.3, 8, True), (0.3, 16, False),
                                                        (0.3, "auto", True), (0.5, None, False), (0.5, 8, False),
                                                        (0.5, 16, False), (0.5, "auto", False)])
def test_latency_target_follows_one_rule_for_every_round_to(monkeypatch, ratio, round_to, met):
    """Within 5% of the requested latency, or UnreachableBudget naming the fix, whatever round_to. Before, a
    miss raised when the table saw it on the first pass (round_to=16 at 0.5) and was returned with a note when
    the measurements did (round_to=None, 8, "auto" at 0.5 returned 58% of dense for 50%; 16 at 0.3, 75.7%)."""
    model, x, table, clock = _csp_fpn_device()
    monkeypatch.setattr(latency, "latency_ratios", clock)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with latency.override(table=table):
        if met:
            result = taskprune.prune(model, x, ratio=ratio, target="latency", round_to=round_to, progress=False)
            measured = clock([model, result.model], x)[1]
            assert abs(measured / (1 - ratio) - 1) <= 0.05 and result.report.reached == pytest.approx(1 - measured)
            return
        with pytest.raises(UnreachableBudget, match="lower ratio to 0\\.[0-9]+ or less") as refused:
            taskprune.prune(model, x, ratio=ratio, target="latency", round_to=round_to, progress=False)
    assert refused.value.closest < ratio
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())



@pytest.mark.parametrize(("round_to", "device", "measured_at", "unit"), [("auto", 32, 8, 4), ("auto", 8, 8, 4),
                                                                         ("auto", 4, 4, 2), (16, 32, 16, 16)])
def test_latency_table_is_measured_no_coarser_than_8_under_auto(wide, monkeypatch, round_to, device, measured_at,
                                                                 unit):
    """The probe's multiple times one convolution; a table measured in multiples of 32 (two threads on this
    project's CPU) mispriced DrivingNet-s's layers and planned far worse than one measured in multiples of 8."""
    model, x = wide
    asked = []

    def table_at(model, example_inputs, *, alignment, **kwargs):
        asked.append(alignment)
        return LatencyTable(total=1.0, alignment=alignment, layers=latency.macs_table(model, example_inputs).layers,
                            step=max(1, alignment // 2))

    monkeypatch.setattr(latency, "measure_table", table_at)
    with latency.override(alignment=device):
        result = taskprune.prune(model, x, ratio=0.4, target="latency", round_to=round_to, progress=False)
    assert asked == [measured_at]
    assert result.report.round_to == unit
    assert all(g.after % unit == 0 for g in result.report.groups if g.after != g.before)
    if round_to == "auto":
        assert any(f"this device runs multiples of {device} channels fastest" in n for n in result.report.notes)
        assert any("the latency table is measured in multiples of 8" in n for n in result.report.notes) == (device > 8)
