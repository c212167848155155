"""One training step, shared by `finetune` and the driving example's teacher trainer.

The loss of a batch is sum_t w_t L_t, plus alpha * sum_l KD_l when a teacher is given (see `taskprune.distill`);
then backward, gradient-norm clipping and the optimizer step, with mixed precision on CUDA. Under torch.distributed
the student is wrapped in DistributedDataParallel. The caller sets the learning rate of every step (a factor of the
peak), so each loop keeps its own schedule and this stays one idea.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .._runtime import world
from ..distill import Distill, FeatureDistiller
from ..safety import layer_errors
from ..tasks import MultiTaskAdapter, call_model, task_loss, with_weights

__all__ = ["TrainStep", "make_optimizer", "to_device"]


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (tensor, dict, tuple, list, namedtuple; nested) with every tensor on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(value, device) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def make_optimizer(name: str, params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW or SGD (momentum 0.9, Nesterov) with no weight decay on 1-D parameters: shrinking norm scales and
    biases changes what a layer computes, not its size."""
    groups = [{"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr)


class TrainStep:
    """`step(batch, lr_factor)` trains `student` on one batch and returns every loss as a float.

    Args:
        student: the model to train in place (it stays on its device).
        tasks: the tasks, their losses and weights, and what the model takes from a batch.
        optimizer, lr, weight_decay, grad_clip: as in `FinetuneConfig`.
        teacher, distill, channel_map: distillation from the unpruned model (see `FeatureDistiller`).
        example_inputs: one batch of model inputs for the distiller's checks and adapters.
    """

    def __init__(self, student: nn.Module, tasks: MultiTaskAdapter, *, optimizer: str = "adamw", lr: float = 1e-3,
                 weight_decay: float = 1e-4, grad_clip: float | None = 10.0, teacher: nn.Module | None = None,
                 distill: Distill | None = None, channel_map: Mapping[str, list[int]] | None = None,
                 example_inputs: Any = None) -> None:
        first = next(student.parameters(), None)
        if first is None:
            raise ValueError("student has no parameters to train")
        self.device = first.device
        self.tasks, self.lr, self.grad_clip = tasks, lr, grad_clip
        self.rank, self.world = world()
        self.model: nn.Module = student
        self.teacher = teacher
        if self.world > 1:
            cuda = self.device.type == "cuda"
            self.model = nn.parallel.DistributedDataParallel(student, device_ids=[self.device] if cuda else None)
        self.distiller = None
        if teacher is not None:
            self.distiller = FeatureDistiller(teacher.to(self.device), self.model, distill or Distill(), channel_map,
                                              example_inputs=example_inputs, tasks=tasks)
        self.adapters = list(self.distiller.parameters()) if self.distiller is not None else []
        self.params = [p for p in student.parameters() if p.requires_grad] + self.adapters
        self.optimizer = make_optimizer(optimizer, self.params, lr, weight_decay)
        self.amp = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.weight = with_weights(tasks).weight  # an adapter without `weight` weighs every task 1.0
        self.steps = 0

    def __call__(self, batch: Any, lr_factor: float = 1.0) -> dict[str, float]:
        """Train on `batch` at `lr_factor` times the peak learning rate; returns {task: loss, ("kd": loss)}.

        Raises:
            RuntimeError: the batch fails in the model (names the batch, the layer and the shapes it was given),
                or the total loss is not finite (names the step and every loss).
        """
        batch = to_device(batch, self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * lr_factor
        inputs = self.tasks.model_inputs(batch)
        models = (self.model,) if self.teacher is None else (self.model, self.teacher)
        with torch.autocast("cuda", enabled=True) if self.amp else nullcontext():
            with layer_errors(f"finetune's batch {self.steps} (counting from 0 over all epochs)", *models):
                if self.distiller is not None:
                    kd_loss, outputs = self.distiller(inputs)
                else:
                    kd_loss, outputs = None, call_model(self.model, inputs)
            losses = {name: task_loss(self.tasks, name, outputs, batch) for name in self.tasks.names}
        loss = sum((self.weight(name) * value.float() for name, value in losses.items()),
                   torch.zeros((), device=self.device))
        if kd_loss is not None:
            losses["kd"] = kd_loss
            loss = loss + kd_loss.float()
        if not torch.isfinite(loss):
            values = ", ".join(f"{name} {value.item():.4g}" for name, value in losses.items())
            raise RuntimeError(f"non-finite loss at step {self.steps}: {values}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.world > 1:  # DDP averages the student's gradients; the adapters' are ours to average
            for p in self.adapters:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.steps += 1
        return {name: float(value.detach()) for name, value in losses.items()}

    def remove(self) -> None:
        """Take the distiller's hooks off teacher and student."""
        if self.distiller is not None:
            self.distiller.remove()
