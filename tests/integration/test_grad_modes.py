"""A frozen model (`requires_grad_(False)`, whole or only its backbone) and a call inside `torch.no_grad()` or
`torch.inference_mode()` prune, inspect, extract and prune_within exactly as a plain model does, and every
parameter comes back with the `requires_grad` the caller gave it."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from state_checks import snapshot, unchanged
from two_task_models import imitation_batches, two_head_model

import taskprune
from taskprune.train import FinetuneConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASKS = taskprune.Tasks(outputs={"a": lambda out: out["a"], "b": lambda out: out["b"]},
                        losses={"a": lambda out, batch: out.pow(2).mean(),
                                "b": lambda out, batch: (out - 1).pow(2).mean()})


def _frozen(model):
    return model.requires_grad_(False)


def _frozen_backbone(model):
    model.trunk.requires_grad_(False)
    return model


# (how the caller prepares the model, the grad mode the caller calls in)
SETUPS = {
    "frozen": (_frozen, nullcontext),
    "frozen_backbone": (_frozen_backbone, nullcontext),
    "inference_mode": (lambda model: model, torch.inference_mode),
    "no_grad": (lambda model: model, torch.no_grad),
}


def _model(setup: str | None = None):
    model = two_head_model()
    return SETUPS[setup][0](model) if setup else model


def _flags(model):
    return {name: p.requires_grad for name, p in model.named_parameters()}


def _inputs():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, 16, 16, generator=generator), [torch.randn(2, 3, 16, 16, generator=generator)
                                                            for _ in range(3)]


def _prune(model, importance, **options):
    x, batches = _inputs()
    return taskprune.prune(model, x, ratio=0.3, importance=importance, tasks=TASKS, data=batches, round_to=None,
                           progress=False, **options)


@pytest.mark.parametrize("importance", ["magnitude", "task_taylor"])
@pytest.mark.parametrize("setup", SETUPS)
def test_prune_is_the_plain_models_prune(setup, importance):
    plain = _prune(_model(), importance)
    model = _model(setup)
    flags, before = _flags(model), snapshot(model)
    with SETUPS[setup][1]():
        result = _prune(model, importance)
    assert result.channel_map == plain.channel_map
    assert result.report.reached == pytest.approx(plain.report.reached)
    assert _flags(result.model) == flags
    assert _flags(model) == flags and unchanged(model, before)


@pytest.mark.parametrize("setup", ["frozen", "inference_mode"])
def test_inplace_prune_keeps_the_callers_flags(setup):
    plain = _prune(_model(), "task_taylor")
    model = _model(setup)
    flags = _flags(model)
    with SETUPS[setup][1]():
        result = _prune(model, "task_taylor", inplace=True)
    assert result.model is model
    assert result.channel_map == plain.channel_map
    assert _flags(model) == flags


@pytest.mark.parametrize("setup", SETUPS)
def test_inspect_sees_the_plain_models_groups(setup):
    x, _ = _inputs()
    plain = taskprune.inspect(_model(), x)
    with SETUPS[setup][1]():
        found = taskprune.inspect(_model(setup), x)
    assert [(g.layer, g.channels, g.tasks, g.kept_whole) for g in found.groups] == \
        [(g.layer, g.channels, g.tasks, g.kept_whole) for g in plain.groups]
    assert len(found.groups) == 4
    assert found.protected_outputs == plain.protected_outputs == ["a.2", "b.2"]


@pytest.mark.parametrize("setup", SETUPS)
def test_extract_is_the_plain_models_extract(setup):
    x, _ = _inputs()
    plain = taskprune.extract(_model(), x, keep=["a"])
    model = _model(setup)
    flags = _flags(model)
    with SETUPS[setup][1]():
        kept = taskprune.extract(model, x, keep=["a"])
    assert kept.report.removed == plain.report.removed
    assert kept.report.removed["b"]["modules"] == ["b.0", "b.2"]
    assert _flags(kept.model) == {name: flags[name] for name in _flags(kept.model)}
    assert not any(p.is_inference() for p in kept.model.parameters())
    with torch.no_grad():
        assert torch.equal(kept.model(x)["a"], model(x)["a"])


WITHIN_TASKS = taskprune.Tasks(losses={"a": lambda out, batch: (out - batch["a"]).pow(2).mean(),
                                       "b": lambda out, batch: (out - batch["b"]).pow(2).mean()},
                               inputs=lambda batch: batch["image"])


def _within(model, batches):
    params = sum(p.numel() for p in _model().parameters())

    def evaluate(student):  # a point per 1% of the parameters removed
        return {"a": -100 * (1 - sum(p.numel() for p in student.parameters()) / params)}

    x, _ = _inputs()
    return taskprune.prune_within(model, x, tasks=WITHIN_TASKS, data=batches, evaluate=evaluate,
                                  limits={"a": 35.0}, step=0.2, max_ratio=0.6, importance="task_taylor",
                                  round_to=None, measure_latency=False, progress=False,
                                  recovery=FinetuneConfig(epochs=1, max_steps=2, lr=1e-3, progress=False))


@pytest.mark.parametrize("setup", SETUPS)
def test_prune_within_is_the_plain_models(setup):
    batches = imitation_batches(_model(), 3)  # made outside the grad mode: finetune trains on them as they are
    plain = _within(_model(), batches)
    model = _model(setup)
    flags, before = _flags(model), snapshot(model)
    with SETUPS[setup][1]():
        found = _within(model, batches)
    assert [f["reduction"] for f in found.frontier] == [f["reduction"] for f in plain.frontier]
    assert found.reduction == plain.reduction > 0.3
    assert found.result.channel_map == plain.result.channel_map
    assert _flags(found.result.model) == flags
    assert _flags(model) == flags and unchanged(model, before)
