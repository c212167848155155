"""Driving tests run torch on one thread: results do not depend on it, and on a busy 2-core machine OpenMP threads
spin-waiting for each other made the training tests several times slower."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    yield
