"""The layers a latency table times: which they are, the input each sees, and timing one at other widths."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._runtime import preserved_modes
from ..layers import get_layer_kind, kind_of
from ..tasks import call_model
from .timing import LayerTimer, relative_spread

__all__ = ["LayerLatency", "channel_counts", "input_shapes", "layer_kind", "measure_layer", "relative_time", "resized",
           "time_at", "widths"]

FRACTIONS = (0.2, 0.35, 0.5, 0.65, 0.8, 0.9)  # of a layer's channels, where a table measures it


@dataclass(frozen=True)
class LayerLatency:
    """One layer's time per forward at full width, and relative times at other input / output channel counts.

    `kind` names the layer's kind in `taskprune.layers`, which says how channel dimensions map to the weight:
    "conv", "conv_transpose", "depthwise" (one count for both), "linear", "norm" (one count), or a registered
    layer's. `spread` is how far the repeated timings at full width scattered (`relative_spread`): what a later
    spot check must agree within.
    """

    kind: str
    base: float
    in_full: int
    out_full: int
    in_counts: tuple[int, ...] = ()
    in_times: tuple[float, ...] = ()
    out_counts: tuple[int, ...] = ()
    out_times: tuple[float, ...] = ()
    spread: float = 0.0

    def at(self, c_in: int, c_out: int, alignment: int = 1) -> float:
        """Seconds per forward with `c_in` input and `c_out` output channels (independent factors)."""
        return (self.base * relative_time(self.in_counts, self.in_times, c_in, alignment)
                * relative_time(self.out_counts, self.out_times, c_out, alignment))


def relative_time(counts: Sequence[int], times: Sequence[float], channels: int, alignment: int) -> float:
    """Time at `channels` relative to full width: a staircase on the alignment, linear between measured counts."""
    if not counts:
        return 1.0
    full = counts[-1]
    if channels >= full:
        return 1.0
    snapped = min(full, math.ceil(channels / alignment) * alignment) if alignment > 1 else channels
    if snapped <= counts[0]:
        return times[0] / times[-1] * snapped / counts[0]
    for low, high, t_low, t_high in zip(counts, counts[1:], times, times[1:], strict=False):
        if low <= snapped <= high:
            return (t_low + (t_high - t_low) * (snapped - low) / (high - low)) / times[-1]
    return 1.0


def layer_kind(module: nn.Module) -> str | None:
    """The name of `module`'s kind when latency tables time it alone (see `taskprune.layers`), else None."""
    kind = kind_of(module)
    return kind.name if kind is not None and kind.timed else None


def input_shapes(model: nn.Module, example_inputs: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """Input shape of every measurable layer at its first call, and how often each is called per forward."""
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}
    names = {m: n for n, m in model.named_modules()}

    def record(module: nn.Module, args: tuple[Any, ...]) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        if args and isinstance(args[0], torch.Tensor):
            shapes.setdefault(name, tuple(args[0].shape))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if layer_kind(m) is not None]
    try:
        with torch.no_grad(), preserved_modes(model, eval=True):
            call_model(model, example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes, calls


def channel_counts(full: int, alignment: int) -> tuple[int, ...]:
    step = max(1, alignment)
    counts = {min(full, max(step, math.ceil(f * full / step) * step)) for f in FRACTIONS} | {full}
    half = step // 2
    return tuple(sorted(counts | {c - half for c in counts if half and c - half > 0}))


def resized(module: nn.Module, kind: str, c_in: int, c_out: int) -> nn.Module:
    """A fresh layer like `module` with `c_in` input and `c_out` output channels (the kind's `resize`)."""
    resize = get_layer_kind(kind).resize
    if resize is None:
        raise TypeError(f"layer kind {kind!r} cannot be resized for timing: it was registered without `resize`")
    return resize(module, c_in, c_out)


def widths(module: nn.Module, shape: tuple[int, ...]) -> tuple[str, int, int]:
    """The layer's kind, and its input and output channel counts for an input of `shape`."""
    name = layer_kind(module)
    if name is None:
        raise TypeError(f"cannot time a {type(module).__name__} at other channel counts")
    kind = get_layer_kind(name)
    c_in = shape[kind.input_dim]
    c_out = c_in if kind.tied or kind.channels is None else kind.channels(module)[1]
    return name, c_in, c_out


def measure_layer(module: nn.Module, shape: tuple[int, ...], calls: int, alignment: int, device: torch.device,
                  timer: LayerTimer, repeats: int) -> LayerLatency:
    """Time `module` alone on a random input of `shape`, at full width and at other input and output channel counts
    (`channel_counts`), the other side held at full width."""
    kind, c_in, c_out = widths(module, shape)
    tied = get_layer_kind(kind).tied
    out_counts = channel_counts(c_out, alignment)
    out_runs = [time_at(module, kind, shape, c if tied else c_in, c, device, timer, repeats) for c in out_counts]
    in_counts = () if tied else channel_counts(c_in, alignment)
    in_runs = [time_at(module, kind, shape, c, c_out, device, timer, repeats) for c in in_counts[:-1]]
    out_times = tuple(calls * statistics.median(run) for run in out_runs)
    in_times = tuple(calls * statistics.median(run) for run in in_runs) + (out_times[-1],) if in_counts else ()
    return LayerLatency(kind=kind, base=out_times[-1], in_full=c_in, out_full=c_out, in_counts=in_counts,
                        in_times=in_times, out_counts=out_counts, out_times=out_times,
                        spread=relative_spread(out_runs[-1]))


def time_at(module: nn.Module, kind: str, shape: tuple[int, ...], c_in: int, c_out: int, device: torch.device,
            timer: LayerTimer, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of a copy of `module` resized to `c_in` / `c_out` channels."""
    layer = resized(module, kind, c_in, c_out).to(device).eval()
    size = list(shape)
    size[get_layer_kind(kind).input_dim] = c_in
    return timer(layer, torch.randn(size, device=device), repeats)
