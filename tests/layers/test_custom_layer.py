"""A user's own layer, registered once, is pruned end to end; without the registration it is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from gated import GatedConv2d, gated_net, register_gated
from latency_models import LoadedClock

import taskprune
from taskprune import latency
from taskprune.budget import UnreachableBudget
from taskprune.graph import count_macs
from taskprune.latency import tables
from taskprune.layers import unregister_layer


@pytest.fixture
def gated_kind() -> Iterator[None]:
    register_gated()
    yield
    unregister_layer("GatedConv2d")


def test_without_registration_the_gated_layer_is_never_pruned_and_its_input_is_kept_whole():
    model, x = gated_net()
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    assert "gated" not in result.channel_map and "gated" not in [g.layer for g in result.report.groups]
    stem = next(g for g in result.report.groups if g.layer == "stem.0")
    assert stem.after == 16 and "fails in layer 'gated'" in stem.note
    with pytest.raises(UnreachableBudget, match="kept whole"):  # the gated layer was half the model
        taskprune.prune(model, x, ratio=0.6, round_to=None, progress=False)


@pytest.mark.parametrize("target", ["params", "macs"])
def test_registered_gated_layer_is_pruned_with_every_parameter_sliced(gated_kind, target):
    model, x = gated_net()
    before = [t.shape for t in model(x)]
    result = taskprune.prune(model, x, ratio=0.3, target=target, round_to=None, progress=False)
    gated = result.model.gated
    kept_out = result.channel_map["gated"]
    kept_in = result.channel_map.get("stem.0", list(range(16)))
    assert len(kept_out) < 32, "the gated layer's own output channels were pruned"
    assert gated.weight.shape == (len(kept_out), len(kept_in), 3, 3)
    assert gated.gate.shape == (len(kept_out), len(kept_in), 1, 1) and gated.bias.shape == (len(kept_out),)
    original = model.gated
    assert torch.equal(gated.weight, original.weight[kept_out][:, kept_in])
    assert torch.equal(gated.gate, original.gate[kept_out][:, kept_in])
    assert torch.equal(gated.bias, original.bias[kept_out])
    assert [t.shape for t in result.model(x)] == before
    assert abs(result.report.reached - 0.3) <= 0.01
    assert model.gated.weight.shape == (32, 16, 3, 3), "the caller's model is untouched"


def test_registered_macs_are_counted(gated_kind):
    model, x = gated_net()
    without_gated = count_macs(model, x)
    expected = 16 * 16 * 32 * 16 * (9 + 1)  # pixels x out x in x (3x3 + the 1x1 gate)
    unregister_layer("GatedConv2d")
    try:
        assert without_gated - count_macs(model, x) == expected
    finally:
        register_gated()


def test_inspect_and_report_list_the_gated_group(gated_kind):
    model, x = gated_net()
    found = taskprune.inspect(model, x)
    group = next(g for g in found.groups if g.layer == "gated")
    assert group.channels == 32 and set(group.tasks) == {"0", "1"} and not group.kept_whole
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    change = next(g for g in result.report.groups if g.layer == "gated")
    assert change.before == 32 and change.after == len(result.channel_map["gated"])
    assert "gated" in result.report.to_markdown()


def test_latency_table_times_the_gated_layer_and_prune_meets_the_target(gated_kind, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKPRUNE_CACHE", str(tmp_path))
    model, x = gated_net()
    table = tables.measure_table(model, x, alignment=1, progress=False, repeats=3, timer=LoadedClock())
    entry = table.layers["gated"]
    assert entry.kind == "GatedConv2d" and (entry.in_full, entry.out_full) == (16, 32)
    assert len(entry.in_counts) > 1 and len(entry.out_counts) > 1
    with latency.override(table=table, alignment=1):
        result = taskprune.prune(model, x, ratio=0.3, target="latency", round_to=None, progress=False)
    assert len(result.channel_map["gated"]) < 32
    assert [t.shape for t in result.model(x)] == [t.shape for t in model(x)]
    assert result.report.reached >= 0.3 * 0.95


def test_a_saved_result_replays_on_a_fresh_model(gated_kind, tmp_path):
    model, x = gated_net()
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    taskprune.save(result, tmp_path / "gated.pt")
    loaded = taskprune.load(tmp_path / "gated.pt", gated_net()[0])
    assert loaded.gated.gate.shape == result.model.gated.gate.shape
    for got, want in zip(loaded(x), result.model(x), strict=True):
        assert torch.allclose(got, want)


def test_a_channels_function_reading_a_stale_attribute_is_named():
    from taskprune.graph._layer_params import KindPruner

    class Stale(GatedConv2d):
        out_channels = 32

    kind = taskprune.register_layer(Stale, out_params={"weight": 0, "bias": 0, "gate": 0},
                                    in_params={"weight": 1, "gate": 1},
                                    channels=lambda m: (m.weight.shape[1], m.out_channels))
    try:
        with pytest.raises(ValueError, match=r"register_layer\(Stale\).*still says 32"):
            KindPruner(kind).prune_out_channels(Stale(16, 32), [0, 1])
    finally:
        unregister_layer("Stale")
