"""PreciseBN: `recompute_bn_stats` and `FinetuneConfig(bn_batches=...)`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from taskprune.train import FinetuneConfig, finetune, recompute_bn_stats


class NormFirst(nn.Module):
    """BatchNorm straight on the image, so its inputs do not depend on any trained weight."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(3)
        self.frozen = nn.BatchNorm2d(3)
        self.head = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.frozen(self.norm(x)))


def batches(count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for k in range(count):  # every batch its own mean and scale, so an exponential average differs from the plain one
        image = 1.5 * k + (1 + k) * torch.randn(4, 3, 5, 5, generator=generator)
        out.append({"image": image, "mask": (image.mean(1, keepdim=True) > 0).float()})
    return out


def plain_average(data: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    means = torch.stack([b["image"].mean((0, 2, 3)) for b in data])
    variances = torch.stack([b["image"].transpose(0, 1).flatten(1).var(1, unbiased=True) for b in data])
    return means.mean(0), variances.mean(0)


def test_statistics_become_the_plain_average_and_nothing_else_moves(seg_tasks):
    model, data = NormFirst().train(), batches(6)
    model.frozen.eval()
    with torch.no_grad():
        model.frozen.running_mean.fill_(0.25)
        model(data[0]["image"])  # one training-mode pass: the exponential average starts somewhere else
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "tracked" not in k}
    frozen = {k: v.clone() for k, v in model.frozen.state_dict().items()}
    assert recompute_bn_stats(model, data, seg_tasks, 5) == 5
    mean, var = plain_average(data[:5])
    assert torch.allclose(model.norm.running_mean, mean, atol=1e-5)
    assert torch.allclose(model.norm.running_var, var, rtol=1e-4)
    assert model.norm.momentum == 0.1 and model.training and not model.frozen.training
    assert all(torch.equal(v, frozen[k]) for k, v in model.frozen.state_dict().items())  # eval mode: left alone
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    # the batches ran out: averaged over what there was
    assert recompute_bn_stats(model, data[:2], seg_tasks, 5) == 2
    assert torch.allclose(model.norm.running_mean, plain_average(data[:2])[0], atol=1e-5)


def test_bad_counts_and_no_batches_are_refused_and_lose_nothing(seg_tasks):
    model = NormFirst().train()
    with torch.no_grad():
        model(batches(1)[0]["image"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="num_batches must be >= 1, got 0"):
        recompute_bn_stats(model, batches(2), seg_tasks, 0)
    with pytest.raises(ValueError, match="no batch to re-estimate"):
        recompute_bn_stats(model, [], seg_tasks, 3)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert model.norm.momentum == 0.1
    with pytest.raises(ValueError, match="bn_batches must be an integer >= 0, got -1"):
        FinetuneConfig(bn_batches=-1)


@pytest.mark.parametrize("bn_batches", [0, 3])
def test_finetune_re_estimates_before_every_evaluation(bn_batches, seg_tasks):
    torch.manual_seed(0)
    model, data, seen = NormFirst(), batches(5), []
    finetune(model, seg_tasks, data, epochs=2, lr=1e-2, bn_batches=bn_batches, progress=False,
             bn_mode="train", keep_best=False, judge_start=False,
             eval_fn=lambda m: seen.append(m.norm.running_mean.clone()) or {"score": 0.0})
    # a list of batches is read in its order every epoch: the re-estimate averages its first three
    expected = plain_average(data[:3])[0]
    assert len(seen) == 2  # after each epoch; the last one already saw the re-estimate
    assert all(torch.allclose(mean, expected, atol=1e-5) == (bn_batches > 0) for mean in seen)
    assert torch.allclose(model.norm.running_mean, expected, atol=1e-5) == (bn_batches > 0)
    assert torch.equal(seen[-1], model.norm.running_mean) and model.training  # given back in its own mode


class Images(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.items = [{"image": b["image"][i], "mask": b["mask"][i]} for b in batches(6, seed=3) for i in range(4)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


@pytest.fixture
def trained(seg_net, seg_tasks) -> Callable[..., tuple[nn.Module, list[float]]]:
    """trained(**finetune options) -> the net fine-tuned from seed 0 on `Images`, and the score of every
    evaluation (the head's weight sum); evaluated=False leaves eval_fn out."""
    def train(**options) -> tuple[nn.Module, list[float]]:
        torch.manual_seed(0)
        model, scores = seg_net(), []
        options = {"bn_mode": "train", "keep_best": False, "judge_start": False, **options}  # before issue 25

        def score(m: nn.Module) -> dict[str, float]:
            scores.append(float(m.head.weight.sum()))
            return {"score": scores[-1]}

        finetune(model, seg_tasks, Images(), epochs=3, lr=5e-2, batch_size=4, collate_fn=collate,
                 progress=False, **({"eval_fn": score} if options.pop("evaluated", True) else {}), **options)
        return model, scores

    return train


def test_evaluating_with_precise_statistics_leaves_the_training_order_alone(trained):
    # the re-estimates read the shuffled Dataset and run forwards; the weights trained must not change
    plain, _ = trained(evaluated=False, bn_batches=2)
    evaluated, scores = trained(eval_every=2, bn_batches=2)
    assert len(scores) == 9  # every second of 18 steps
    assert all(torch.equal(v, evaluated.state_dict()[k]) for k, v in plain.state_dict().items())


def test_keep_best_puts_back_the_best_evaluation(trained):
    model, scores = trained(eval_every=2, bn_batches=2, keep_best=True, best_mode="min")
    assert scores.index(min(scores)) != len(scores) - 1  # the best is not the last, or the test shows nothing
    assert float(model.head.weight.detach().sum()) == pytest.approx(min(scores))
    last, _ = trained(eval_every=2, bn_batches=2)
    assert float(last.head.weight.detach().sum()) == pytest.approx(scores[-1])
    with pytest.raises(ValueError, match="keep_best needs eval_fn"):
        trained(evaluated=False, keep_best=True)
    with pytest.raises(ValueError, match="keep_best must be None, True or False, got 1"):
        FinetuneConfig(keep_best=1)
