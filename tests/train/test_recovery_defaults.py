"""finetune's defaults are safe for a pretrained model: frozen BatchNorm statistics, the best judged state kept
(the unrecovered one included), and a warning when a recovery ends worse than it started."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from taskprune.train import FinetuneConfig, finetune


def batches(count: int, seed: int, flip_labels: bool = False) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        image = 3.0 + 2.0 * torch.randn(2, 3, 6, 6, generator=generator)  # far from the initial statistics
        mask = (image[:, :1] > 3.0).float()
        out.append({"image": image, "mask": 1 - mask if flip_labels else mask})
    return out


@pytest.fixture
def pretrained(seg_net, seg_tasks) -> nn.Module:
    """The net trained with BatchNorm in training mode, as a pretrained model is; in eval mode."""
    torch.manual_seed(0)
    model = seg_net()
    finetune(model, seg_tasks, batches(8, seed=1), epochs=3, lr=3e-2, bn_mode="train", progress=False)
    return model.eval()


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_defaults_are_the_fine_tuning_ones():
    config = FinetuneConfig()
    assert (config.lr, config.bn_mode, config.keep_best, config.judge_start) == (1e-4, "frozen", None, True)


def test_frozen_batchnorm_keeps_its_statistics_and_trains_its_scale(pretrained, seg_tasks):
    model = pretrained
    before = state(model)
    finetune(model, seg_tasks, batches(4, seed=2), epochs=1, lr=1e-2, progress=False)
    assert torch.equal(model.norm.running_mean, before["norm.running_mean"])
    assert torch.equal(model.norm.running_var, before["norm.running_var"])
    assert not torch.equal(model.norm.weight, before["norm.weight"])
    assert not model.training and not model.norm.training  # given back in its own modes
    finetune(model, seg_tasks, batches(4, seed=2), epochs=1, lr=1e-2, bn_mode="train", progress=False)
    assert not torch.equal(model.norm.running_mean, before["norm.running_mean"])


def test_a_recovery_that_hurts_gives_back_the_unrecovered_model_and_warns(pretrained, seg_tasks):
    model = pretrained
    before = state(model)
    with pytest.warns(RuntimeWarning, match="ended worse than it started.*step 0"):
        finetune(model, seg_tasks, batches(6, seed=3, flip_labels=True), epochs=2, lr=3e-2,
                 val_data=batches(2, seed=4), progress=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.warns(RuntimeWarning, match="keep_best=False"):
        finetune(model, seg_tasks, batches(6, seed=3, flip_labels=True), epochs=2, lr=3e-2, keep_best=False,
                 val_data=batches(2, seed=4), progress=False)
    assert not torch.equal(model.head.weight, before["head.weight"])


def test_a_recovery_that_helps_keeps_its_best_step_without_a_warning(pretrained, seg_tasks):
    model = pretrained
    before = state(model)
    losses: list[float] = []

    def judged(m: nn.Module) -> dict[str, float]:
        data = batches(2, seed=4, flip_labels=True)
        losses.append(sum(float(F.binary_cross_entropy_with_logits(m(b["image"]), b["mask"])) for b in data))
        return {"loss": losses[-1]}

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        finetune(model, seg_tasks, batches(6, seed=3, flip_labels=True), epochs=2, lr=3e-2, eval_fn=judged,
                 best_mode="min", eval_every=2, progress=False)
    assert len(losses) == 7 and losses.index(min(losses)) > 0  # the start, then every second of 12 steps
    assert not torch.equal(model.head.weight, before["head.weight"])
    with torch.no_grad():
        assert judged(model.eval())["loss"] == pytest.approx(min(losses[:-1]))


def test_judge_start_off_leaves_the_start_out(pretrained, seg_tasks):
    model = pretrained
    seen: list[int] = []
    finetune(model, seg_tasks, batches(2, seed=3), epochs=1, eval_fn=lambda m: seen.append(1) or {"s": 0.0},
             judge_start=False, progress=False)
    assert len(seen) == 1  # only after training


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bn_mode": "eval"}, "Unknown bn_mode 'eval'; available: frozen, train"),
        ({"val_data": batches(1, seed=0), "eval_fn": lambda m: {"s": 0.0}}, "eval_fn= or val_data=, not both"),
        ({"judge_start": 1}, "judge_start must be True or False"),
        ({"val_data": [], "keep_best": True}, "val_data gave no batch"),
    ],
)
def test_bad_recovery_settings_are_named(kwargs, message, seg_net, seg_tasks):
    with pytest.raises(ValueError) as info:
        finetune(seg_net(), seg_tasks, batches(1, seed=0), epochs=1, progress=False, **kwargs)
    assert message in str(info.value)
