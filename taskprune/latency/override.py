"""Tables and channel multiples from elsewhere: `override` sets what `prune` uses instead of measuring.

`prune(..., latency_table=...)` takes a table as an argument; `override` only sets the default of that argument
(and of the device's channel multiple) inside a `with` block, for code that calls `prune` indirectly, and tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tables import LatencyTable

__all__ = ["injected_alignment", "injected_table", "override"]

_OVERRIDE: dict[str, Any] = {}


@contextmanager
def override(*, table: LatencyTable | None = None, alignment: int | None = None) -> Iterator[None]:
    """Use `table` (and/or `alignment`) instead of measuring, inside the `with` block.

    Example:
        >>> with taskprune.latency.override(table=table_from_the_target_device):
        ...     result = taskprune.prune(model, x, ratio=0.4, target="latency")
    """
    saved = dict(_OVERRIDE)
    _OVERRIDE.update({k: v for k, v in (("table", table), ("alignment", alignment)) if v is not None})
    try:
        yield
    finally:
        _OVERRIDE.clear()
        _OVERRIDE.update(saved)


def injected_table() -> LatencyTable | None:
    """The table given to `override`, if any."""
    return _OVERRIDE.get("table")


def injected_alignment() -> int | None:
    """The channel multiple given to `override` (or its table's), if any."""
    if "alignment" in _OVERRIDE:
        return int(_OVERRIDE["alignment"])
    if "table" in _OVERRIDE:
        return int(_OVERRIDE["table"].alignment)
    return None
