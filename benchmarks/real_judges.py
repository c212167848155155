"""What should judge a recovery? The same pruned real network recovered three ways, checked on held-back frames.

Each network (../shared/real) is pruned at 30% and 50% of its parameters with each criterion, exactly as
real_weights.py prunes it, then recovered from that same pruned state with `taskprune.finetune`'s defaults three
ways: with no judge (the last state kept), judged by the tasks' loss on a fifth frame and its mirror (`val_data=`,
what real_weights.py does), and judged by the agreement itself on that frame (`eval_fn=` returning the mean IoU
with the dense masks, `best_key="agreement"`). Both judges also see the unrecovered model. Agreement is reported on
the two held-back frames only; a recovery "ends worse" when it is more than WORSE below the pruned model there. Writes
benchmarks/results/real_judges.json and .md.

    OMP_NUM_THREADS=1 python benchmarks/real_judges.py
    python benchmarks/real_judges.py --report-only      # the markdown again from real_judges.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, machine, write_results  # noqa: E402
from real_nets import NETWORKS, WORSE, agreement, available  # noqa: E402
from real_weights import CRITERIA, Bench  # noqa: E402

import taskprune  # noqa: E402

JUDGES = ("none", "loss", "agreement")


def mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values)


def judging_frame(bench: Bench, model: torch.nn.Module) -> float:
    """Mean agreement on the fifth frame and its mirror: what the judges see."""
    frame = bench.val[0]
    return mean(agreement(model, frame["image"], {t: frame[t] for t in ("drivable", "lane")}))


def recover(bench: Bench, pruned: torch.nn.Module, judge: str) -> torch.nn.Module:
    """A copy of `pruned` recovered with finetune's defaults and the given judge."""
    student = copy.deepcopy(pruned)
    options: dict[str, Any] = {
        "none": {},
        "loss": {"val_data": bench.val},
        "agreement": {"eval_fn": lambda m: {"agreement": judging_frame(bench, m)},
                      "best_key": "agreement", "best_mode": "max"},
    }[judge]
    taskprune.finetune(student, bench.tasks, bench.train[:bench.args.steps], epochs=1, progress=False, **options)
    return student


def markdown(rows: list[dict[str, Any]], command: str, load: float) -> str:
    lines = ["# What should judge a recovery on a pretrained network", "",
             "Agreement (IoU %, mean of drivable and lane) with the dense network's masks on the two held-back frames: "
             "the pruned network, then the same pruned state recovered with `finetune`'s defaults and no judge (last "
             "state), judged by the tasks' loss on a fifth frame and its mirror (`val_data=`), or judged by the "
             "agreement on that frame (`eval_fn=`). Both judges see the unrecovered model too.", "",
             f"Command: `{command}`; load {load:.1f} at the end, on 2 cores, one thread.", "",
             "The last column is what the judges see: agreement on the judging frame, pruned -> recovered and judged "
             "by loss.", "",
             "| network | params removed | criterion | pruned | no judge | judged by loss | judged by agreement | "
             "judging frame: pruned -> judged by loss |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[j]:.1f}" + (" (worse)" if r[j] < r["pruned"] - WORSE else "") for j in JUDGES]
        lines.append(f"| {r['network']} | {r['share']:.0%} | {r['criterion']} | {r['pruned']:.1f} | "
                     + " | ".join(cells) + f" | {r['pruned_judging_frame']:.1f} -> {r['loss_judging_frame']:.1f} |")
    lines += ["", f"Recoveries that ended more than {WORSE} point below the pruned network on the held-back frames, "
                  "and the mean agreement:", "",
              "| judge | ended worse | mean agreement |", "|---|---|---|"]
    for j in JUDGES:
        worse = sum(r[j] < r["pruned"] - WORSE for r in rows)
        lines.append(f"| {j} | {worse} of {len(rows)} | {sum(r[j] for r in rows) / len(rows):.1f} |")
    lines.append(f"| (pruned, no recovery) | - | {sum(r['pruned'] for r in rows) / len(rows):.1f} |")
    return "\n".join(lines) + "\n"


def rerender() -> None:
    """Write the markdown again from the committed JSON (after a change to the report, without re-running)."""
    record = json.loads((RESULTS / "real_judges.json").read_text())
    write_results(RESULTS, "real_judges", record, markdown(record["rows"], record["command"],
                                                            record["machine"]["load"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--shares", default="0.3,0.5")
    parser.add_argument("--criteria", default=",".join(CRITERIA))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from the committed JSON")
    args = parser.parse_args()
    if args.report_only:
        rerender()
        return
    if not available():
        raise SystemExit("../shared/real is missing: the pretrained networks and frames live there")
    torch.set_num_threads(1)
    grid = argparse.Namespace(steps=args.steps, batch_size=4, crop="128x256", score_batches=4, judge="frames")
    rows = []
    for name in args.networks.split(","):
        bench = Bench(name, grid)
        for share in (float(s) for s in args.shares.split(",")):
            for criterion in args.criteria.split(","):
                pruned, _ = bench.prune("params", share, criterion)
                row = {"network": name, "share": share, "criterion": criterion,
                       "pruned": mean(agreement(pruned, bench.test_images, bench.test_masks)),
                       "pruned_judging_frame": judging_frame(bench, pruned)}
                for judge in JUDGES:
                    student = recover(bench, pruned, judge)
                    row[judge] = mean(agreement(student, bench.test_images, bench.test_masks))
                    row[f"{judge}_judging_frame"] = judging_frame(bench, student)
                rows.append(row)
                print(row, flush=True)
    command = (f"OMP_NUM_THREADS=1 python benchmarks/real_judges.py --networks {args.networks} --shares "
               f"{args.shares} --criteria {args.criteria} --steps {args.steps}")
    load = machine()["load"]
    record = {"settings": vars(args), "command": command, "machine": machine(), "rows": rows}
    write_results(RESULTS, "real_judges", record, markdown(rows, command, load))
    print(markdown(rows, command, load))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
