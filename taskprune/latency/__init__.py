"""Latency measured on the current device: the channel multiple it runs fastest, per-layer latency tables,
end-to-end timing. Measuring only: `taskprune.budget` plans with what this package measures.

Fewer parameters are not less time. CPU kernels work on vectors of channels (16 floats with AVX-512), so a layer
with 49 channels costs as much as one with 64; GPUs behave alike with their tile sizes. So instead of counting
FLOPs, this package measures:

- `device_alignment()`: the channel multiple at which a representative convolution's time steps up, found by a
  one-second probe (`alignment.py`; cached per process and on disk, `cache.py`).
- `measure_table()`: every convolution, linear and norm layer timed alone at several channel counts (`tables.py`,
  `layers.py`), cached with the load and spread it was measured under and spot-checked before a cached table is
  trusted (`freshness.py`); `clear_cache()` deletes the cache; `macs_table()`, the same layers costed by their
  MACs, without timing.
- `measure_latency()` / `latency_ratios()`: end-to-end medians of several models, interleaved so that load from
  other processes falls on all of them alike; compare models only within one call (`timing.py`).
- `steady_allocator()`: CPU timings that do not depend on the allocator's history.

A table from another device goes to `prune(..., latency_table=table)`; `override(table=..., alignment=...)` sets
that default inside a `with` block (`override.py`).
"""

from .alignment import device_alignment as device_alignment
from .alignment import probe_alignment as probe_alignment
from .cache import cache_dir as cache_dir
from .cache import clear_cache as clear_cache
from .freshness import SpotCheck as SpotCheck
from .freshness import spot_check as spot_check
from .layers import LayerLatency as LayerLatency
from .override import injected_alignment as injected_alignment
from .override import injected_table as injected_table
from .override import override as override
from .tables import LatencyTable as LatencyTable
from .tables import macs_table as macs_table
from .tables import measure_table as measure_table
from .timing import LayerTimer as LayerTimer
from .timing import latency_ratios as latency_ratios
from .timing import measure_latency as measure_latency
from .timing import measure_rounds as measure_rounds
from .timing import steady_allocator as steady_allocator
from .timing import time_call as time_call
from .timing import wall_clock as wall_clock

__all__ = ["LatencyTable", "LayerLatency", "LayerTimer", "SpotCheck", "cache_dir", "clear_cache", "device_alignment",
           "injected_alignment", "injected_table", "latency_ratios", "macs_table", "measure_latency", "measure_rounds",
           "measure_table", "override", "probe_alignment", "spot_check", "steady_allocator", "time_call",
           "wall_clock"]
