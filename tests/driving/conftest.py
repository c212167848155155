"""Driving tests run torch on one thread: results do not depend on it, and on a busy 2-core machine OpenMP threads
spin-waiting for each other made the training tests several times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
