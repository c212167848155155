"""`LayerKind`: everything taskprune knows about one family of layers, in one record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["LayerKind"]

ParamDims = Sequence[tuple[str, int]]


@dataclass(frozen=True)
class LayerKind:
    """One family of layers: which parameter slices a channel owns, whether the layer must be kept whole, which
    parameter prices the parameter-free layers after it, and how its latency is measured.

    Attributes:
        name: the kind's registered name; latency tables record it for every timed layer.
        types: the module classes it covers (`isinstance`), narrowed by `when`.
        param_dims: (module, is_out) -> (parameter attribute, dimension) pairs a channel owns when the layer's
            output (`is_out`) or input channels are removed; attributes the module lacks (a bias of None) are
            skipped.
        when: a further condition on the instance (a convolution with groups == 1), or None.
        channels: module -> (input channels, output channels), or None when the kind has no such counts.
        own_params: module -> its own parameters besides weight and bias that run along the output channels (a
            weight-standardised conv's gain), sliced with them by the pruner.
        keep_whole: (module, qualified name) -> why the group holding it may not be pruned, "" when it may.
        per_channel: a parameter with one element per output channel, to which the MACs of the parameter-free
            layers after it are charged (they shrink with its channels); None when it has none.
        timed: whether latency tables time the layer alone at other widths (needs `channels` and `resize`).
        tied: one channel count for input and output (depthwise convolutions, norms).
        input_dim: the input tensor's channel dimension (1 for NCHW, -1 for a linear layer's features).
        weight_in_dim: the dimension of `weight` that runs along the input channels (None when tied).
        resize: (module, c_in, c_out) -> a fresh layer like `module` with these channel counts, for timing.
        macs: (module, inputs, output) -> MACs of one call, for a layer torch-pruning has no formula for.
        custom: torch-pruning has no pruning function for it; `taskprune.graph` installs one built from
            `param_dims` and `channels` (set by `register_layer`).
    """

    name: str
    types: tuple[type, ...]
    param_dims: Callable[[nn.Module, bool], ParamDims]
    when: Callable[[nn.Module], bool] | None = None
    channels: Callable[[nn.Module], tuple[int, int]] | None = None
    own_params: Callable[[nn.Module], list[str]] | None = None
    keep_whole: Callable[[nn.Module, str], str] | None = None
    per_channel: str | None = None
    timed: bool = False
    tied: bool = False
    input_dim: int = 1
    weight_in_dim: int | None = None
    resize: Callable[[nn.Module, int, int], nn.Module] | None = None
    macs: Callable[[nn.Module, tuple[Any, ...], Any], float] | None = None
    custom: bool = False

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"a layer kind needs a name, got {self.name!r}")
        if not self.types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in self.types):
            raise TypeError(f"layer kind {self.name!r}: types must be nn.Module classes, got {self.types!r}")
        if self.timed and (self.channels is None or self.resize is None):
            raise ValueError(f"layer kind {self.name!r} is timed, so it needs `channels` and `resize`")

    def covers(self, module: Any) -> bool:
        """Whether `module` belongs to this kind."""
        if not isinstance(module, nn.Module) or not isinstance(module, self.types):
            return False
        return self.when is None or bool(self.when(module))

    def side(self, dim: int) -> int:
        """Which of the layer's channel counts (0: input, 1: output) the weight's dimension `dim` runs along."""
        if self.tied or self.weight_in_dim is None:
            return 1
        return 0 if dim == self.weight_in_dim else 1

    def reason_kept_whole(self, module: nn.Module, name: str) -> str:
        """Why the group holding `module` may not be pruned ("" when it may)."""
        return self.keep_whole(module, name) if self.keep_whole is not None else ""
