"""ChannelGroup: the one record of a channel group, from the graph to inspect and the report."""

from __future__ import annotations

import json

import torch

from taskprune.groups import ChannelGroup, ParamSlice
from taskprune.reporting import GroupChange, GroupInfo


def _group() -> ChannelGroup:
    index = torch.arange(4)
    return ChannelGroup(index=3, layer="neck.1", channels=4, out_layers=("neck.1",), in_layers=("head.0",),
                        slices=(ParamSlice("neck.1.weight", 0, index, index),), tasks=frozenset({"lane", "det"}),
                        kept_whole="grouped convolution neck.1 (groups=2) is kept whole")


def test_the_report_and_inspect_read_the_same_record():
    assert GroupChange is ChannelGroup and GroupInfo is ChannelGroup


def test_every_name_readers_use_reads_the_one_field():
    group = _group()
    assert group.root == group.layer == "neck.1"
    assert group.before == group.channels == group.after == 4
    assert group.note == group.kept_whole and not group.prunable
    assert group.tasks == ("det", "lane") and group.serves == "shared"


def test_a_report_copy_drops_the_slices_and_records_what_is_left():
    group = _group()
    pruned = group.without_slices(after=2)
    assert pruned.slices == () and pruned.after == 2 and pruned.before == 4
    assert group.slices and group.after == 4, "the graph's record is unchanged"
    data = json.loads(json.dumps(pruned.to_dict()))
    assert data == {"index": 3, "layer": "neck.1", "channels": 4, "out_layers": ["neck.1"],
                    "in_layers": ["head.0"], "tasks": ["det", "lane"], "kept_whole": group.kept_whole, "after": 2}
