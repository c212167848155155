"""How many zoo lookalikes prune with every output kept, at 30% and 60% fewer parameters, with no ignore list.

    python benchmarks/zoo.py

Writes benchmarks/results/zoo.json and zoo.md.
"""

from __future__ import annotations

import argparse
import time

import torch
from harness import RESULTS, write_results

import taskprune
from taskprune.tasks import output_leaves
from taskprune.testing import get_test_model, list_test_models


def attempt(name: str, ratio: float) -> dict:
    model, x = get_test_model(name)()
    expected = {k: v.shape for k, v in output_leaves(model(x))}
    start = time.perf_counter()
    try:
        result = taskprune.prune(model, x, ratio=ratio, round_to=None, progress=False)
    except (ValueError, TypeError, RuntimeError) as error:
        return {"model": name, "ratio": ratio, "ok": False, "seconds": time.perf_counter() - start,
                "error": f"{type(error).__name__}: {error}"[:300]}
    seconds = time.perf_counter() - start
    kept = {k: v.shape for k, v in output_leaves(result.model(x))} == expected
    whole = [g.layer for g in result.report.groups if g.note]
    return {"model": name, "ratio": ratio, "ok": kept, "seconds": seconds, "reached": result.report.reached,
            "params_before": result.report.params_before, "groups": len(result.report.groups),
            "kept_whole": whole, "warnings": result.report.warnings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.6])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from rich.progress import track

    jobs = [(name, ratio) for ratio in args.ratios for name in list_test_models(kind="zoo")]
    rows = [attempt(name, ratio) for name, ratio in track(jobs, description="pruning the zoo")]
    lines = ["| model | ratio | outputs kept | reached | groups kept whole | time (s) |", "|---|---|---|---|---|---|"]
    for row in rows:
        reached = f"{row['reached']:.3f}" if "reached" in row else row.get("error", "")
        whole = f"{len(row.get('kept_whole', []))}/{row.get('groups', '-')}"
        lines.append(f"| {row['model']} | {row['ratio']} | {row['ok']} | {reached} | {whole} | {row['seconds']:.1f} |")
    for ratio in args.ratios:
        done = [r for r in rows if r["ratio"] == ratio]
        lines.append(f"\n{sum(r['ok'] for r in done)} of {len(done)} models pruned with outputs kept at {ratio:.0%}.")
    write_results(RESULTS, "zoo", {"threads": args.threads, "runs": rows}, "\n".join(lines) + "\n", indent=2)
    from rich.console import Console
    from rich.markdown import Markdown

    Console(width=140).print(Markdown("\n".join(lines)))


if __name__ == "__main__":
    main()
