"""A small two-task setting where the tasks compete for a narrow shared bottleneck (benchmarks/conflict.py).

Every image is one colour multiplied by one sinusoidal texture, plus noise. Task "colour" regresses the colour
(3 numbers), task "texture" the texture (orientation as cos 2a and sin 2a, times the contrast, and the frequency).
Both read the same pixels through a shared trunk pooled to `bottleneck` numbers, fewer than the six the two tasks
need between them, so each task pulls the shared layers towards its own features: negative transfer, measured by
`negative_transfer` against the same network trained for one task alone. One number is the default: with 4 (and 2),
some seeds' teachers split the numbers between the tasks, and then the tasks hardly pull against each other
(in a trial at 24 px and 1500 teacher steps, seeds 0 and 1: median conflict 0.38 and 0.02 with 4 numbers, 0.17 and
0.27 with 2, 0.89 and 0.75 with 1; at the defaults here, 0.15 to 0.55 over five seeds, benchmarks/results/conflict.md).

Splits are disjoint by seed: training (the teacher, the scoring batches, the recovery), validation (every decision)
and test (only reported).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import taskprune

__all__ = ["TASKS", "Setting", "Split", "TwoTaskNet", "evaluate", "make_split", "negative_transfer", "standardise",
           "tasks",
           "train"]

TASKS = ("colour", "texture")


@dataclass(frozen=True)
class Setting:
    """Everything the setting's numbers depend on besides the seed."""

    image: int = 16
    width: int = 24
    bottleneck: int = 1
    head: int = 24
    train_images: int = 4096
    validation_images: int = 512
    test_images: int = 1024
    batch_size: int = 32
    teacher_steps: int = 1000
    lr: float = 3e-3


@dataclass
class Split:
    """Images and per-task targets (standardised with the training split's statistics)."""

    images: torch.Tensor
    targets: dict[str, torch.Tensor]

    def batches(self, batch_size: int, seed: int | None = None) -> list[dict[str, torch.Tensor]]:
        """The split as batches (shuffled by `seed`, or in order)."""
        order = torch.arange(len(self.images)) if seed is None else torch.randperm(
            len(self.images), generator=torch.Generator().manual_seed(seed))
        return [{"image": self.images[i], **{t: y[i] for t, y in self.targets.items()}}
                for i in order.split(batch_size)]


def make_split(count: int, seed: int, image: int) -> Split:
    """`count` images drawn from `seed` (raw targets; `standardise` them with the training split)."""
    g = torch.Generator().manual_seed(seed)
    colour = 0.2 + 0.8 * torch.rand(count, 3, generator=g)
    angle = math.pi * torch.rand(count, generator=g)
    contrast = 0.2 + 0.8 * torch.rand(count, generator=g)
    frequency = 0.08 + 0.2 * torch.rand(count, generator=g)
    phase = 2 * math.pi * torch.rand(count, generator=g)
    ys, xs = torch.meshgrid(torch.arange(image, dtype=torch.float32), torch.arange(image, dtype=torch.float32),
                            indexing="ij")
    along = xs[None] * angle.cos()[:, None, None] + ys[None] * angle.sin()[:, None, None]
    texture = 0.5 + 0.5 * contrast[:, None, None] * torch.sin(
        2 * math.pi * frequency[:, None, None] * along + phase[:, None, None])
    images = colour[:, :, None, None] * texture[:, None] + 0.05 * torch.randn(count, 3, image, image, generator=g)
    targets = {"colour": colour,
               "texture": torch.stack([contrast * (2 * angle).cos(), contrast * (2 * angle).sin(), frequency], 1)}
    return Split(images, targets)


def standardise(splits: list[Split]) -> None:
    """Scale every split's targets by the first split's mean and spread, so both losses start near 1."""
    for task in TASKS:
        mean, std = splits[0].targets[task].mean(0), splits[0].targets[task].std(0)
        for split in splits:
            split.targets[task] = (split.targets[task] - mean) / std


