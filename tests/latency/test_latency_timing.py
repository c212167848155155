"""End-to-end timing helpers.

Nothing here asserts on a measured time: tables are synthetic or injected."""

from __future__ import annotations

import platform

import pytest
import torch
from latency_models import wide_model
from torch import nn

from taskprune import latency
from taskprune.latency import timing


@pytest.fixture
def wide() -> tuple[nn.Module, torch.Tensor]:
    return wide_model()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_steady_allocator_applies_on_glibc_and_declines_elsewhere(monkeypatch):
    assert latency.steady_allocator() is True

    def no_libc(name):
        raise OSError(f"cannot load {name}")

    monkeypatch.setattr(timing.ctypes, "CDLL", no_libc)
    assert latency.steady_allocator() is False

