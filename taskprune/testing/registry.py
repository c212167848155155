"""One registry of test models: `@register_test_model(kind)` on a factory, `list_test_models`, `get_test_model`.

A factory is a function of no arguments returning `(model, example_inputs)`; it is registered under its own name,
seeded (`seeded_factory`: the caller's random state is untouched, norms randomised, eval mode) and tagged with a
kind: "tiny" (a few thousand to ~200k parameters, one awkward graph feature each), "zoo" (width-reduced lookalikes
of published architectures at 64x64) or "large" (full size, kept out of the default test run).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ._util import seeded_factory

__all__ = ["KINDS", "ModelFactory", "RegisteredModel", "get_test_model", "list_test_models", "register_test_model",
           "registered_model"]

KINDS = ("tiny", "zoo", "large")
ModelFactory = Callable[[], tuple[nn.Module, Any]]
"""A zero-argument callable returning ``(model, example_inputs)``."""


@dataclass(frozen=True)
class RegisteredModel:
    """A registered factory, its kind and the first line of its docstring."""

    name: str
    kind: str
    factory: ModelFactory
    summary: str


_REGISTRY: dict[str, RegisteredModel] = {}


def register_test_model(kind: str) -> Callable[[ModelFactory], ModelFactory]:
    """Register a factory of kind "tiny", "zoo" or "large" under its function name (seeded on the way in).

    Example:
        >>> @register_test_model("tiny")
        ... def two_heads() -> tuple[nn.Module, torch.Tensor]:
        ...     return TwoHeads(), torch.randn(1, 3, 32, 32)
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown test model kind {kind!r}; available: {', '.join(KINDS)}")

    def add(factory: ModelFactory) -> ModelFactory:
        name = factory.__name__
        if name in _REGISTRY:
            raise ValueError(f"a test model named {name!r} is already registered")
        seeded = seeded_factory(factory)
        summary = (factory.__doc__ or "").strip().splitlines()[0] if factory.__doc__ else ""
        _REGISTRY[name] = RegisteredModel(name, kind, seeded, summary)
        return seeded

    return add


def list_test_models(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered names matching the fnmatch `pattern` (and of `kind`, when given), sorted."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"Unknown test model kind {kind!r}; available: {', '.join(KINDS)}")
    return sorted(name for name, entry in _REGISTRY.items()
                  if fnmatch.fnmatchcase(name, pattern) and (kind is None or entry.kind == kind))


def get_test_model(name: str) -> ModelFactory:
    """The factory registered as `name`; an unknown name raises ValueError listing the registered ones."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown test model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name].factory


def registered_model(name: str) -> RegisteredModel:
    """The registry entry of `name` (kind and summary besides the factory)."""
    get_test_model(name)
    return _REGISTRY[name]

