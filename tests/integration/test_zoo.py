"""The zoo of lookalikes: prune(model, x, ratio) with no ignore list keeps every output's shape and meets the
budget within a point (pyproject turns a measured params miss into a failure)."""

from __future__ import annotations

import math

import pytest
import torch
from state_checks import snapshot, unchanged

import taskprune
from taskprune.budget import UnreachableBudget
from taskprune.graph import count_params
from taskprune.tasks import call_model, output_leaves
from taskprune.testing import get_test_model, list_test_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# raft_like's GRU state and motion features are kept whole (torch-pruning's index mappings do not fit its
# correlation lookup); what is left reaches 43% of the parameters, so it is asked for 30% only
# (test_a_ratio_the_caps_block_is_refused_naming_the_groups asks it for more)
CASES = [(name, ratio) for name in list_test_models(kind="zoo") for ratio in (0.3, 0.5, 0.6)
         if name != "raft_like" or ratio < 0.43]


@pytest.mark.parametrize(("name", "ratio"), CASES)
def test_zoo_model_prunes_with_outputs_kept(name, ratio):
    model, x = get_test_model(name)()
    before = snapshot(model)
    expected = {k: v.shape for k, v in output_leaves(call_model(model, x))}
    result = taskprune.prune(model, x, ratio=ratio, round_to=None, progress=False)
    out = call_model(result.model, x)
    assert {k: v.shape for k, v in output_leaves(out)} == expected
    assert all(torch.isfinite(v).all() for _, v in output_leaves(out))
    assert abs(result.report.reached - ratio) <= 0.01
    assert abs(1 - count_params(result.model) / count_params(model) - ratio) <= 0.01
    assert unchanged(model, before)


def test_a_model_called_with_autograd_on_before_pruning_prunes():
    """levit_like caches its attention biases in eval mode: a plain model(x) with autograd on leaves a non-leaf
    tensor in the cache, which copy.deepcopy refuses; prune's working copy and every probe copy failed."""
    model, x = get_test_model("levit_like")()
    expected = model(x)
    assert next(iter(model.blocks[0].attn.attention_bias_cache.values())).grad_fn is not None
    before = snapshot(model)
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    assert abs(result.report.reached - 0.3) <= 0.01 and result.model(x).shape == expected.shape
    assert any(g.after < g.before for g in result.report.groups if g.layer.startswith("blocks.0.mlp"))
    assert unchanged(model, before)


def test_a_ratio_the_caps_block_is_refused_naming_the_groups():
    """raft_like reaches 30%, not 50%: its GRU and motion groups are kept whole, and the refusal says so in a
    sentence, the largest first, and advises only a ratio above 0."""
    model, x = get_test_model("raft_like")()
    with pytest.raises(UnreachableBudget) as refused:
        taskprune.prune(model, x, ratio=0.5, round_to=None, progress=False)
    message = str(refused.value)
    assert 0.4 < refused.value.closest < 0.5
    assert f"lower ratio to {math.floor(refused.value.closest * 1000) / 1000:g} or less" in message
    assert message.endswith("6 groups are kept whole: 6 because torch-pruning cannot follow their channels (through "
                            "a reshape, split or attention over positions): gru.convq, gru.convr, gru.convz and 3 more")
    assert len(message) < 500


def test_a_model_with_nothing_to_prune_is_refused_without_a_ratio_to_lower():
    model, x = get_test_model("grouped_split_dataclass")()
    with pytest.raises(UnreachableBudget) as refused:
        taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    message = str(refused.value)
    assert "lower ratio" not in message and "raise max_layer_ratio" not in message
    assert "3 groups are kept whole: 3 because they run through a grouped convolution" in message
