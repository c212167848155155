"""Criteria by name: register, look up, list."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from .base import Criterion, Scorer, declared

__all__ = ["register_criterion", "unregister_criterion", "get_criterion", "list_criteria"]

_REGISTRY: dict[str, Callable[..., Scorer]] = {}


def register_criterion(name: str) -> Callable[[Callable[..., Scorer]], Callable[..., Scorer]]:
    """Decorator registering a criterion factory (usually the class) under `name`.

    Example:
        >>> @register_criterion("l1")
        ... class L1:
        ...     name, needs = "l1", frozenset()
        ...     def score(self, context): ...
    """

    def add(factory: Callable[..., Scorer]) -> Callable[..., Scorer]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"a criterion named {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return add


def unregister_criterion(name: str) -> None:
    """Remove a registered criterion (a plug-in's tests clean up after themselves with it).

    Raises:
        ValueError: `name` is not registered (the message lists what is).
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown criterion {name!r}; available: {', '.join(list_criteria())}")
    del _REGISTRY[name]


def list_criteria(pattern: str = "*") -> list[str]:
    """Registered names matching an fnmatch pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_criterion(criterion: str | Scorer | Any, **options: Any) -> Criterion:
    """A criterion from a registered name, a criterion instance, or a `torch_pruning` importance instance. An
    object that has only `name`, `needs` and `score` comes back as a `WithDefaults` view with the `Criterion`
    protocol's defaults for the flags it leaves out; one that declares them all comes back as it is."""
    if isinstance(criterion, str):
        if criterion not in _REGISTRY:
            raise ValueError(f"Unknown criterion {criterion!r}; available: {', '.join(list_criteria())}")
        return declared(_REGISTRY[criterion](**options))
    if isinstance(criterion, Scorer):
        return declared(criterion)
    from .external import TorchPruningImportance

    if TorchPruningImportance.accepts(criterion):
        return TorchPruningImportance(criterion)
    raise TypeError(
        f"importance must be a criterion name ({', '.join(list_criteria())}), an object with name/needs/score, "
        f"or a torch_pruning.importance.Importance; got {type(criterion).__name__}"
    )
