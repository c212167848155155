"""How much does the conflict penalty change the plan? conflict_taylor (and its variants) against task_taylor on the
evidence grid's teacher, scoring batches and settings: the share of task_taylor's kept channels that each variant
keeps too, and the layers left at the same width; and how large the conflict k is on the channels of the groups
that serve several tasks (the penalty multiplies a channel's score by 1 - lam * k). No fine-tune: this explains the
grid's Delta_m, it adds no accuracy figure.

    python benchmarks/plan_overlap.py                     # 0.45 and 0.6, seed 0, the grid's variants
    python benchmarks/plan_overlap.py --reductions 0.6 --seeds 0,1,2

Writes benchmarks/results/plan_overlap.json and plan_overlap.md.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import torch
from ablation import Bench, Settings, criterion_of
from harness import RESULTS, write_results

import taskprune
from taskprune.criteria.conflict import ConflictTaylor, conflict_scores

BASE = "task_taylor"


class RecordingConflict(ConflictTaylor):
    """conflict_taylor that keeps the conflict k it measured on the groups serving several tasks."""

    def score(self, context: taskprune.ScoringContext) -> list[torch.Tensor]:
        assert context.gradients is not None
        conflicts = conflict_scores(context.gradients, context.groups, self.measure)
        self.shared = torch.cat([k for k, group in zip(conflicts, context.groups, strict=True)
                                 if len(group.tasks) > 1 and group.prunable])
        return super().score(context)


def conflict_summary(bench: Bench, measure: str, seed: int) -> dict:
    criterion = RecordingConflict(measure=measure)
    batches = bench.scoring_batches(seed)
    taskprune.prune(bench.teacher, bench.example, ratio=0.3, importance=criterion, tasks=bench.tasks, data=batches,
                    num_batches=len(batches), round_to=bench.settings.round_to, progress=False, seed=seed)
    k = criterion.shared
    quantiles = torch.quantile(k, torch.tensor([0.5, 0.9, 0.99])).tolist()
    return {"measure": measure, "seed": seed, "channels": k.numel(), "mean": float(k.mean()),
            "median": quantiles[0], "p90": quantiles[1], "p99": quantiles[2], "max": float(k.max())}


def kept_channels(bench: Bench, criterion: str, reduction: float, seed: int) -> dict[str, set[int]]:
    batches = bench.scoring_batches(seed)
    torch.manual_seed(seed)
    result = taskprune.prune(bench.teacher, bench.example, ratio=reduction, importance=criterion_of(criterion),
                             tasks=bench.tasks, data=batches, num_batches=len(batches),
                             round_to=bench.settings.round_to, progress=False, seed=seed)
    return {layer: set(kept) for layer, kept in result.channel_map.items()}


def whole(bench: Bench, layer: str) -> set[int]:
    """Every output channel of one of the teacher's layers."""
    return set(range(bench.teacher.get_submodule(layer).weight.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reductions", default="0.45,0.6")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--criteria", default="conflict_taylor,conflict_taylor:lam=0.25,conflict_taylor:lam=1,"
                        "conflict_taylor:measure=batch_cosine,conflict_taylor:measure=sign_purity,"
                        "conflict_taylor:across_groups=1,conflict_taylor:across_groups=1;lam=1")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings()
    bench = Bench(settings)
    rows = []
    from rich.progress import track

    jobs = [(float(r), int(s)) for r in args.reductions.split(",") for s in args.seeds.split(",")]
    for reduction, seed in track(jobs, description="plans"):
        base = kept_channels(bench, BASE, reduction, seed)
        for criterion in args.criteria.split(","):
            other = kept_channels(bench, criterion, reduction, seed)
            layers = sorted(set(base) | set(other))  # a layer missing from a channel_map kept every channel
            mine, theirs = ([kept.get(layer, whole(bench, layer)) for layer in layers] for kept in (base, other))
            total = sum(len(kept) for kept in mine)
            common = sum(len(a & b) for a, b in zip(mine, theirs, strict=True))
            same_width = sum(len(a) == len(b) for a, b in zip(mine, theirs, strict=True))
            rows.append({"reduction": reduction, "seed": seed, "criterion": criterion, "kept_channels": total,
                         "in_common": common, "share_in_common": common / total, "layers": len(layers),
                         "layers_same_width": same_width})
    conflicts = [conflict_summary(bench, measure, int(seed)) for seed in args.seeds.split(",")
                 for measure in ("cosine", "batch_cosine", "sign_purity")]
    lines = [f"Channels {BASE} keeps that each criterion keeps too, on the evidence grid's teacher and scoring batches "
             f"(round_to={settings.round_to}); no fine-tune.", "",
             "| reduction | seed | criterion | kept by task_taylor | kept by both | "
             "layers pruned by either, at the same width |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['reduction']:.2f} | {r['seed']} | {r['criterion']} | {r['kept_channels']} | {r['in_common']} "
              f"({r['share_in_common']:.1%}) | {r['layers_same_width']} of {r['layers']} |" for r in rows]
    lines += ["", "The conflict k on the channels of prunable groups that serve several tasks (lam = 0.5 scales a "
                  "score by 1 - k / 2):", "", "| measure | seed | channels | mean | median | p90 | p99 | max |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['measure']} | {c['seed']} | {c['channels']} | {c['mean']:.3f} | {c['median']:.3f} | "
              f"{c['p90']:.3f} | {c['p99']:.3f} | {c['max']:.3f} |" for c in conflicts]
    write_results(RESULTS, "plan_overlap", {"settings": asdict(settings), "base": BASE, "rows": rows,
                                            "conflict": conflicts}, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
