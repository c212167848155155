"""Every criterion on every tiny model of taskprune.testing: shapes kept, budget met, caller's model unchanged."""

from __future__ import annotations

import pytest
import torch
from state_checks import snapshot, unchanged

import taskprune
from taskprune.graph import module_task_attribution
from taskprune.tasks import Tasks, flatten_outputs, output_leaves
from taskprune.testing import get_test_model, list_test_models

# For each conv of AttributionNet (by qualified name), the tasks its output channels reach: the answer key.
ATTRIBUTION_ANSWER: dict[str, set[str]] = {
    "trunk.0": {"a", "b"},
    "trunk.3": {"a", "b"},
    "neck": {"a", "b"},
    "only_a": {"a"},
    "only_b": {"b"},
    "head_a": {"a"},
    "head_b": {"b"},
}


def _energy(task_output, batch):
    return torch.stack([t.float().pow(2).mean() for t in flatten_outputs(task_output)]).sum()


def _setup(name):
    model, x = get_test_model(name)()
    model.eval()
    base = Tasks.from_output(model(x))
    tasks = Tasks(outputs=dict(base.outputs), losses=dict.fromkeys(base.outputs, _energy))
    generator = torch.Generator().manual_seed(0)
    data = [x + 0.1 * torch.randn(x.shape, generator=generator) for _ in range(2)]
    return model, x, tasks, data


CASES = [(name, criterion, 0.3) for name in list_test_models(kind="tiny") for criterion in taskprune.list_criteria()]
CASES += [(name, "magnitude", 0.6) for name in list_test_models(kind="tiny")]


@pytest.mark.parametrize(("name", "criterion", "ratio"), CASES)
def test_criterion_on_tiny_model(name, criterion, ratio):
    model, x, tasks, data = _setup(name)
    before = snapshot(model)
    shapes = {k: v.shape for k, v in output_leaves(model(x))}
    if name == "grouped_split_dataclass":
        # every group there runs through a grouped convolution, which is kept whole: a clear refusal
        with pytest.raises(ValueError, match="grouped convolution"):
            taskprune.prune(model, x, ratio=ratio, importance=criterion, tasks=tasks, data=data, progress=False)
        assert unchanged(model, before)
        return
    result = taskprune.prune(model, x, ratio=ratio, importance=criterion, tasks=tasks, data=data, progress=False)
    assert abs(result.report.reached - ratio) <= 0.01
    out = result.model(x)
    assert {k: v.shape for k, v in output_leaves(out)} == shapes
    assert all(torch.isfinite(v).all() for _, v in output_leaves(out))
    assert unchanged(model, before)


def test_attribution_matches_the_known_answer():
    model, x = get_test_model("attribution_net")()
    attribution = module_task_attribution(model, x)
    assert {k: set(v) for k, v in attribution.items() if k in ATTRIBUTION_ANSWER} == ATTRIBUTION_ANSWER
    report = taskprune.prune(model, x, ratio=0.2, progress=False).report
    groups = {g.layer: set(g.tasks) for g in report.groups}
    assert groups == {k: v for k, v in ATTRIBUTION_ANSWER.items() if k in groups}
    assert set(report.protected_outputs) == {"head_a", "head_b"}


def test_plain_4d_head_is_protected():
    model, x = get_test_model("plain_det_seg")()
    result = taskprune.prune(model, x, ratio=0.5, progress=False)
    assert [tuple(t.shape) for t in flatten_outputs(result.model(x))] == \
        [tuple(t.shape) for t in flatten_outputs(model(x))]


def test_bmm_attention_groups_are_probed_and_kept_whole():
    model, x = get_test_model("spatial_attention")()
    result = taskprune.prune(model, x, ratio=0.3, progress=False)
    kept_whole = [g.layer for g in result.report.groups if g.note.startswith("kept whole")]
    assert kept_whole, "the bmm over positions breaks when a channel goes: that group must be found"
    with pytest.raises(ValueError, match="strict=True"):
        taskprune.prune(model, x, ratio=0.3, progress=False, strict=True)
