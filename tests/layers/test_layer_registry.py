"""The layer registry: torch's kinds, looking a module up, and register_layer's errors."""

from __future__ import annotations

import pytest
import torch
from gated import GatedConv2d
from torch import nn

import taskprune
from taskprune.layers import get_layer_kind, kind_of, list_layer_kinds, param_slices, unregister_layer


@pytest.mark.parametrize(("module", "name"), [
    (nn.Conv2d(4, 8, 3), "conv"),
    (nn.ConvTranspose2d(4, 8, 3), "conv_transpose"),
    (nn.Conv2d(8, 8, 3, groups=8), "depthwise"),
    (nn.Conv2d(8, 16, 3, groups=4), "grouped_conv"),
    (nn.Linear(3, 5), "linear"),
    (nn.BatchNorm2d(4), "norm"),
    (nn.GroupNorm(2, 8), "group_norm"),
    (nn.LayerNorm(6), "layer_norm"),
    (nn.Embedding(10, 6), "embedding"),
])
def test_every_torch_layer_has_its_kind(module, name):
    assert kind_of(module).name == name


def test_layers_without_channels_of_their_own_have_no_kind():
    assert kind_of(nn.ReLU()) is None and kind_of(nn.PReLU()) is None and kind_of(nn.Parameter(torch.ones(3))) is None


def test_kinds_are_listed_by_pattern():
    assert list_layer_kinds("conv*") == ["conv", "conv_transpose"]


def test_slices_follow_the_kind():
    index = torch.arange(2)
    out = param_slices("up", nn.ConvTranspose2d(4, 8, 3), True, index, index)
    assert [(s.param, s.dim) for s in out] == [("up.weight", 1), ("up.bias", 0)]  # a transposed weight is [in, out]
    into = param_slices("conv", nn.Conv2d(4, 8, 3, bias=False), False, index, index)
    assert [(s.param, s.dim) for s in into] == [("conv.weight", 1)]


def test_keep_whole_reasons_name_the_layer():
    grouped = get_layer_kind("grouped_conv").reason_kept_whole(nn.Conv2d(8, 16, 3, groups=4), "neck.2")
    assert grouped == "grouped convolution neck.2 (groups=4) is kept whole"
    assert get_layer_kind("group_norm").reason_kept_whole(nn.GroupNorm(8, 8), "gn") == ""
    assert "normalises 2 groups" in get_layer_kind("group_norm").reason_kept_whole(nn.GroupNorm(2, 8), "gn")


def test_register_layer_checks_its_arguments():
    with pytest.raises(TypeError, match=r"register_layer\(GatedConv2d\): out_params"):
        taskprune.register_layer(GatedConv2d, out_params={}, in_params={"weight": 1}, channels=len)
    with pytest.raises(TypeError, match=r"in_params maps parameter names to int"):
        taskprune.register_layer(GatedConv2d, out_params={"weight": 0}, in_params={"weight": "1"}, channels=len)
    with pytest.raises(TypeError, match="channels must be a function"):
        taskprune.register_layer(GatedConv2d, out_params={"weight": 0}, in_params={"weight": 1})
    with pytest.raises(TypeError, match="nn.Module class"):
        taskprune.register_layer("GatedConv2d", out_params={"weight": 0}, in_params={"weight": 1}, channels=len)
    with pytest.raises(ValueError, match="one of torch's"):
        taskprune.register_layer(GatedConv2d, name="conv", out_params={"weight": 0}, in_params={"weight": 1},
                                 channels=len)
    assert "GatedConv2d" not in list_layer_kinds()


def test_a_name_belongs_to_one_layer_until_unregistered():
    taskprune.register_layer(GatedConv2d, out_params={"weight": 0}, in_params={"weight": 1}, channels=len)
    try:
        assert kind_of(GatedConv2d(2, 3)).name == "GatedConv2d" and "GatedConv2d" in list_layer_kinds()
        with pytest.raises(ValueError, match="already registered for GatedConv2d"):
            taskprune.register_layer(nn.Identity, name="GatedConv2d", out_params={"weight": 0},
                                     in_params={"weight": 1}, channels=len)
    finally:
        unregister_layer("GatedConv2d")
    assert kind_of(GatedConv2d(2, 3)) is None
    with pytest.raises(ValueError, match="Unknown custom layer kind 'GatedConv2d'; registered: none"):
        unregister_layer("GatedConv2d")


def test_an_unknown_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown layer kind 'deform'; available: conv, conv_transpose"):
        get_layer_kind("deform")
