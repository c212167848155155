"""Latency measured on the current device: a quick alignment probe, per-layer latency tables, end-to-end timing.

Fewer parameters are not less time. CPU kernels work on vectors of channels (16 floats with AVX-512), so a layer
with 49 channels costs as much as one with 64; GPUs behave alike with their tile sizes. So instead of counting
FLOPs, this module measures:

- `device_alignment()`: the channel multiple at which a representative convolution's time steps up, found by a
  one-second probe (`latency_probe.py`; cached per process and on disk).
- `measure_table()`: every convolution, linear and norm layer timed alone, on a random input of the shape it sees
  inside the model, at a few input and output channel counts (multiples of the alignment and the half-steps between
  them), interpolated between them. Cached as JSON, keyed by device, torch version, threads, the model's layers
  and the input shapes.
- `measure_latency()`: end-to-end medians of several models, interleaved so that load from other processes
  falls on all of them alike; compare models only within one call.
- `macs_table()`: no timing at all, every layer costs its MACs; what `round_to="auto"` compares plans by.

The half-steps matter: the alignment comes from one representative convolution, and not every layer follows it.
On the project's CPU a 3x3 convolution with 2 output channels at full resolution runs 3.3x faster with 8 input
channels than with 16, where a staircase of 16 would say no faster at all.

Tests and users with a table from another device pass it through `override(table=..., alignment=...)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
from torch import nn

from ._runtime import preserved_modes
from .counting import layer_macs
from .latency_cache import _FORMAT, _device_key, _digest, _read, _write, cache_dir
from .latency_probe import probe_alignment
from .tasks import call_model
from .timing import _device_of, latency_ratios, measure_latency, measure_rounds, steady_allocator, time_call

__all__ = ["LayerLatency", "LatencyTable", "cache_dir", "device_alignment", "latency_ratios", "macs_table",
           "measure_latency", "measure_rounds", "measure_table", "override", "probe_alignment", "steady_allocator",
           "time_call"]

_FRACTIONS = (0.2, 0.35, 0.5, 0.65, 0.8, 0.9)
_OVERRIDE: dict[str, Any] = {}
_ALIGNMENTS: dict[str, int] = {}  # per-process cache of probe results, by device key


@dataclass(frozen=True)
class LayerLatency:
    """One layer's time per forward at full width, and relative times at other input / output channel counts.

    `kind` says how channel dimensions map to the weight: "conv", "conv_transpose", "depthwise" (one count for
    both), "linear", "norm" (one count).
    """

    kind: str
    base: float
    in_full: int
    out_full: int
    in_counts: tuple[int, ...] = ()
    in_times: tuple[float, ...] = ()
    out_counts: tuple[int, ...] = ()
    out_times: tuple[float, ...] = ()

    def at(self, c_in: int, c_out: int, alignment: int = 1) -> float:
        """Seconds per forward with `c_in` input and `c_out` output channels (independent factors)."""
        return (self.base * _relative(self.in_counts, self.in_times, c_in, alignment)
                * _relative(self.out_counts, self.out_times, c_out, alignment))


@dataclass(frozen=True)
class LatencyTable:
    """Measured latencies of one model on one device.

    Attributes:
        total: dense end-to-end seconds per forward.
        alignment: the channel multiple the device runs fastest (1: none).
        layers: qualified layer name -> its `LayerLatency`.
        key: the cache key it was measured under (empty for hand-made tables).
        step: channel counts are rounded up to a multiple of this before interpolating: the finest step measured
            (0: the alignment).
    """

    total: float
    alignment: int
    layers: dict[str, LayerLatency] = field(default_factory=dict)
    key: str = ""
    step: int = 0

    @property
    def resolution(self) -> int:
        """The multiple channel counts are rounded up to when predicting: `step`, else `alignment`."""
        return self.step or self.alignment

    def to_dict(self) -> dict[str, Any]:
        return {"format": _FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        layers = {name: LayerLatency(kind=str(e["kind"]), base=float(e["base"]), in_full=int(e["in_full"]),
                                     out_full=int(e["out_full"]), in_counts=tuple(e["in_counts"]),
                                     in_times=tuple(e["in_times"]), out_counts=tuple(e["out_counts"]),
                                     out_times=tuple(e["out_times"]))
                  for name, e in data["layers"].items()}
        return cls(total=float(data["total"]), alignment=int(data["alignment"]), layers=layers,
                   key=str(data.get("key", "")), step=int(data.get("step", 0)))


def _relative(counts: Sequence[int], times: Sequence[float], channels: int, alignment: int) -> float:
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


# -- timing -------------------------------------------------------------------------------------------------------
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


# -- the alignment probe ------------------------------------------------------------------------------------------
def device_alignment(device: torch.device | str = "cpu") -> int:
    """The channel multiple the device runs fastest: from `override`, this process, the disk cache or a probe."""
    if "alignment" in _OVERRIDE:
        return int(_OVERRIDE["alignment"])
    if "table" in _OVERRIDE:
        return int(_OVERRIDE["table"].alignment)
    device = torch.device(device)
    key = _device_key(device)
    digest = _digest({"probe": key, "statistic": "min"})
    if digest not in _ALIGNMENTS:
        path = cache_dir() / f"probe-{digest}.json"
        cached = _read(path)
        if cached is None:
            cached = {"format": _FORMAT, **key, **probe_alignment(device)}
            _write(path, cached)
        _ALIGNMENTS[digest] = int(cached["alignment"])
    return _ALIGNMENTS[digest]


# -- per-layer tables ---------------------------------------------------------------------------------------------
def measure_table(model: nn.Module, example_inputs: Any, *, alignment: int = 1, progress: bool = True,
                  warmup: int = 1, repeats: int = 7) -> LatencyTable:
    """Latency table of `model` on its device, from the `override` table, the disk cache, or measurement.

    Every convolution, linear and norm layer is timed alone on a random input of the shape it receives in
    `model(example_inputs)`, at full width and at about 20% to 90% of its input and of its output channels
    (multiples of `alignment`, and half an alignment below each), the other side held at full width.
    """
    if "table" in _OVERRIDE:
        return _OVERRIDE["table"]
    device = _device_of(model)
    shapes, calls = _input_shapes(model, example_inputs)
    structure = [(name, repr(m)) for name, m in model.named_modules() if name in shapes]
    inputs = [tuple(t.shape) for t in _tensors(example_inputs)]
    key = _digest({**_device_key(device), "layers": structure, "inputs": inputs, "alignment": alignment})
    path = cache_dir() / f"latency-{key}.json"
    cached = _read(path)
    if cached is not None:
        return LatencyTable.from_dict(cached)
    modules = dict(model.named_modules())
    items: Iterable[tuple[str, tuple[int, ...]]] = shapes.items()
    if progress:
        from rich.progress import track  # imported only when shown

        items = track(items, total=len(shapes), description="measuring layer latency", transient=True)
    layers = {name: _measure_layer(modules[name], shape, calls[name], alignment, device, warmup, repeats)
              for name, shape in items}
    total = measure_latency([model], example_inputs, warmup=warmup, repeats=repeats)[0]
    table = LatencyTable(total=total, alignment=alignment, layers=layers, key=key, step=max(1, alignment // 2))
    _write(path, table.to_dict())
    return table


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.modules.conv._ConvNd):
        if module.groups == 1:
            return "conv_transpose" if module.transposed else "conv"
        if module.groups == module.in_channels == module.out_channels:
            return "depthwise"
        return None  # grouped convolutions are kept whole by the pruner
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "norm"
    return None


def _input_shapes(model: nn.Module, example_inputs: Any) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """Input shape of every measurable layer at its first call, and how often each is called per forward."""
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}
    names = {m: n for n, m in model.named_modules()}

    def record(module: nn.Module, args: tuple[Any, ...]) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        if args and isinstance(args[0], torch.Tensor):
            shapes.setdefault(name, tuple(args[0].shape))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if _kind(m) is not None]
    try:
        with torch.no_grad(), preserved_modes(model, eval=True):
            call_model(model, example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes, calls


def _counts(full: int, alignment: int) -> tuple[int, ...]:
    step = max(1, alignment)
    counts = {min(full, max(step, math.ceil(f * full / step) * step)) for f in _FRACTIONS} | {full}
    half = step // 2
    return tuple(sorted(counts | {c - half for c in counts if half and c - half > 0}))


def _resized(module: nn.Module, kind: str, c_in: int, c_out: int) -> nn.Module:
    if kind in ("conv", "conv_transpose", "depthwise"):
        module = cast(nn.modules.conv._ConvNd, module)
        groups = c_out if kind == "depthwise" else 1
        kwargs = dict(stride=module.stride, padding=module.padding, dilation=module.dilation, groups=groups,
                      bias=module.bias is not None)
        if kind == "conv_transpose":
            kwargs["output_padding"] = module.output_padding
        return type(module)(c_in, c_out, module.kernel_size, **kwargs)  # type: ignore[arg-type]
    if kind == "linear":
        return nn.Linear(c_in, c_out, bias=module.bias is not None)  # type: ignore[arg-type]
    return type(module)(c_out)


def macs_table(model: nn.Module, example_inputs: Any) -> LatencyTable:
    """A table that needs no timing: every convolution, linear and norm layer costs its MACs, in proportion to its
    input and output channel counts."""
    shapes, _ = _input_shapes(model, example_inputs)
    macs = layer_macs(model, example_inputs)
    modules = dict(model.named_modules())
    layers = {}
    for name, shape in shapes.items():
        kind, c_in, c_out = _widths(modules[name], shape)
        layers[name] = LayerLatency(kind=kind, base=float(macs.get(name, 0.0)), in_full=c_in, out_full=c_out,
                                    in_counts=(c_in,), in_times=(1.0,), out_counts=(c_out,), out_times=(1.0,))
    return LatencyTable(total=sum(layer.base for layer in layers.values()), alignment=1, layers=layers)


def _widths(module: nn.Module, shape: tuple[int, ...]) -> tuple[str, int, int]:
    """The layer's kind, and its input and output channel counts for an input of `shape`."""
    kind = _kind(module)
    if kind is None:
        raise TypeError(f"cannot time a {type(module).__name__} at other channel counts")
    c_in = shape[-1 if kind == "linear" else 1]
    c_out = {"conv": getattr(module, "out_channels", c_in), "conv_transpose": getattr(module, "out_channels", c_in),
             "linear": getattr(module, "out_features", c_in)}.get(kind, c_in)
    return kind, c_in, c_out


def _measure_layer(module: nn.Module, shape: tuple[int, ...], calls: int, alignment: int, device: torch.device,
                   warmup: int, repeats: int) -> LayerLatency:
    kind, c_in, c_out = _widths(module, shape)
    channel_dim = -1 if kind == "linear" else 1

    def timed(cin: int, cout: int) -> float:
        layer = _resized(module, kind, cin, cout).to(device).eval()
        size = list(shape)
        size[channel_dim] = cin
        x = torch.randn(size, device=device)
        return calls * time_call(lambda: layer(x), device, warmup, repeats)

    tied = kind in ("depthwise", "norm")
    out_counts = _counts(c_out, alignment)
    out_times = tuple(timed(c if tied else c_in, c) for c in out_counts)
    in_counts = () if tied else _counts(c_in, alignment)
    in_times = tuple(timed(c, c_out) for c in in_counts[:-1]) + (out_times[-1],) if in_counts else ()
    return LayerLatency(kind=kind, base=out_times[-1], in_full=c_in, out_full=c_out, in_counts=in_counts,
                        in_times=in_times, out_counts=out_counts, out_times=out_times)
