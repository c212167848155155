"""Latency tables: the staircase model of one layer, JSON, measuring and its cache.

Nothing here asserts on a measured time: tables are synthetic or injected."""

from __future__ import annotations

import pytest
import torch
from latency_models import LoadedClock, Wide, _misaligned_table, wide_model
from torch import nn

from taskprune import latency
from taskprune.latency import LatencyTable, LayerLatency, tables


@pytest.fixture
def wide() -> tuple[nn.Module, torch.Tensor]:
    return wide_model()


def test_layer_latency_is_a_staircase_on_the_alignment():
    layer = LayerLatency("norm", 2.0, 64, 64, out_counts=(16, 32, 48, 64), out_times=(1.0, 2.0, 3.0, 4.0))
    assert layer.at(64, 64, alignment=16) == 2.0
    assert layer.at(64, 49, alignment=16) == 2.0  # one channel past 48 pays for the whole vector
    assert layer.at(64, 48, alignment=16) == 1.5
    assert layer.at(64, 40, alignment=1) == pytest.approx(1.25)  # linear between measured counts
    assert layer.at(64, 8, alignment=1) == pytest.approx(0.25)  # below the lowest count: proportional


def test_table_json_round_trip():
    table = _misaligned_table(Wide())
    assert LatencyTable.from_dict(table.to_dict()) == table


def test_measured_table_is_cached_and_keyed_by_input_shape(wide, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKPRUNE_CACHE", str(tmp_path))
    model, x = wide
    clock = LoadedClock()
    table = tables.measure_table(model, x, alignment=16, progress=False, repeats=3, timer=clock)
    assert set(table.layers) == {"trunk.0", "trunk.1", "trunk.3", "trunk.4", "a.0", "a.2", "b.0", "b.2"}
    # multiples of 16 at 20-90% of the width, and the half-steps below them (not every layer follows the staircase)
    assert table.layers["trunk.3"].out_counts == (24, 32, 40, 48, 56, 64, 88, 96, 104, 112, 120, 128)
    assert table.resolution == 8
    assert table.layers["a.0"].in_full == 128 and table.layers["a.0"].out_full == 96
    assert len(list(tmp_path.glob("latency-*.json"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(tables, "measure_layer", fail)
    assert tables.measure_table(model, x, alignment=16, progress=False, timer=clock) == table
    with pytest.raises(AssertionError, match="measured again"):
        tables.measure_table(model, torch.randn(1, 3, 16, 8), alignment=16, progress=False, timer=clock)


@pytest.mark.measures_device
def test_wall_clock_times_every_repeat_of_a_module(wide):
    model, x = wide
    times = latency.wall_clock(warmup=1)(model, x, 3)
    assert len(times) == 3 and all(t > 0 for t in times)
