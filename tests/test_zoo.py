"""The zoo of lookalikes: prune(model, x, ratio=0.3) with no ignore list keeps every output's shape."""

from __future__ import annotations

import pytest
import torch
from state_checks import snapshot, unchanged

import taskprune
from taskprune.tasks import output_leaves
from taskprune.testing import ZOO_MODELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.mark.parametrize("name", sorted(ZOO_MODELS))
def test_zoo_model_prunes_with_outputs_kept(name):
    model, x = ZOO_MODELS[name]()
    before = snapshot(model)
    expected = {k: v.shape for k, v in output_leaves(model(x))}
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    out = result.model(x)
    assert {k: v.shape for k, v in output_leaves(out)} == expected
    assert all(torch.isfinite(v).all() for _, v in output_leaves(out))
    assert abs(result.report.reached - 0.3) <= 0.01
    assert unchanged(model, before)
