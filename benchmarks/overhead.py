"""Time of taskprune.prune per phase, and its total against plain torch-pruning on the same batches.

Plain torch-pruning here is MetaPruner + GroupTaylorImportance with the output layers ignored by hand, gradients
accumulated by one backward of the summed task losses per batch (what its Taylor importance reads), then one
`step()`. taskprune runs `prune(importance="taylor")` on the same model, batches and ratio. torch-pruning reads
its `pruning_ratio` as a fraction of channels, so it is bisected (outside the timed runs, on the same gradients)
until its parameter cut is within half a point of the one taskprune reached. Each pipeline runs `--repeats`
times, alternating, and the medians are compared as a ratio taken in this one run.

    python benchmarks/overhead.py --model tiny_driving --repeats 5
    python benchmarks/overhead.py --model resnet50_three_head --batches 8 --batch-size 1 --repeats 3 --ratio 0.5

On the randomly initialised ResNet-50 some channels get exactly zero Taylor importance (no gradient reaches their
weights on these inputs). torch-pruning's global ranking removes every channel tied with its threshold, so whatever
its ratio it removes all of them at once: its smallest cut there is about 43% of the parameters, and the ResNet-50
run asks for 0.5 so both tools can reach the same cut. The result counts those channels
(`torch_pruning_zero_importance_channels`).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch_pruning as tp
from harness import RESULTS, uptime, write_results

import taskprune
from taskprune.tasks import Tasks, flatten_outputs
from taskprune.testing import get_test_model


def energy(task_output, batch):
    return torch.stack([t.float().pow(2).mean() for t in flatten_outputs(task_output)]).sum()


def build(name: str):
    model, x = get_test_model(name)()
    model.eval()
    base = Tasks.from_output(model(x))
    tasks = Tasks(outputs=dict(base.outputs), losses=dict.fromkeys(base.outputs, energy))
    return model, x, tasks


def run_taskprune(model, x, tasks, batches, ratio):
    start = time.perf_counter()
    result = taskprune.prune(model, x, ratio=ratio, importance="taylor", tasks=tasks, data=batches,
                             num_batches=len(batches), progress=False)
    return time.perf_counter() - start, result.report


def accumulate_gradients(work, tasks, batches):
    work.eval()
    for batch in batches:
        out = work(batch)
        sum(tasks.loss(t, tasks.task_output(t, out), batch) for t in tasks.names).backward()


def tp_pruner(work, x, ratio, output_layers):
    ignored = [m for n, m in work.named_modules() if n in output_layers]
    return tp.pruner.MetaPruner(work, x, importance=tp.importance.GroupTaylorImportance(), pruning_ratio=ratio,
                                global_pruning=True, ignored_layers=ignored)


def with_gradients(model, tasks, batches):
    """A copy of `model` carrying the gradients torch-pruning's Taylor importance reads (accumulated once)."""
    copied = copy.deepcopy(model)
    accumulate_gradients(copied, tasks, batches)
    return copied


def pruner_on_copy(source, x, ratio, output_layers):
    """A copy of `source` and torch-pruning's pruner on it, with `source`'s gradients: deepcopy leaves .grad behind
    and building the pruner's graph clears it, so they are given back only now."""
    trial = copy.deepcopy(source)
    pruner = tp_pruner(trial, x, ratio, output_layers)
    for original, target in zip(source.parameters(), trial.parameters(), strict=True):
        target.grad = None if original.grad is None else original.grad.clone()
    return trial, pruner


def matched_tp_ratio(source, x, target_cut, output_layers, steps=12):
    """torch-pruning's channel ratio whose parameter cut is within half a point of `target_cut` (bisection on
    `source`'s gradients; each step prunes a copy that carries them)."""
    params = sum(p.numel() for p in source.parameters())
    low, high, best = 0.0, 0.95, (1.0, 0.0, 0.0)  # (distance, ratio, cut) of the closest step
    for _ in range(steps):
        ratio = (low + high) / 2
        trial, pruner = pruner_on_copy(source, x, ratio, output_layers)
        pruner.step()
        cut = 1 - sum(p.numel() for p in trial.parameters()) / params
        best = min(best, (abs(cut - target_cut), ratio, cut))
        if best[0] <= 0.005:
            break
        low, high = (ratio, high) if cut < target_cut else (low, ratio)
    return best[1], best[2]


def zero_importance_channels(source, x, output_layers) -> tuple[int, int]:
    """(channels whose GroupTaylorImportance is exactly zero, channels ranked) in torch-pruning's global ranking,
    on `source`'s gradients."""
    _, pruner = pruner_on_copy(source, x, 0.1, output_layers)
    importance = tp.importance.GroupTaylorImportance()
    zero = total = 0
    for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                          root_module_types=pruner.root_module_types):
        scores = importance(group)
        if scores is not None:
            zero, total = zero + int((scores == 0).sum()), total + scores.numel()
    return zero, total


