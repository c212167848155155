"""Latency tables: per layer, the time at full width and at other input and output channel counts.

- `measure_table()`: every convolution, linear and norm layer timed alone, on a random input of the shape it sees
  inside the model, at a few input and output channel counts (multiples of the alignment and the half-steps between
  them), interpolated between them. Cached as JSON, keyed by device, torch version, threads, the model's layers
  and the input shapes.
- `macs_table()`: no timing at all, every layer costs its MACs; what `round_to="auto"` compares plans by.

The half-steps matter: the alignment comes from one representative convolution, and not every layer follows it.
On the project's CPU a 3x3 convolution with 2 output channels at full resolution runs 3.3x faster with 8 input
channels than with 16, where a staircase of 16 would say no faster at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..tasks import flatten_outputs
from .cache import FORMAT, cache_dir, device_key, digest, read_json, write_json
from .layers import LayerLatency, input_shapes, measure_layer, widths
from .timing import device_of, measure_latency

__all__ = ["LatencyTable", "LayerLatency", "macs_table", "measure_table"]


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
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        layers = {name: LayerLatency(kind=str(e["kind"]), base=float(e["base"]), in_full=int(e["in_full"]),
                                     out_full=int(e["out_full"]), in_counts=tuple(e["in_counts"]),
                                     in_times=tuple(e["in_times"]), out_counts=tuple(e["out_counts"]),
                                     out_times=tuple(e["out_times"]))
                  for name, e in data["layers"].items()}
        return cls(total=float(data["total"]), alignment=int(data["alignment"]), layers=layers,
                   key=str(data.get("key", "")), step=int(data.get("step", 0)))


def measure_table(model: nn.Module, example_inputs: Any, *, alignment: int = 1, progress: bool = True,
                  warmup: int = 1, repeats: int = 7) -> LatencyTable:
    """Latency table of `model` on its device, from the disk cache or measured now.

    Every convolution, linear and norm layer is timed alone on a random input of the shape it receives in
    `model(example_inputs)`, at full width and at about 20% to 90% of its input and of its output channels
    (multiples of `alignment`, and half an alignment below each), the other side held at full width.
    """
    device = device_of(model)
    shapes, calls = input_shapes(model, example_inputs)
    structure = [(name, repr(m)) for name, m in model.named_modules() if name in shapes]
    inputs = [tuple(t.shape) for t in flatten_outputs(example_inputs)]
    key = digest({**device_key(device), "layers": structure, "inputs": inputs, "alignment": alignment})
    path = cache_dir() / f"latency-{key}.json"
    cached = read_json(path)
    if cached is not None:
        return LatencyTable.from_dict(cached)
    modules = dict(model.named_modules())
    items: Iterable[tuple[str, tuple[int, ...]]] = shapes.items()
    if progress:
        from rich.progress import track  # imported only when shown

        items = track(items, total=len(shapes), description="measuring layer latency", transient=True)
    layers = {name: measure_layer(modules[name], shape, calls[name], alignment, device, warmup, repeats)
              for name, shape in items}
    total = measure_latency([model], example_inputs, warmup=warmup, repeats=repeats)[0]
    table = LatencyTable(total=total, alignment=alignment, layers=layers, key=key, step=max(1, alignment // 2))
    write_json(path, table.to_dict())
    return table


def macs_table(model: nn.Module, example_inputs: Any, layer_macs: Mapping[str, float] | None = None) -> LatencyTable:
    """A table that needs no timing: every convolution, linear and norm layer costs its MACs, in proportion to its
    input and output channel counts."""
    shapes, _ = input_shapes(model, example_inputs)
    if layer_macs is None:
        from ..graph import layer_macs as count_layer_macs

        layer_macs = count_layer_macs(model, example_inputs)
    macs = layer_macs
    modules = dict(model.named_modules())
    layers = {}
    for name, shape in shapes.items():
        kind, c_in, c_out = widths(modules[name], shape)
        layers[name] = LayerLatency(kind=kind, base=float(macs.get(name, 0.0)), in_full=c_in, out_full=c_out,
                                    in_counts=(c_in,), in_times=(1.0,), out_counts=(c_out,), out_times=(1.0,))
    return LatencyTable(total=sum(layer.base for layer in layers.values()), alignment=1, layers=layers)
