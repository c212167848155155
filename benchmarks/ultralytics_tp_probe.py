"""Where plain torch-pruning fails on an Ultralytics model: its MetaPruner built and stepped once, as its README sets
it up (GroupMagnitudeImportance, the detection head in `ignored_layers`), under an address-space cap so that running
out of memory is a MemoryError with a traceback instead of the kernel's OOM killer. Records the stage reached, the
CPU seconds, the peak resident memory (VmHWM) and the innermost frames of the failure.

    python benchmarks/ultralytics_tp_probe.py --model yolo11n-seg.yaml --memory-cap-gb 8

Writes benchmarks/results/ultralytics_tp_probe.json and .md. Needs `pip install taskprune[ultralytics]`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import resource
import time
import traceback
import warnings

from harness import RESULTS, machine, uptime, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolo11n-seg.yaml", help="an Ultralytics model YAML")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--ratio", type=float, default=0.3, help="torch-pruning's pruning_ratio")
    parser.add_argument("--memory-cap-gb", type=int, default=8)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (args.memory_cap_gb << 30, args.memory_cap_gb << 30))
    os.environ.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_VERBOSE="0")
    import torch
    import torch_pruning as tp
    from ultralytics import YOLO

    from taskprune.testing.memory import peak_mb

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    net = YOLO(args.model).model
    for p in net.parameters():
        p.requires_grad_(True)
    record: dict = {"settings": vars(args), "load_before": uptime(), "stages": [],
                    "torch_pruning": importlib.metadata.version("torch-pruning")}  # tp.__version__ says 1.6.0 in 1.6.1
    start = time.process_time()
    stage = "MetaPruner(...) (builds the dependency graph and its groups)"
    try:
        pruner = tp.pruner.MetaPruner(net, torch.zeros(1, 3, args.imgsz, args.imgsz), pruning_ratio=args.ratio,
                                      importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      ignored_layers=[net.model[-1]])
        record["stages"].append({"stage": stage, "cpu_s": time.process_time() - start, "peak_rss_mb": peak_mb()})
        stage, start = "step()", time.process_time()
        pruner.step()
        record["stages"].append({"stage": stage, "cpu_s": time.process_time() - start, "peak_rss_mb": peak_mb()})
    except (MemoryError, RuntimeError, IndexError, ValueError) as error:
        frames = traceback.extract_tb(error.__traceback__)[-6:]
        record["failure"] = {"stage": stage, "error": f"{type(error).__name__}: {error}".splitlines()[0][:300],
                             "cpu_s": time.process_time() - start, "peak_rss_mb": peak_mb(),
                             "frames": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                                        for f in frames]}
    record.update(load_after=uptime(), machine=machine())
    write_results(RESULTS, "ultralytics_tp_probe", record, markdown(record))
    print(markdown(record))


def markdown(record: dict) -> str:
    s = record["settings"]
    lines = [f"`python benchmarks/ultralytics_tp_probe.py --model {s['model']} --imgsz {s['imgsz']} --ratio "
             f"{s['ratio']} --memory-cap-gb {s['memory_cap_gb']}`", "",
             f"torch-pruning {record['torch_pruning']}: `MetaPruner` with `GroupMagnitudeImportance(p=2)`, the "
             f"detection head ignored, on {s['model']} built from Ultralytics' YAML, one thread, address space "
             f"capped at {s['memory_cap_gb']} GB. Load before: `{record['load_before']}`; after: "
             f"`{record['load_after']}`.", "", "| stage | outcome | CPU s | peak RSS MB |", "|---|---|---|---|"]
    lines += [f"| {r['stage']} | done | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} |" for r in record["stages"]]
    if "failure" in record:
        f = record["failure"]
        lines += [f"| {f['stage']} | {f['error'] or 'failed'} | {f['cpu_s']:.1f} | {f['peak_rss_mb']:.0f} |", "",
                  "Innermost frames of the failure:", "", *[f"- `{frame}`" for frame in f["frames"]]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
