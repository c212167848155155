"""Why torch-pruning cannot reach 2x on the driving teacher: where each method removes its MACs as its ratio grows.

In benchmarks/frontier.py every torch-pruning configuration got slower as its ratio passed about 0.68 (fastest
1.63x). This prunes the seed-0 teacher with the frontier's torch-pruning configurations and with taskprune's params
target at a few ratios, with the frontier's scoring batches, and reports for each: parameters and MACs removed,
the share of MACs removed in high-resolution convolutions (output stride 8 or finer) and in low-resolution ones
(stride 16 or coarser), and the speedup over the dense teacher measured in one interleaved run (batch 1, one
thread, median of 15 rounds).

    OMP_NUM_THREADS=1 python benchmarks/frontier_widths.py

Writes benchmarks/results/frontier_widths.json and .md.
"""

from __future__ import annotations

import os

import torch
from evidence import Bench, Settings
from frontier import METHODS, prune_at
from harness import RESULTS, machine, write_json

from taskprune.latency import latency_ratios

RATIOS = (0.45, 0.675, 0.9)
NAMES = ("tp_global_iso_r8", "tp_global_iso_r16", "tp_local_r8", "params_task_taylor")


def conv_macs(model: torch.nn.Module, example: torch.Tensor) -> dict[str, float]:
    """MACs of the model's convolutions split by output stride: 'high' (stride <= 8) and 'low' (stride >= 16)."""
    split = {"high": 0.0, "low": 0.0}
    height = example.shape[-2]

    def hook(module: torch.nn.Conv2d, _inputs: object, output: torch.Tensor) -> None:
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        macs = output.shape[-2] * output.shape[-1] * kernel * module.out_channels
        split["high" if height // output.shape[-2] <= 8 else "low"] += macs

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(example)
    for handle in handles:
        handle.remove()
    return split


def main() -> None:
    torch.set_num_threads(1)
    bench = Bench(Settings())
    dense = conv_macs(bench.teacher, bench.example)
    rows, models = [], []
    for name in NAMES:
        for ratio in RATIOS:
            model, _ = prune_at(bench, METHODS[name], ratio, seed=0)
            macs = conv_macs(model, bench.example)
            params = sum(p.numel() for p in model.parameters())
            rows.append({"method": name, "ratio": ratio, "params_removed": 1 - params / bench.teacher_params,
                         "macs_removed": 1 - sum(macs.values()) / sum(dense.values()),
                         "high_res_macs_removed": 1 - macs["high"] / dense["high"],
                         "low_res_macs_removed": 1 - macs["low"] / dense["low"]})
            models.append(model)
    load = os.getloadavg()[0]
    ratios = latency_ratios([bench.teacher, *models], bench.example, repeats=15)
    for row, ratio in zip(rows, ratios[1:], strict=True):
        row["speedup"] = 1 / ratio
    record = {"machine": {**machine(), "load": load}, "dense_conv_macs": dense, "rows": rows}
    write_json(RESULTS / "frontier_widths.json", record)
    lines = ["# Where each method removes MACs as its ratio grows (driving teacher, seed-0 scoring batches)", "",
             "Command: `OMP_NUM_THREADS=1 python benchmarks/frontier_widths.py`; one thread, batch 1, "
             f"192x320; load {load:.1f} on 2 cores when timing began. High resolution: convolutions whose output "
             f"stride is 8 or finer ({dense['high'] / sum(dense.values()):.0%} of the dense convolution MACs).", "",
             "| method | ratio | params removed | MACs removed | high-res MACs removed | low-res MACs removed | "
             "measured speedup |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['ratio']:.3f} | {r['params_removed']:.1%} | {r['macs_removed']:.1%} | "
              f"{r['high_res_macs_removed']:.1%} | {r['low_res_macs_removed']:.1%} | {r['speedup']:.2f}x |"
              for r in rows]
    (RESULTS / "frontier_widths.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
