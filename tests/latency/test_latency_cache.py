"""A cached latency table never poisons a later run: it records the load and spread it was measured under, and a
spot check against fresh timings decides whether it is trusted or measured again.

The device is a stand-in clock (`LoadedClock`): a layer's time is its size times the machine's load, so a test can
measure a table on a loaded machine and use it on an idle one."""

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
    table = _measure(LoadedClock(1.0, jitter=0.02))
    assert table.spread == pytest.approx(0.02)
    assert all(layer.spread == pytest.approx(0.02) for layer in table.layers.values())
    assert table.load >= 0 and table.threads == torch.get_num_threads() and table.measured
    saved = json.loads(next(cache.glob("latency-*.json")).read_text())
    assert saved["spread"] == pytest.approx(0.02) and saved["load"] == table.load and "origin" not in saved
    assert "measured now" in table.origin


def test_table_measured_under_load_is_measured_again_on_an_idle_machine(cache):
    loaded = _measure(LoadedClock(2.0))
    idle_clock = LoadedClock(1.0)
    table = _measure(idle_clock)
    assert "failed its spot check" in table.origin and "0.50x" in table.origin
    for name, layer in table.layers.items():
        assert layer.base == pytest.approx(loaded.layers[name].base / 2)
    assert idle_clock.calls > 6  # the spot check (3 layers, 2 widths each) and then every layer again
    (path,) = cache.glob("latency-*.json")
    assert LatencyTable.from_dict(json.loads(path.read_text())) == table  # the stale table is replaced


def test_fresh_cached_table_is_trusted_after_a_spot_check(cache):
    first = _measure(LoadedClock(1.0))
    clock = LoadedClock(1.05)  # 5% slower now: within the 10% every check allows
    table = _measure(clock)
    assert table == first and "from the cache" in table.origin
    assert clock.calls == 6  # only the spot check: the 3 slowest layers at full and narrowest width


@pytest.mark.parametrize(("jitter", "trusted"), [(0.02, False), (0.10, True)])
def test_spot_check_allows_what_the_timings_spread(cache, jitter, trusted):
    """30% slower now: beyond two steady measurements' spread, within two that scattered by 10% each."""
    _measure(LoadedClock(1.0, jitter=jitter))
    table = _measure(LoadedClock(1.3, jitter=jitter))
    assert ("from the cache" in table.origin) is trusted


def test_clear_cache_removes_tables(cache):
    _measure(LoadedClock(1.0))
    assert latency.clear_cache() == 1
    assert not list(cache.glob("latency-*.json"))


def test_prune_reports_where_its_latency_table_came_from(cache, monkeypatch):
    """The stand-in device of conftest (MACs for the end-to-end passes), with tables timed by a LoadedClock."""
    import taskprune

    model, x = wide_model()
    for load, said in [(2.0, "measured now"), (1.0, "failed its spot check"), (1.0, "from the cache")]:
        clock = LoadedClock(load)
        monkeypatch.setattr(latency, "measure_table",
                            lambda *args, clock=clock, **kwargs: tables.measure_table(*args, timer=clock, **kwargs))
        result = taskprune.prune(model, x, ratio=0.3, target="latency", progress=False)
        assert any(said in note for note in result.report.warnings), result.report.warnings
