"""A cached latency table never poisons a later run: it records the load and spread it was measured under, and a
spot check against fresh timings decides whether it is trusted or measured again.

The device is a stand-in clock (`LoadedClock`): a layer's time is its size, times a factor, plus a wait that load
adds to every call, so a test can measure a table on a loaded machine and use it on an idle one."""

from __future__ import annotations

import json

import pytest
import torch
from latency_models import LoadedClock, wide_model

from taskprune import latency
from taskprune.latency import LatencyTable, tables


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKPRUNE_CACHE", str(tmp_path))
    return tmp_path


def _measure(clock: LoadedClock) -> LatencyTable:
    model, x = wide_model()
    return tables.measure_table(model, x, alignment=16, progress=False, timer=clock)


def test_table_records_load_threads_and_spread(cache):
    table = _measure(LoadedClock(jitter=0.02))
    assert table.spread == pytest.approx(0.02)
    assert all(layer.spread == pytest.approx(0.02) for layer in table.layers.values())
    assert table.load >= 0 and table.threads == torch.get_num_threads() and table.measured
    saved = json.loads(next(cache.glob("latency-*.json")).read_text())
    assert saved["spread"] == pytest.approx(0.02) and saved["load"] == table.load and "origin" not in saved
    assert "measured now" in table.origin


def test_table_measured_under_load_is_measured_again_on_an_idle_machine(cache):
    """Load adds a wait to every call: short calls (narrow widths, small layers) slow down most, so the table's
    staircases are off, not just its total."""
    loaded = _measure(LoadedClock(wait=2e-3))
    idle_clock = LoadedClock()
    table = _measure(idle_clock)
    assert "failed its spot check" in table.origin
    for name, layer in table.layers.items():
        assert layer.base == pytest.approx(loaded.layers[name].base - 2e-3)  # each layer runs once a forward
    assert idle_clock.calls > 6  # the spot check (3 layers, 2 widths each) and then every layer again
    (path,) = cache.glob("latency-*.json")
    assert LatencyTable.from_dict(json.loads(path.read_text())) == table  # the stale table is replaced


@pytest.mark.parametrize("scale", [1.05, 2.0, 0.5])
def test_table_on_a_uniformly_slower_or_faster_machine_is_trusted(cache, scale):
    """Every time off by one factor changes no prediction (the solver uses relative times): no re-measurement."""
    first = _measure(LoadedClock())
    clock = LoadedClock(scale=scale)
    table = _measure(clock)
    assert table == first and "from the cache" in table.origin and f"{scale:.2f}x" in table.origin
    assert clock.calls == 6  # only the spot check: the 3 slowest layers at full and narrowest width


@pytest.mark.parametrize(("jitter", "trusted"), [(0.02, False), (0.15, True)])
def test_spot_check_allows_what_the_fresh_timings_spread(cache, jitter, trusted):
    """Relative times about 20% off: beyond a steady check's 10%, within what a check scattered by 15% can judge."""
    _measure(LoadedClock())
    table = _measure(LoadedClock(wait=4e-4, jitter=jitter))
    assert ("from the cache" in table.origin) is trusted, table.origin


def test_clear_cache_removes_tables(cache):
    _measure(LoadedClock())
    assert latency.clear_cache() == 1
    assert not list(cache.glob("latency-*.json"))


def test_prune_reports_where_its_latency_table_came_from(cache, monkeypatch):
    """The stand-in device of conftest (MACs for the end-to-end passes), with tables timed by a LoadedClock."""
    import taskprune

    model, x = wide_model()
    for wait, said in [(2e-3, "measured now"), (0.0, "failed its spot check"), (0.0, "from the cache")]:
        clock = LoadedClock(wait=wait)
        monkeypatch.setattr(latency, "measure_table",
                            lambda *args, clock=clock, **kwargs: tables.measure_table(*args, timer=clock, **kwargs))
        result = taskprune.prune(model, x, ratio=0.3, target="latency", progress=False)
        # where the table came from is a note of the report (a warning only when a request is changed or refused)
        assert any(said in note for note in result.report.notes), result.report.notes
