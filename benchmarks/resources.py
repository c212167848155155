"""Time and peak memory of `taskprune.prune` against plain torch-pruning configured for the same goal.

For every model, each pipeline runs in its own child process (so the peak RSS is its own), `--repeats` times,
and the medians are compared as ours / plain:

- ours: `taskprune.prune(model, x, ratio=R, round_to=ROUND_TO, progress=False)`;
- plain: torch-pruning as its docs tell a user to set it up: `MetaPruner` with `GroupMagnitudeImportance`, the
  output layers ignored by hand (the ones our report protects), `round_to` the same, `max_pruning_ratio` our
  `max_layer_ratio`, global ranking, and `pruning_ratio` bisected (outside the timed runs) until its parameter cut
  is within half a point of ours; then `step()`, and one forward (untimed) to check the model still runs: where
  it does not, the table says so beside the timings.

Timed: the prune alone (wall and CPU, user + sys), with both tools' imports (torch_pruning, taskprune, networkx)
done before the clock in both children (about 0.15-0.3 s, once per process); the peak RSS is the child's whole
life (the model is built in both). Where torch-pruning fails or runs past `--timeout`, that is recorded. Machine
load (`uptime`) is written
beside the timings.

    python benchmarks/resources.py                                   # the zoo
    python benchmarks/resources.py --large fcos_resnet50_fpn yolo11n_seg --repeats 3 --name large

Writes benchmarks/results/resources_<name>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys

from child_runs import CHILD_END, add_plain, ours_row, run_child, table_rows
from harness import RESULTS, ROOT, print_markdown, uptime, write_results

_CHILD = """
import json, resource, sys, time, warnings
resource.setrlimit(resource.RLIMIT_AS, ({cap} << 30, {cap} << 30))
import torch
torch.set_num_threads(1)
warnings.simplefilter("ignore")
start_cpu, start_wall = time.process_time(), time.perf_counter()
import networkx, torch_pruning as tp, taskprune  # both tools' imports, timed apart from the prune
from taskprune.testing import get_test_model
from taskprune.tasks import flatten_outputs
row = {{"import_cpu_s": time.process_time() - start_cpu}}
model, x = get_test_model({name!r})()
params = sum(p.numel() for p in model.parameters())
start_cpu, start_wall = time.process_time(), time.perf_counter()
try:
    if {tool!r} == "ours":
        report = taskprune.prune(model, x, ratio={ratio}, round_to={round_to}, progress=False).report
        row.update(cpu_s=time.process_time() - start_cpu, wall_s=time.perf_counter() - start_wall)
        row.update(reached=report.reached, protected=report.protected_outputs,
                   kept_whole=sum(bool(g.note) for g in report.groups), groups=len(report.groups))
    else:
        ignored = [m for n, m in model.named_modules() if n in set({protected})]
        pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.GroupMagnitudeImportance(),
                                      pruning_ratio={tp_ratio}, global_pruning=True, max_pruning_ratio=0.8,
                                      ignored_layers=ignored, round_to={round_to}, output_transform=flatten_outputs)
        pruner.step()
        row.update(cpu_s=time.process_time() - start_cpu, wall_s=time.perf_counter() - start_wall)
        row.update(reached=1 - sum(p.numel() for p in model.parameters()) / params)
        try:
            with torch.no_grad():
                model(x)
        except Exception as error:  # recorded, and the timing kept: the pruning itself finished
            row.update(broken=f"{{type(error).__name__}}: {{error}}".splitlines()[0][:200])
"""  # the outer try ends in child_runs.CHILD_END


def run_pipeline(name: str, tool: str, args: argparse.Namespace, tp_ratio: float = 0.0,
                 protected: list[str] | None = None) -> dict:
    code = _CHILD.format(cap=args.memory_cap_gb, name=name, tool=tool, ratio=args.ratio, round_to=args.round_to,
                         tp_ratio=tp_ratio, protected=protected or []) + CHILD_END
    return run_child(code, args.timeout)


def matched_tp_ratio(name: str, target: float, protected: list[str], args: argparse.Namespace,
                     ) -> tuple[float | None, dict]:
    """torch-pruning's channel ratio whose parameter cut is within half a point of `target` (bisection)."""
    low, high, last = 0.0, 0.95, {}
    for _ in range(args.bisection_steps):
        middle = (low + high) / 2
        last = run_pipeline(name, "plain", args, middle, protected)
        if "error" in last:
            return None, last
        if abs(last["reached"] - target) <= 0.005:
            return middle, last
        low, high = (middle, high) if last["reached"] < target else (low, middle)
    return middle, last


def measure(name: str, args: argparse.Namespace) -> dict:
    row = ours_row(name, [run_pipeline(name, "ours", args) for _ in range(args.repeats)])
    if "ours_error" in row:
        return row
    protected = row["ours_runs"][0]["protected"]
    tp_ratio, probe = matched_tp_ratio(name, row["reached"], protected, args)
    if tp_ratio is None:
        row["plain_error"] = probe["error"]
        return row
    plain = [run_pipeline(name, "plain", args, tp_ratio, protected) for _ in range(args.repeats)]
    if any("error" in run for run in plain):
        row["plain_error"] = next(run["error"] for run in plain if "error" in run)
        return row
    return add_plain(row, plain, tp_ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", nargs="*", help="large test models to run instead of the zoo")
    parser.add_argument("--models", nargs="*", help="zoo test models (default: all)")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--round-to", type=int, default=None, help="both pipelines' channel multiple")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bisection-steps", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a child is stopped")
    parser.add_argument("--memory-cap-gb", type=int, default=16, help="address-space cap of every child")
    parser.add_argument("--name", default="zoo", help="results file stem: resources_<name>")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from taskprune.testing import list_test_models

    names = args.large or args.models or list_test_models(kind="zoo")
    load_before = uptime()
    rows = []
    for name in names:
        rows.append(measure(name, args))
        print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith("_runs")}), flush=True)
    result = {"settings": {k: v for k, v in vars(args).items()}, "load_before": load_before,
              "load_after": uptime(), "python": sys.version.split()[0], "rows": rows}
    write_results(RESULTS, f"resources_{args.name}", result, markdown(result), indent=2)
    print_markdown(markdown(result))


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"prune(ratio={s['ratio']}, round_to={s['round_to']}) against plain torch-pruning (MetaPruner, "
             f"GroupMagnitudeImportance, ratio bisected to the same parameter cut), one torch thread, medians of "
             f"{s['repeats']} runs, each in its own process; the prune alone is timed (both tools' imports before "
             "the clock, torch-pruning's check forward after it).", "",
             f"Load before: `{result['load_before']}`; after: `{result['load_after']}`.", "",
             "| model | cut ours / plain | wall s ours / plain | CPU s ours / plain | peak RSS MB ours / plain | "
             "ours/plain wall, CPU, RSS |", "|---|---|---|---|---|---|"]
    lines += table_rows(result["rows"], ("wall_s", "cpu_s"), 2, ("wall_s", "cpu_s", "peak_rss_mb"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
