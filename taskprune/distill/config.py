"""`Distill`: how to distil from the unpruned teacher (which layers, which loss, how channels align, how much)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .._runtime import known_fields
from .losses import FEATURE_LOSSES

__all__ = ["ALIGNMENTS", "Distill"]

ALIGNMENTS = ("adapter", "select")


@dataclass(frozen=True)
class Distill:
    """How to distil: which layers, which loss, how to align channels, and the weight of the distillation term.

    Args:
        layers: "auto" (the shared trunk's outputs, one per spatial scale; see `auto_layers`) or qualified module
            names present in both teacher and student. A list is stored as a tuple.
        loss: "mse", "pkd" (1 - Pearson per channel) or "cwd" (channel-wise spatial softmax KL).
        align: "select" (compare with the teacher channels the student kept) or "adapter" (a trained 1x1 conv from
            the student's channels to all of the teacher's, initialised to that selection).
        alpha: weight of the summed distillation loss in the total loss, >= 0.
        tau: softmax temperature of "cwd", > 0 (ignored by the other losses).

    Example:
        >>> Distill(layers=["backbone.stage3", "neck.p3"], loss="cwd", tau=4.0, alpha=2.0)
    """

    layers: str | tuple[str, ...] = "auto"
    loss: str = "mse"
    align: str = "select"
    alpha: float = 1.0
    tau: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.layers, (list, tuple)):
            if not self.layers or not all(isinstance(name, str) and name for name in self.layers):
                raise ValueError(f"Distill.layers must be a non-empty tuple of module names, got {self.layers!r}")
            if len(set(self.layers)) != len(self.layers):
                raise ValueError(f"Distill.layers names a layer more than once: {list(self.layers)}")
            object.__setattr__(self, "layers", tuple(self.layers))
        elif self.layers != "auto":
            hint = f"; for one layer write layers=({self.layers!r},)" if isinstance(self.layers, str) else ""
            raise (ValueError if isinstance(self.layers, str) else TypeError)(
                f"Distill.layers must be 'auto' or a tuple of qualified module names, got {self.layers!r}{hint}")
        if self.loss not in FEATURE_LOSSES:
            raise ValueError(f"Unknown Distill.loss {self.loss!r}; available: {', '.join(sorted(FEATURE_LOSSES))}")
        if self.align not in ALIGNMENTS:
            raise ValueError(f"Unknown Distill.align {self.align!r}; available: {', '.join(ALIGNMENTS)}")
        for name, value, low_ok in (("alpha", self.alpha, True), ("tau", self.tau, False)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Distill.{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0 or (value == 0 and not low_ok):
                raise ValueError(f"Distill.{name} must be finite and {'>=' if low_ok else '>'} 0, got {value}")
            object.__setattr__(self, name, float(value))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `Distill.from_dict(d.to_dict()) == d`."""
        data = asdict(self)
        if isinstance(self.layers, tuple):
            data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distill:
        """Rebuild from `to_dict()` output. Unknown keys raise ValueError listing the valid ones."""
        return cls(**known_fields(cls, data))
