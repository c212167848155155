"""Shared fixtures: a small two-task model whose structure the tests know by heart (tests/two_task_models.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from two_task_models import two_head_model

import taskprune
from taskprune import latency
from taskprune.graph import count_macs


@pytest.fixture
def two_head() -> tuple[nn.Module, torch.Tensor]:
    return two_head_model(), torch.randn(1, 3, 16, 16)


@pytest.fixture
def two_head_tasks() -> taskprune.Tasks:
    return taskprune.Tasks(
        outputs={"a": lambda out: out["a"], "b": lambda out: out["b"]},
        losses={"a": lambda out, batch: out.pow(2).mean(), "b": lambda out, batch: (out - 1).pow(2).mean()},
    )


@pytest.fixture
def batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(2, 3, 16, 16, generator=generator) for _ in range(3)]


@pytest.fixture(autouse=True, scope="session")
def _private_latency_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """round_to="auto" caches its device probe; keep the tests' cache out of the user's ~/.cache."""
    import os

    os.environ.setdefault("TASKPRUNE_CACHE", str(tmp_path_factory.mktemp("taskprune-cache")))


INJECTED_ALIGNMENT = 16  # what the probe answers on an AVX-512 CPU; coarse enough that auto falls back on tiny models


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "measures_device: tests of the probe and the timing themselves; they see "
                                       "the real device instead of the injected alignment and MACs clock")


@pytest.fixture(autouse=True)
def _device_independent_plans(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A plan must not depend on how loaded the machine is: round_to="auto" gets INJECTED_ALIGNMENT as if the probe
    had answered it, and target="latency" a stand-in device whose latency is its MACs (a MACs table, and an
    end-to-end "measurement" that counts MACs). A test with its own table or clock injects it over these; tests
    of the probe and the timing themselves are marked `measures_device`."""
    if request.node.get_closest_marker("measures_device"):
        yield
        return
    monkeypatch.setattr(latency, "measure_table", lambda model, example_inputs, **_: latency.injected_table()
                        or latency.macs_table(model, example_inputs))
    monkeypatch.setattr(latency, "latency_ratios", macs_ratios)
    with latency.override(alignment=INJECTED_ALIGNMENT):
        yield


@pytest.fixture
def injected_alignment() -> int:
    """The channel multiple round_to="auto" sees in tests (see `_device_independent_plans`)."""
    return INJECTED_ALIGNMENT


def macs_ratios(models: list[nn.Module], example_inputs: Any, **_: Any) -> list[float]:
    """The stand-in device's end-to-end latency of `models`, relative to the first: their MACs."""
    macs = [count_macs(model, example_inputs) for model in models]
    return [m / macs[0] for m in macs]


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread: on a busy 2-core machine OpenMP threads spin-wait for each other.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
