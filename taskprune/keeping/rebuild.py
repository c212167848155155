"""How `load` rebuilds a model that is not an instance of the class it was made from before it replays the pruning
history: a registry of rebuilds by name. The code that makes such a model registers its rebuild (`taskprune.extract`
registers "extract") and marks the model it returns with `mark_rebuild`, so `save` and `load` know no maker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import fx, nn

__all__ = ["REBUILD", "Rebuild", "list_rebuilds", "mark_rebuild", "rebuild", "rebuild_of", "register_rebuild"]

REBUILD = "taskprune_rebuild"
"""The key in a `torch.fx.GraphModule`'s `meta` (which survives deep copies) holding how to make it again from a
fresh instance of the original model: {"kind": a registered rebuild, "architecture": the original's class, ...the
rebuild's own plain arguments}. `save` records it; `load` hands it to the rebuild of that kind."""

Rebuild = Callable[[nn.Module, Any, Mapping[str, Any], Any, str], nn.Module]
"""`rebuild(fresh_model, example_inputs, recorded, tasks, where) -> model`: make the saved model's unpruned
architecture from `fresh_model`. `recorded` is what `mark_rebuild` stored, `tasks` what the caller gave `load`,
`where` names the file for error messages."""

_REBUILDS: dict[str, Rebuild] = {}


def register_rebuild(kind: str, rebuild: Rebuild) -> None:
    """Register how `load` makes models marked with `kind` again (one maker per kind)."""
    if kind in _REBUILDS and _REBUILDS[kind] is not rebuild:
        raise ValueError(f"a rebuild named {kind!r} is already registered")
    _REBUILDS[kind] = rebuild


def list_rebuilds() -> list[str]:
    return sorted(_REBUILDS)


def mark_rebuild(model: fx.GraphModule, kind: str, architecture: str, **arguments: Any) -> None:
    """Record in `model.meta` that it is made by the rebuild `kind` (with plain `arguments`) from an instance of
    `architecture`, so `save` writes it down and `load` makes it again."""
    if kind not in _REBUILDS:
        raise ValueError(f"Unknown rebuild {kind!r}; available: {', '.join(list_rebuilds())}")
    model.meta[REBUILD] = {"kind": kind, "architecture": architecture, **arguments}


def rebuild_of(model: nn.Module) -> dict[str, Any] | None:
    """What `mark_rebuild` recorded on `model`, or None for a model that is its own class's instance."""
    recorded = model.meta.get(REBUILD) if isinstance(model, fx.GraphModule) else None
    return dict(recorded) if recorded is not None else None


def rebuild(fresh_model: nn.Module, example_inputs: Any, recorded: Mapping[str, Any], tasks: Any,
            where: str) -> nn.Module:
    """Make the architecture `recorded` describes from `fresh_model`, by its registered rebuild."""
    maker = _REBUILDS.get(str(recorded.get("kind")))
    if maker is None:
        raise ValueError(f"{where} holds a model made by {recorded.get('kind')!r}, which no imported module "
                         f"rebuilds; rebuilds available: {', '.join(list_rebuilds()) or 'none'}")
    return maker(fresh_model, example_inputs, recorded, tasks, where)
