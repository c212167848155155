"""Small ideas every stage needs, each written once: restoring train/eval modes, copying a model, autograd whatever
the caller's grad mode and flags, the torch.distributed world, writing a file atomically, and rebuilding a config
dataclass from a dict."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["atomic_write", "copy_model", "known_fields", "ordinary_tensors", "preserved_modes",
           "restore_requires_grad", "trainable_copy", "with_autograd", "world"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)
Function = TypeVar("Function", bound=Callable[..., Any])


@contextmanager
def preserved_modes(*models: nn.Module, eval: bool = False) -> Iterator[None]:  # noqa: A002
    """Give back every submodule's own train/eval mode on leaving the block.

    `model.train(was_training)` would flatten a model whose parts are in different modes (a frozen, eval-mode
    stem inside a model in train mode); this restores each submodule's flag. With `eval=True` the models are
    put in eval mode inside the block.

    Example:
        >>> with preserved_modes(model, eval=True):
        ...     output = model(x)
    """
    modes = [(module, module.training) for model in models for module in model.modules()]
    try:
        if eval:
            for model in models:
                model.eval()
        yield
    finally:
        for module, training in modes:
            module.training = training


def copy_model(model: ModuleT, memo: dict[int, Any] | None = None) -> ModuleT:
    """`copy.deepcopy(model, memo)` that also copies a model holding tensors computed in its forward.

    torch refuses to deep-copy a tensor that autograd produced, and some models keep one after a forward: an
    attention-bias table cached in eval mode (LeViT, EfficientFormer), the weight of `weight_norm`. The copy
    holds a detached clone of each such tensor; the model's own parameters and buffers are copied as usual.
    """
    memo = {} if memo is None else memo
    for module in model.modules():
        for name, value in vars(module).items():
            if name not in ("_parameters", "_modules"):
                _detach_computed(value, memo, depth=3)
    return copy.deepcopy(model, memo)


def _detach_computed(value: Any, memo: dict[int, Any], depth: int) -> None:
    if isinstance(value, torch.Tensor):
        if value.grad_fn is not None and id(value) not in memo:
            memo[id(value)] = value.detach().clone()
    elif depth and isinstance(value, Mapping):
        for item in value.values():
            _detach_computed(item, memo, depth - 1)
    elif depth and isinstance(value, (list, tuple)):
        for item in value:
            _detach_computed(item, memo, depth - 1)


def with_autograd(function: Function) -> Function:
    """Run `function` with autograd on, whatever the caller's grad mode (`torch.no_grad()`,
    `torch.inference_mode()`): the dependency trace follows autograd and the gradient criteria differentiate, so
    inside the caller's no_grad they would see no graph and prune nothing (or rank every channel at zero)."""

    @functools.wraps(function)
    def with_grad_mode(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.enable_grad():
            return function(*args, **kwargs)

    return with_grad_mode  # type: ignore[return-value]


def trainable_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose every parameter requires grad, so the trace sees frozen layers too (a model
    frozen for deployment, or a frozen backbone); `restore_requires_grad` gives the caller's flags back."""
    work = copy_model(model)
    for parameter in work.parameters():
        parameter.requires_grad_(True)
    return work


def restore_requires_grad(work: nn.Module, model: nn.Module) -> None:
    """Give every parameter of `work` (a pruned or extracted copy of `model`) the `requires_grad` its namesake has
    in `model`. Pruning makes new parameters, which would otherwise all require grad."""
    flags = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    for name, parameter in work.named_parameters():
        parameter.requires_grad_(flags.get(name, True))


def ordinary_tensors(value: Any) -> Any:
    """`value` (a tensor, or tuples, lists and dicts of them) with every inference tensor cloned into an ordinary
    one: a tensor made inside `torch.inference_mode()` cannot take part in a traced or differentiated forward.
    A value without inference tensors is returned as it is (the same object)."""
    if isinstance(value, torch.Tensor):
        return value.clone() if value.is_inference() else value
    if isinstance(value, Mapping):
        items = {key: ordinary_tensors(item) for key, item in value.items()}
        return value if all(items[key] is value[key] for key in items) else items
    if isinstance(value, (tuple, list)):
        parts = [ordinary_tensors(item) for item in value]
        if all(new is old for new, old in zip(parts, value, strict=True)):
            return value
        return type(value)(*parts) if hasattr(value, "_fields") else type(value)(parts)
    return value


def world() -> tuple[int, int]:
    """(rank, world size) under torch.distributed; (0, 1) when it is not running."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call `write(partial_path)`, then rename the partial file onto `path`: a crash or a concurrent reader never
    sees a half-written file. The parent folder is created."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def known_fields(cls: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as keyword arguments of the dataclass `cls`; an unknown key raises ValueError listing the valid ones."""
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid: {', '.join(valid)}")
    return dict(data)
