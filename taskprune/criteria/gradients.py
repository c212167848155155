"""Per-task gradient statistics over a few batches: exactly what the gradient criteria need, nothing kept per batch.

For every batch and task t: one forward, one backward of L_t (`torch.autograd.grad`, so no stale `.grad` is ever
read), then per channel c the Taylor term s_t(c) = sum over the channel's slices of theta * dL_t/dtheta. The running
sums kept are sum_b s_t(c)^2 per task, sum_b (sum_t w_t s_t(c))^2 for the summed loss, and, for the conflict
penalty, sum_b dL_t/dtheta per task (or, measured per batch, the sum over batches of each batch's conflict per
channel). Under torch.distributed every sum is all-reduced, so every rank gets the same
statistics (and the same pruning plan).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._runtime import ordinary_tensors, preserved_modes, world
from ..groups import ChannelGroup
from ..safety import layer_errors
from ..tasks import MultiTaskAdapter, call_model, task_loss, with_weights
from .channels import SliceReducer, cosine_conflict

__all__ = ["GradientStats", "collect_gradients", "NEEDS"]

# What a criterion can ask for.
NEEDS = frozenset({"summed_taylor", "task_taylor", "task_gradients", "batch_conflict"})


@dataclass
class GradientStats:
    """Accumulated statistics; `batches` is the number of batches summed (over all ranks)."""

    tasks: tuple[str, ...]
    batches: int = 0
    summed_taylor: list[torch.Tensor] = field(default_factory=list)
    task_taylor: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    task_gradients: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    batch_conflict: list[torch.Tensor] = field(default_factory=list)  # sum over batches of each batch's conflict


def collect_gradients(model: nn.Module, groups: list[ChannelGroup], adapter: MultiTaskAdapter, data: Iterable[Any],
                      num_batches: int, needs: frozenset[str], progress: bool = False,
                      example_inputs: Any = None) -> GradientStats:
    """Run `num_batches` batches of `data` through `model` and accumulate the statistics in `needs`.

    The model runs in eval mode (BatchNorm statistics and dropout stay as they are) and is given back in the mode it
    came in. A task whose loss does not reach a parameter contributes zero there. `example_inputs`, inputs the
    model takes, only serve the message of a batch that does not fit (what its failing layer is given on them).

    Raises:
        ValueError: `data` yields no batch.
        RuntimeError: a batch fails in the model (the error names the batch, the layer and the shapes it was
            given) or in a task's loss, or a loss is not finite (the error names the task and the batch).
    """
    unknown = needs - NEEDS
    if unknown:
        raise ValueError(f"unknown gradient statistics {sorted(unknown)}; choose from {sorted(NEEDS)}")
    adapter = with_weights(adapter)  # an adapter without `weight` weighs every task 1.0
    names = sorted({piece.param for group in groups for piece in group.slices})
    all_params = dict(model.named_parameters())
    params = [all_params[n] for n in names]
    tasks = tuple(adapter.names)
    per_task = bool(needs & {"task_taylor", "task_gradients", "batch_conflict"})
    stats = GradientStats(tasks=tasks)
    stats.summed_taylor = [torch.zeros(g.channels) for g in groups]
    stats.task_taylor = {t: [torch.zeros(g.channels) for g in groups] for t in tasks}
    stats.batch_conflict = [torch.zeros(g.channels) for g in groups]
    if "task_gradients" in needs:
        stats.task_gradients = {t: {n: torch.zeros_like(p, dtype=torch.float32)
                                    for n, p in zip(names, params, strict=True)}
                                for t in tasks}
    with preserved_modes(model, eval=True):
        for index, batch in enumerate(_limited(data, num_batches, progress)):
            batch = ordinary_tensors(batch)  # a batch made inside inference_mode cannot be differentiated through
            with layer_errors(f"the model on batch {index} of data (counting from 0)", model,
                              reference=example_inputs):
                output = call_model(model, adapter.model_inputs(batch))
            losses = {t: _task_loss(adapter, t, output, batch, index) for t in tasks}
            if per_task:
                summed = [torch.zeros(g.channels) for g in groups]
                this_batch: dict[str, dict[str, torch.Tensor]] = {}
                for position, task in enumerate(tasks):
                    grads = _grads(losses[task], params, retain=position < len(tasks) - 1)
                    terms = _taylor_terms(groups, names, params, grads)
                    for acc, s, term in zip(stats.task_taylor[task], summed, terms, strict=True):
                        acc += term**2
                        s += float(adapter.weight(task)) * term
                    if "task_gradients" in needs:
                        for name, grad in zip(names, grads, strict=True):
                            if grad is not None:
                                stats.task_gradients[task][name] += grad.float()
                    if "batch_conflict" in needs:
                        this_batch[task] = {n: g for n, g in zip(names, grads, strict=True) if g is not None}
                if "batch_conflict" in needs:
                    for acc, k in zip(stats.batch_conflict, cosine_conflict(this_batch, groups), strict=True):
                        acc += k
            else:
                total = torch.stack([float(adapter.weight(t)) * losses[t] for t in tasks]).sum()
                summed = _taylor_terms(groups, names, params, _grads(total, params, retain=False))
            for acc, s in zip(stats.summed_taylor, summed, strict=True):
                acc += s**2
            stats.batches += 1
    if stats.batches == 0:
        raise ValueError("data yielded no batch: gradient criteria need at least one batch")
    _all_reduce(stats)
    return stats


def _limited(data: Iterable[Any], num_batches: int, progress: bool) -> Iterable[Any]:
    batches = itertools.islice(iter(data), num_batches)
    if not progress:
        return batches
    from rich.progress import track

    return track(batches, total=num_batches, description="collecting task gradients", transient=True)


def _task_loss(adapter: MultiTaskAdapter, task: str, output: Any, batch: Any, index: int) -> torch.Tensor:
    try:
        loss = task_loss(adapter, task, output, batch)
    except TypeError:  # what the loss returned is not a scalar tensor: task_loss's message says so
        raise
    except Exception as error:
        raise RuntimeError(f"the loss of task {task!r} fails on batch {index} of data (counting from 0): "
                           f"{type(error).__name__}: {error}") from error
    if not math.isfinite(float(loss.detach())):
        raise RuntimeError(f"the loss of task {task!r} is not finite ({float(loss.detach())}) on batch {index}")
    return loss


def _grads(loss: torch.Tensor, params: list[nn.Parameter], retain: bool) -> list[torch.Tensor | None]:
    if not loss.requires_grad:
        return [None] * len(params)
    return list(torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True))


def _taylor_terms(groups: list[ChannelGroup], names: list[str], params: list[nn.Parameter],
                  grads: list[torch.Tensor | None]) -> list[torch.Tensor]:
    products = {n: p.detach() * g for n, p, g in zip(names, params, grads, strict=True) if g is not None}
    reducer = SliceReducer(products)
    return [reducer.group(group) for group in groups]


def _all_reduce(stats: GradientStats) -> None:
    import torch.distributed as dist

    if world()[1] == 1:
        return
    tensors = list(stats.summed_taylor)
    tensors += [t for per_group in stats.task_taylor.values() for t in per_group]
    tensors += [t for grads in stats.task_gradients.values() for t in grads.values()]
    tensors += list(stats.batch_conflict)
    for tensor in tensors:
        dist.all_reduce(tensor)
    count = torch.tensor([stats.batches], dtype=torch.long)
    dist.all_reduce(count)
    stats.batches = int(count.item())