def run_torch_pruning(model, x, tasks, batches, ratio, output_layers):
    phases = {}
    start = time.perf_counter()
    work = copy.deepcopy(model)  # taskprune works on a copy too; count it on both sides
    pruner = tp_pruner(work, x, ratio, output_layers)
    phases["graph"] = time.perf_counter() - start
    mark = time.perf_counter()
    accumulate_gradients(work, tasks, batches)
    phases["gradients"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pruner.step()
    phases["scoring+applying"] = time.perf_counter() - mark
    return time.perf_counter() - start, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny_driving",
                        help="a tiny or large test model (taskprune.testing.list_test_models)")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, x, tasks = build(args.model)
    generator = torch.Generator().manual_seed(0)
    batch_shape = (args.batch_size, *x.shape[1:])
    batches = [torch.randn(batch_shape, generator=generator) for _ in range(args.batches)]
    ours, plain, reports, plain_phases = [], [], [], []
    from rich.progress import track

    seconds, report = run_taskprune(model, x, tasks, batches, args.ratio)  # also what torch-pruning must match
    protected = set(report.protected_outputs)
    source = with_gradients(model, tasks, batches)  # what the bisection and the zero count both read
    tp_ratio, tp_cut = matched_tp_ratio(source, x, report.reached, protected)
    zero_channels = zero_importance_channels(source, x, protected)
    for _ in track(range(args.repeats), description=f"timing {args.model}"):
        seconds, report = run_taskprune(model, x, tasks, batches, args.ratio)
        ours.append(seconds)
        reports.append(report)
        seconds, phases = run_torch_pruning(model, x, tasks, batches, tp_ratio, protected)
        plain.append(seconds)
        plain_phases.append(phases)
    median_phases = {k: statistics.median(r.timings[k] for r in reports) for k in reports[0].timings}
    result = {
        "model": args.model, "input": list(x.shape), "batches": args.batches, "batch_size": args.batch_size,
        "ratio": args.ratio, "repeats": args.repeats, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "params": reports[0].params_before,
        "taskprune_total_s": statistics.median(ours), "torch_pruning_total_s": statistics.median(plain),
        "ratio_ours_over_plain": statistics.median(ours) / statistics.median(plain),
        "taskprune_phases_s": median_phases,
        "taskprune_gradients_per_batch_s": median_phases.get("gradients", 0.0) / args.batches,
        "torch_pruning_phases_s": {k: statistics.median(p[k] for p in plain_phases) for k in plain_phases[0]},
        "reached_params_reduction": reports[0].reached,
        "torch_pruning_ratio": tp_ratio, "torch_pruning_params_reduction": tp_cut,
        "torch_pruning_zero_importance_channels": zero_channels,
        "load": uptime(),
    }
    write(result, f"overhead_{args.model}")


def write(result: dict, stem: str) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = [("model", f"{result['model']} {result['input']}, {result['params']:,} params"),
            ("batches", f"{result['batches']} x {result['batch_size']}"),
            ("taskprune total (s)", f"{result['taskprune_total_s']:.2f}"),
            ("torch-pruning total (s)", f"{result['torch_pruning_total_s']:.2f}"),
            ("ours / plain", f"{result['ratio_ours_over_plain']:.2f}x"),
            ("parameter cut ours / plain", f"{result['reached_params_reduction']:.3f} / "
                                           f"{result['torch_pruning_params_reduction']:.3f} "
                                           f"(torch-pruning pruning_ratio {result['torch_pruning_ratio']:.3f})"),
            ("load", result["load"]),
            ("torch-pruning channels at zero importance", "{} of {}".format(
                *result.get("torch_pruning_zero_importance_channels", ("-", "-")))),
            ("cuts matched", "yes" if abs(result["reached_params_reduction"]
                                          - result["torch_pruning_params_reduction"]) <= 0.005 else
             "no: the closest cut torch-pruning reached by bisecting its pruning_ratio"),
            ("gradients per batch (s)", f"{result['taskprune_gradients_per_batch_s']:.3f}")]
    rows += [(f"taskprune {k} (s)", f"{v:.3f}") for k, v in result["taskprune_phases_s"].items()]
    rows += [(f"torch-pruning {k} (s)", f"{v:.3f}") for k, v in result["torch_pruning_phases_s"].items()]
    markdown = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    write_results(RESULTS, stem, result, "\n".join(markdown) + "\n", indent=2)
    table = Table(title=f"prune() overhead: {result['model']}", show_header=False)
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


if __name__ == "__main__":
    main()