def block(cin: int, cout: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class TwoTaskNet(nn.Module):
    """Shared convolutional trunk pooled to `bottleneck` numbers (fewer than the six targets; no ReLU before the
    pooling, so no bottleneck channel can die), then one small multi-layer head per task; returns (colour, texture)."""

    def __init__(self, setting: Setting):
        super().__init__()
        w = setting.width
        self.trunk = nn.Sequential(block(3, w), block(w, w, 2), block(w, w, 2),
                                   block(w, setting.bottleneck, relu=False),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({t: nn.Sequential(nn.Linear(setting.bottleneck, setting.head), nn.ReLU(),
                                                     nn.Linear(setting.head, setting.head), nn.ReLU(),
                                                     nn.Linear(setting.head, 3)) for t in TASKS})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self.trunk(x)
        return self.heads["colour"](shared), self.heads["texture"](shared)


def mse(task: str) -> Callable[[torch.Tensor, dict], torch.Tensor]:
    def loss(output: torch.Tensor, batch: dict) -> torch.Tensor:
        return nn.functional.mse_loss(output, batch[task])
    return loss


def tasks(weights: dict[str, float] | None = None) -> taskprune.Tasks:
    """The two tasks for taskprune; `weights` sets their loss weights (a task of weight 0 is not trained)."""
    return taskprune.Tasks(outputs={"colour": lambda out: out[0], "texture": lambda out: out[1]},
                           losses={t: mse(t) for t in TASKS}, inputs=lambda batch: batch["image"],
                           weights=weights or {})


def evaluate(model: nn.Module, split: Split, batch_size: int = 256) -> dict[str, float]:
    """Mean squared error per task on `split` (eval mode; the model's mode is given back)."""
    was_training = model.training
    model.eval()
    totals = dict.fromkeys(TASKS, 0.0)
    with torch.no_grad():
        for batch in split.batches(batch_size):
            outputs = dict(zip(TASKS, model(batch["image"]), strict=True))
            for t in TASKS:
                totals[t] += float(nn.functional.mse_loss(outputs[t], batch[t], reduction="sum"))
    model.train(was_training)
    return {t: totals[t] / split.targets[t].numel() for t in TASKS}


def train(model: nn.Module, data: Split, steps: int, lr: float, seed: int, batch_size: int,
          weights: dict[str, float] | None = None, validation: Split | None = None,
          judge: Callable[[dict[str, float]], float] | None = None, every: int = 50) -> nn.Module:
    """Adam on the weighted sum of task losses for `steps` steps, cosine learning rate. With `validation` and
    `judge` (lower is better), the weights of the best evaluation (step 0, every `every` steps and the last) are
    kept, so a recovery never ends worse on validation than where it started."""
    weights = weights or dict.fromkeys(TASKS, 1.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    best = (math.inf, None)
    if validation is not None and judge is not None:
        best = (judge(evaluate(model, validation)), copy.deepcopy(model.state_dict()))
    epoch, batches = 0, []
    model.train()
    for step in range(1, steps + 1):
        if not batches:
            batches, epoch = data.batches(batch_size, seed=seed * 1000 + epoch), epoch + 1
        batch = batches.pop()
        outputs = dict(zip(TASKS, model(batch["image"]), strict=True))
        loss = sum(weights[t] * nn.functional.mse_loss(outputs[t], batch[t]) for t in TASKS)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimiser.step()
        schedule.step()
        if validation is not None and judge is not None and (step % every == 0 or step == steps):
            score = judge(evaluate(model, validation))
            if score < best[0]:
                best = (score, copy.deepcopy(model.state_dict()))
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    return model


def negative_transfer(setting: Setting, data: Split, test: Split, joint: nn.Module, seed: int) -> dict:
    """Each task's test error for the joint teacher and for the same network trained on that task alone (same
    steps and seed); a joint error above the single-task one on a task is negative transfer."""
    joint_error = evaluate(joint, test)
    rows = {}
    for task in TASKS:
        torch.manual_seed(seed)
        alone = train(TwoTaskNet(setting), data, setting.teacher_steps, setting.lr, seed, setting.batch_size,
                      weights={t: float(t == task) for t in TASKS})
        rows[task] = {"joint_mse": joint_error[task], "alone_mse": evaluate(alone, test)[task]}
        rows[task]["joint_over_alone"] = rows[task]["joint_mse"] / rows[task]["alone_mse"]
    return rows
