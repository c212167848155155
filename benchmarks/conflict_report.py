"""benchmarks/conflict.py's record as markdown: the checks first, then the comparison paired by seed."""

from __future__ import annotations

import statistics

__all__ = ["render"]


def spread(values: list[float], digits: int = 2) -> str:
    """mean ±standard deviation over the seeds."""
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):+.{digits}f} ±{deviation:.{digits}f}"


def render(record: dict) -> str:
    settings, runs = record["settings"], record["runs"]
    setting = settings["setting"]
    criteria = list(runs[0]["criteria"])
    lines = [f"Two tasks (colour, texture) through a shared trunk pooled to {setting['bottleneck']} number(s), "
             f"{settings['ratio']:.0%} of the parameters removed, {settings['recovery_steps']} recovery steps (lr "
             f"{settings['recovery_lr']}; the step kept is the best on the validation split, step 0 included), test "
             f"split only reported. {len(runs)} seeds.", "",
             f"Command: `{record['command']}`; machine: {record['machine']['cpu']}, {record['machine']['threads']} "
             f"thread(s), load average {record['machine']['load']:.2f} at the end.", "",
             "## Checks: do the tasks conflict, and do the plans differ?", "",
             "Median conflict k on the channels of prunable groups serving both tasks (the cosine measure "
             "`conflict_taylor` uses; needs > 0.3); share of `task_taylor`'s kept channels each criterion keeps too "
             "(`conflict_taylor` needs < 95%); negative transfer: test error of the joint teacher over the same "
             "network trained on that task alone (> 1 is negative transfer).", "",
             "| seed | median k | p10-p90 k | " + " | ".join(f"overlap {c}" for c in criteria if c != "task_taylor")
             + " | joint/alone colour | joint/alone texture | passed |",
             "|---|---|---|" + "---|" * (len(criteria) - 1) + "---|---|---|"]
    for run, check in zip(runs, record["checks"], strict=True):
        k, transfer = run["conflict"], run["negative_transfer"]
        ratios = [f"{transfer[t]['joint_over_alone']:.2f}" if transfer else "-" for t in ("colour", "texture")]
        lines.append(f"| {run['seed']} | {k['median']:.3f} | {k['p10']:.2f}-{k['p90']:.2f} | "
                     + " | ".join(f"{share:.1%}" for share in run["overlap_with_task_taylor"].values())
                     + f" | {ratios[0]} | {ratios[1]} | {'yes' if check['passed'] else 'no'} |")
    lines += ["", "## Test error after recovery", "",
              "Delta_m: mean relative change of the test MSE against the teacher's, in percent (positive is "
              "better); mean ±standard deviation over the seeds.", "",
              "| criterion | params (seed 0) | Delta_m pruned | Delta_m recovered | MSE colour | MSE texture |",
              "|---|---|---|---|---|---|"]
    teacher = [run["teacher_mse"] for run in runs]
    lines.append(f"| teacher | {runs[0]['teacher_params']} | - | - | "
                 f"{spread([t['colour'] for t in teacher], 3)} | {spread([t['texture'] for t in teacher], 3)} |")
    for name in criteria:
        rows = [run["criteria"][name] for run in runs]
        lines.append(f"| {name} | {rows[0]['params']} | {spread([r['pruned_delta_m'] for r in rows])}% | "
                     f"{spread([r['delta_m'] for r in rows])}% | "
                     f"{spread([r['recovered_mse']['colour'] for r in rows], 3)} | "
                     f"{spread([r['recovered_mse']['texture'] for r in rows], 3)} |")
    lines += ["", "## Minus task_taylor, paired by seed", "",
              "Delta_m points after recovery; \"ahead\" when every seed's difference is positive, \"behind\" when "
              "every one is negative.", "",
              "| criterion | mean ±std | [min, max] | per seed | verdict |", "|---|---|---|---|---|"]
    for name, pair in record["minus_task_taylor"].items():
        per_seed = ", ".join(f"{d:+.2f}" for d in pair["per_seed"])
        lines.append(f"| {name} | {pair['mean']:+.2f} ±{pair['std']:.2f} | [{pair['min']:+.2f}, {pair['max']:+.2f}] "
                     f"| {per_seed} | {pair['verdict']} |")
    return "\n".join(lines) + "\n"
