"""Plain data about channel groups: which parameter slices each channel owns, and which tasks it serves.

No torch-pruning here: `taskprune.graph` reads its groups into these (the slices from `taskprune.layers`), and
everything else works on them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch

__all__ = ["ChannelGroup", "ParamSlice"]


@dataclass(frozen=True)
class ParamSlice:
    """The part of one parameter that a group's channels own: `param[..., local[i], ...]` (along `dim`) belongs
    to the group's channel `root[i]`."""

    param: str
    dim: int
    local: torch.Tensor
    root: torch.Tensor


@dataclass
class ChannelGroup:
    """One channel group: channels that must be removed together (one root layer's output channels and everything
    coupled to them). The one record of a group, from the graph (`index`, `slices`) to `inspect` and the report
    (`after`; no slices there).

    Attributes:
        index: the group's position in its graph's groups.
        layer: the root layer's qualified name (also readable as `root`).
        channels: its channel count before pruning (also readable as `before`).
        out_layers: layers whose output channels the group's channels are.
        in_layers: layers that read them as input channels.
        slices: the parameter slices every channel owns (empty outside a graph).
        tasks: the tasks whose outputs the group reaches, sorted.
        kept_whole: why the group may not be pruned, "" when it may (also readable as `note`).
        after: its channel count after pruning; `channels` until a plan is applied.
    """

    index: int
    layer: str
    channels: int
    out_layers: tuple[str, ...] = ()
    in_layers: tuple[str, ...] = ()
    slices: tuple[ParamSlice, ...] = ()
    tasks: tuple[str, ...] = ()
    kept_whole: str = ""
    after: int = -1

    def __post_init__(self) -> None:
        self.tasks = tuple(sorted(self.tasks))
        if self.after < 0:
            self.after = self.channels

    @property
    def root(self) -> str:
        """The root layer's qualified name (the same as `layer`)."""
        return self.layer

    @property
    def before(self) -> int:
        """The channel count before pruning (the same as `channels`)."""
        return self.channels

    @property
    def note(self) -> str:
        """Why the group was kept whole, "" when it was not (the same as `kept_whole`)."""
        return self.kept_whole

    @property
    def prunable(self) -> bool:
        """Whether the planner may remove channels of this group (nothing keeps it whole)."""
        return not self.kept_whole

    @property
    def serves(self) -> str:
        """"shared" when the group reaches several tasks, else the one task it serves ("none" for no task)."""
        return "shared" if len(self.tasks) > 1 else (self.tasks[0] if self.tasks else "none")

    def without_slices(self, after: int | None = None) -> ChannelGroup:
        """This group as plain data for a report: no parameter slices, and `after` channels when given."""
        return replace(self, slices=(), after=self.channels if after is None else after)

    def as_change(self, after: int) -> ChannelGroup:
        """This group as a `PruneReport` keeps it, which is what a saved file holds: the layer, channels before and
        `after`, the tasks and why it was kept whole (no slices or layer lists), so a report read back is equal."""
        return replace(self, slices=(), out_layers=(), in_layers=(), after=after)

    def to_dict(self) -> dict[str, Any]:
        """Every field but the slices (tensors), JSON-ready."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self) if f.name != "slices"}
