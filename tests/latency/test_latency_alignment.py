"""The alignment probe: its decision, its caches, and that tests do not run it.

Nothing here asserts on a measured time: tables are synthetic or injected."""

from __future__ import annotations

import math

import pytest
import torch
from latency_models import wide_model
from torch import nn

import taskprune
from taskprune import latency
from taskprune.latency import alignment


@pytest.fixture
def wide() -> tuple[nn.Module, torch.Tensor]:
    return wide_model()


@pytest.mark.measures_device
def test_probe_runs_once_per_process_and_is_kept_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKPRUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(alignment, "_ALIGNMENTS", {})
    calls = []
    monkeypatch.setattr(alignment, "probe_alignment", lambda device: calls.append(device) or {"alignment": 8})
    assert latency.device_alignment() == 8 and latency.device_alignment() == 8
    assert len(calls) == 1
    alignment._ALIGNMENTS.clear()  # a new process: the disk cache answers
    assert latency.device_alignment() == 8 and len(calls) == 1
    with latency.override(alignment=4):
        assert latency.device_alignment() == 4
    assert latency.device_alignment() == 8


@pytest.mark.parametrize(("step", "expected"), [(16, 16), (8, 8), (32, 32), (0, 1)])
def test_probe_decision_finds_the_staircase_width(step, expected):
    counts = list(range(16, 97))
    times = [float(math.ceil(c / step) * step) if step else float(c) for c in counts]
    assert alignment._staircase_step(counts, times) == expected


def test_tests_plan_with_an_injected_alignment_not_the_probe(two_head, monkeypatch, injected_alignment):
    """Defect 8: plans in tests must not depend on how loaded the machine is. Unless a test is marked
    `measures_device`, round_to="auto" sees conftest's alignment and the probe never runs."""
    monkeypatch.setattr(alignment, "probe_alignment", lambda *a, **k: pytest.fail("the device probe ran in a test"))
    monkeypatch.setattr(alignment, "_ALIGNMENTS", {})
    model, x = two_head
    assert latency.device_alignment() == injected_alignment
    first, again = (taskprune.prune(model, x, ratio=0.4, progress=False) for _ in range(2))
    assert first.channel_map == again.channel_map and injected_alignment % first.report.round_to == 0

