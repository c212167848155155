"""prune_within(): the returned model never breaks a limit, the frontier records every step, bad limits are named."""

from __future__ import annotations

import json

import pytest
import torch

import taskprune
from taskprune.train import FinetuneConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASKS = taskprune.Tasks(losses={"a": lambda out, batch: (out - batch["a"]).pow(2).mean(),
                                "b": lambda out, batch: (out - batch["b"]).pow(2).mean()},
                        inputs=lambda batch: batch["image"])


def _teacher_and_data(two_head):
    model, x = two_head
    generator = torch.Generator().manual_seed(3)
    batches = []
    for _ in range(4):
        image = torch.randn(4, 3, 16, 16, generator=generator)
        with torch.no_grad():
            out = model(image)
        batches.append({"image": image, "a": out["a"], "b": out["b"]})  # learn to imitate the teacher
    return model, x, batches


def _scores(batches):
    def evaluate(model):
        with torch.no_grad():
            return {task: -100 * sum(float((model(b["image"])[task] - b[task]).pow(2).mean()) for b in batches)
                    for task in ("a", "b")}
    return evaluate


def test_the_returned_model_is_within_every_limit(two_head, tmp_path):
    model, x, batches = _teacher_and_data(two_head)
    evaluate = _scores(batches)
    limits = {"a": 0.25, "b": 0.25}  # about where 40-60% of the parameters are gone on this model
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=evaluate, limits=limits,
                                   step=0.2, max_ratio=0.8, round_to=None, importance="magnitude",
                                   recovery=FinetuneConfig(epochs=1, max_steps=3, lr=1e-3, progress=False),
                                   measure_latency=False, progress=False)
    base, got = evaluate(model), evaluate(found.result.model)
    assert all(base[k] - got[k] <= limits[k] for k in limits)
    assert found.frontier[0]["reduction"] == 0.0 and found.frontier[0]["within"]
    within = [f for f in found.frontier if f["within"]]
    assert found.reduction == within[-1]["reduction"]
    assert abs(1 - found.result.report.params_after / found.result.report.params_before - found.reduction) < 0.011
    assert not found.frontier[-1]["within"], "the limits were meant to stop it before max_ratio"
    assert found.frontier[-1]["recovery_rounds"] == 2  # a second recovery round was tried before stopping
    assert all(f["within"] for f in found.frontier[:-1])
    assert 0 < found.reduction < found.frontier[-1]["reduction"]
    json.loads(found.to_json())
    assert found.plot(tmp_path / "frontier.png").stat().st_size > 0


def test_a_limit_broken_at_the_first_step_returns_the_unpruned_model(two_head):
    model, x, batches = _teacher_and_data(two_head)
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_scores(batches),
                                   limits={"a": 0.0, "b": 0.0}, step=0.5, round_to=None, importance="magnitude",
                                   recovery=FinetuneConfig(epochs=1, max_steps=1, lr=1e-6, progress=False),
                                   measure_latency=False, progress=False)
    assert found.reduction == 0.0 and not found.frontier[1]["within"]
    assert found.result.report.params_after == found.result.report.params_before
    assert all(torch.equal(a, b) for a, b in zip(found.result.model.state_dict().values(),
                                                 model.state_dict().values(), strict=True))


def test_limits_must_name_metrics_evaluate_returns(two_head):
    model, x, batches = _teacher_and_data(two_head)
    with pytest.raises(ValueError, match=r"limits name metric\(s\) \['lane_iou'\] .* it returns: a, b"):
        taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_scores(batches),
                               limits={"lane_iou": 1.0})
