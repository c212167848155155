"""Parameters, MACs and CPU latency of DrivingNet's three sizes, and SyntheticDriving's rendering speed.

    python benchmarks/driving_sizes.py --image-size 384 640 --repeats 10 --threads 2

Writes benchmarks/results/driving_sizes.json and .md. Latency is batch 1, eval mode, no_grad, the median of
`--repeats` timed forwards after `--warmup` untimed ones. On a shared machine wall time is only as good as its
idleness, so the process CPU time per forward is recorded too (with one thread it is the latency an idle core would
give), along with the thread count and the load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from harness import RESULTS, write_results

from taskprune.driving import DrivingNet, SyntheticDriving
from taskprune.graph.profile import count_macs_and_params


def measure(size: str, image_size: tuple[int, int], repeats: int, warmup: int) -> dict:
    model = DrivingNet(size=size).eval()
    example = torch.rand(1, 3, *image_size)
    macs, params = count_macs_and_params(model, example)
    times, cpu_times = [], []
    with torch.no_grad():
        for i in range(warmup + repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            model(example)
            if i >= warmup:
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
    return {"size": size, "params": params, "macs": macs, "latency_ms_median": 1000 * statistics.median(times),
            "latency_ms_min": 1000 * min(times), "cpu_ms_median": 1000 * statistics.median(cpu_times)}


def generator_speed(image_size: tuple[int, int], count: int) -> dict[str, float]:
    """Scenes rendered by SyntheticDriving per wall second and per CPU second, in this one process."""
    data = SyntheticDriving(count + 1, size=image_size, seed=0)
    data[count]  # first call pays for imports and allocations
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(count):
        data[i]
    return {"per_wall_s": round(count / (time.perf_counter() - start), 1),
            "per_cpu_s": round(count / (time.process_time() - cpu_start), 1)}


def to_markdown(result: dict) -> str:
    height, width = result["image_size"]
    lines = [f"# DrivingNet sizes at {height}x{width}", "",
             f"CPU, {result['threads']} threads, batch 1, eval, no_grad; median of {result['repeats']} runs "
             f"(load average at start {result['load_average']}).", "",
             "| size | params (M) | MACs (G) | latency median (ms) | latency min (ms) | CPU time median (ms) |",
             "|---|---|---|---|---|---|"]
    for row in result["sizes"]:
        lines.append(f"| {row['size']} | {row['params'] / 1e6:.2f} | {row['macs'] / 1e9:.2f} | "
                     f"{row['latency_ms_median']:.1f} | {row['latency_ms_min']:.1f} | {row['cpu_ms_median']:.1f} |")
    lines += ["", "| SyntheticDriving size | scenes per wall second | scenes per CPU second |", "|---|---|---|"]
    lines += [f"| {key} | {value['per_wall_s']:.1f} | {value['per_cpu_s']:.1f} |"
              for key, value in result["synthetic_scenes"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, nargs=2, default=(384, 640), metavar=("H", "W"))
    parser.add_argument("--sizes", nargs="+", default=["n", "s", "m"], choices=["n", "s", "m"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scenes", type=int, default=100, help="scenes rendered per generator measurement")
    parser.add_argument("--out", type=Path, default=RESULTS / "driving_sizes")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image_size = (args.image_size[0], args.image_size[1])
    result = {"image_size": list(image_size), "threads": args.threads, "repeats": args.repeats,
              "torch": torch.__version__, "machine": platform.machine(),
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "sizes": [measure(size, image_size, args.repeats, args.warmup) for size in args.sizes],
              "synthetic_scenes": {f"{h}x{w}": generator_speed((h, w), args.scenes)
                                   for h, w in ((192, 320), (384, 640))}}
    write_results(args.out.parent, args.out.name, result, to_markdown(result), indent=2)
    print(to_markdown(result))


if __name__ == "__main__":
    main()
