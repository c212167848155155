"""The zoo of lookalikes: prune(model, x, ratio) with no ignore list keeps every output's shape and meets the
budget within a point (pyproject turns a measured params miss into a failure)."""

from __future__ import annotations

import pytest
import torch
from state_checks import snapshot, unchanged

import taskprune
from taskprune.graph import count_params
from taskprune.tasks import output_leaves
from taskprune.testing import get_test_model, list_test_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.6])
@pytest.mark.parametrize("name", list_test_models(kind="zoo"))
def test_zoo_model_prunes_with_outputs_kept(name, ratio):
    model, x = get_test_model(name)()
    before = snapshot(model)
    expected = {k: v.shape for k, v in output_leaves(model(x))}
    result = taskprune.prune(model, x, ratio=ratio, round_to=None, progress=False)
    out = result.model(x)
    assert {k: v.shape for k, v in output_leaves(out)} == expected
    assert all(torch.isfinite(v).all() for _, v in output_leaves(out))
    assert abs(result.report.reached - ratio) <= 0.01
    assert abs(1 - count_params(result.model) / count_params(model) - ratio) <= 0.01
    assert unchanged(model, before)
