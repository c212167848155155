"""Latency tables: per layer, the time at full width and at other input and output channel counts.

- `measure_table()`: every convolution, linear and norm layer timed alone, on a random input of the shape it sees
  inside the model, at a few input and output channel counts (multiples of the alignment and the half-steps between
  them), interpolated between them. Cached as JSON, keyed by device, torch version, threads, the model's layers
  and the input shapes, with the machine's load and the timings' spread; a cached table is spot-checked against
  fresh timings before it is trusted, and measured again when they disagree (`freshness.py`).
- `macs_table()`: no timing at all, every layer costs its MACs; what `round_to="auto"` compares plans by.

The half-steps matter: the alignment comes from one representative convolution, and not every layer follows it.
On the project's CPU a 3x3 convolution with 2 output channels at full resolution runs 3.3x faster with 8 input
channels than with 16, where a staircase of 16 would say no faster at all.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .._runtime import preserved_modes
from ..tasks import flatten_outputs
from .cache import FORMAT, cache_dir, device_key, digest, read_json, write_json
from .freshness import spot_check
from .layers import LayerLatency, input_shapes, measure_layer, widths
from .timing import LayerTimer, device_of, wall_clock

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
        load: the 1-minute load average when it was measured, per CPU (-1: unknown, e.g. a hand-made table).
        spread: the median over layers of how far their repeated timings scattered (`LayerLatency.spread`).
        threads: the torch CPU threads it was measured with (0: unknown).
        measured: when it was measured (UTC, "" if unknown).
        origin: where this instance came from (measured now, the cache, a spot check's verdict), for the report;
            not saved.
    """

    total: float
    alignment: int
    layers: dict[str, LayerLatency] = field(default_factory=dict)
    key: str = ""
    step: int = 0
    load: float = -1.0
    spread: float = 0.0
    threads: int = 0
    measured: str = ""
    origin: str = field(default="", compare=False)

    @property
    def resolution(self) -> int:
        """The multiple channel counts are rounded up to when predicting: `step`, else `alignment`."""
        return self.step or self.alignment

    def to_dict(self) -> dict[str, Any]:
        saved = asdict(self)
        del saved["origin"]
        return {"format": FORMAT, **saved}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        layers = {name: LayerLatency(kind=str(e["kind"]), base=float(e["base"]), in_full=int(e["in_full"]),
                                     out_full=int(e["out_full"]), in_counts=tuple(e["in_counts"]),
                                     in_times=tuple(e["in_times"]), out_counts=tuple(e["out_counts"]),
                                     out_times=tuple(e["out_times"]), spread=float(e.get("spread", 0.0)))
                  for name, e in data["layers"].items()}
        return cls(total=float(data["total"]), alignment=int(data["alignment"]), layers=layers,
                   key=str(data.get("key", "")), step=int(data.get("step", 0)), load=float(data.get("load", -1.0)),
                   spread=float(data.get("spread", 0.0)), threads=int(data.get("threads", 0)),
                   measured=str(data.get("measured", "")))

    def conditions(self) -> str:
        """The load, threads and spread it was measured under, in words."""
        load = f"load {self.load:.2f} per CPU" if self.load >= 0 else "unknown load"
        when = f" at {self.measured}" if self.measured else ""
        return f"measured{when} with {self.threads or '?'} thread(s), {load}, timings within {self.spread:.1%}"


def measure_table(model: nn.Module, example_inputs: Any, *, alignment: int = 1, progress: bool = True,
                  warmup: int = 1, repeats: int = 7, timer: LayerTimer | None = None) -> LatencyTable:
    """Latency table of `model` on its device, from the disk cache or measured now.

    Every convolution, linear and norm layer is timed alone on a random input of the shape it receives in
    `model(example_inputs)`, at full width and at about 20% to 90% of its input and of its output channels
    (multiples of `alignment`, and half an alignment below each), the other side held at full width. The table
    records the machine's load and the timings' spread. A cached table is trusted only after a spot check: its
    slowest layers are timed again, and the table is measured anew when they disagree by more than the spreads
    allow (`freshness.spot_check`). `table.origin` says which happened.

    Args:
        timer: times a module (default: the device's wall clock after `warmup` calls); tests pass their own.
    """
    timer = timer or wall_clock(warmup)
    device = device_of(model)
    shapes, calls = input_shapes(model, example_inputs)
    structure = [(name, repr(m)) for name, m in model.named_modules() if name in shapes]
    inputs = [tuple(t.shape) for t in flatten_outputs(example_inputs)]
    key = digest({**device_key(device), "layers": structure, "inputs": inputs, "alignment": alignment})
    path = cache_dir() / f"latency-{key}.json"
    cached = read_json(path)
    stale = ""
    if cached is not None:
        table = LatencyTable.from_dict(cached)
        check = spot_check(table.layers, model, shapes, calls, device, timer)
        if check.agrees:
            return replace(table, origin=f"latency table from the cache ({path.name}, {table.conditions()}); "
                                         f"{check.describe()}")
        stale = f"the cached latency table ({table.conditions()}) failed its spot check: {check.describe()}; "
    modules = dict(model.named_modules())
    items: Iterable[tuple[str, tuple[int, ...]]] = shapes.items()
    if progress:
        from rich.progress import track  # imported only when shown

        items = track(items, total=len(shapes), description="measuring layer latency", transient=True)
    load = _load_per_cpu()
    layers = {name: measure_layer(modules[name], shape, calls[name], alignment, device, timer, repeats)
              for name, shape in items}
    with preserved_modes(model, eval=True):
        total = statistics.median(timer(model, example_inputs, repeats))
    table = LatencyTable(total=total, alignment=alignment, layers=layers, key=key, step=max(1, alignment // 2),
                         load=load, spread=statistics.median(layer.spread for layer in layers.values()) if layers
                         else 0.0, threads=torch.get_num_threads(),
                         measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    write_json(path, table.to_dict())
    return replace(table, origin=f"{stale or 'latency table '}measured now ({table.conditions()}), cached as "
                                 f"{path.name}")


def _load_per_cpu() -> float:
    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 3)
    except OSError:
        return -1.0


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
