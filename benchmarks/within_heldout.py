"""Do the earlier `within.py` searches hold on scenes nothing looked at? Every stop, second round and the
`protect=["lane_head.*"]` hint of those searches was decided on the 500 scenes of SyntheticDriving seed 20000
(now the validation set of benchmarks/evidence.py and within_evidence.py). This loads the model each committed
checkpoint kept (the last step within every limit there) and scores it on test A and test B (seeds 30000 and 40000,
500 scenes each, never used for a decision), beside the teacher on the same scenes with its bootstrap 95% interval.

    python benchmarks/within_heldout.py            # every checkpoint below; about 3 CPU-minutes per model
    python benchmarks/within_heldout.py --images 16 --runs within --out runs/within_heldout_quick   # a smoke run

Writes benchmarks/results/within_heldout.json and .md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from harness import RESULTS, machine, write_results
from within_evidence import METRICS, SEEDS, SIZE, TESTS, scenes

import taskprune
from taskprune import driving

RUNS = ("within", "within_seed1", "within_protect-lane_head", "within_seed1_protect-lane_head")


def kept_model(folder: Path) -> tuple[torch.nn.Module, dict]:
    """The model a `prune_within` checkpoint kept, and the frontier row of its step."""
    state = torch.load(folder / "state.pt", weights_only=True)
    step = max(row["step"] for row in state["frontier"] if row["within"])
    model = taskprune.load(folder / state["model_file"], driving.DrivingNet(size="s"), torch.zeros(1, 3, *SIZE))
    return model.eval(), next(row for row in state["frontier"] if row["step"] == step)


def markdown(record: dict) -> str:
    lines = ["Each earlier `within.py` search's kept model (decided on the 500 scenes of seed 20000) on two untouched "
             f"test sets of {record['images']} scenes; drop in points against the teacher on the same set (positive "
             f"= worse), limit {record['limit']} point. Teacher's bootstrap 95% interval half-widths: "
             + "; ".join(f"{name} " + ", ".join(f"{m} ±{(t['interval'][m][1] - t['interval'][m][0]) / 2:.2f}"
                                                  for m in METRICS) for name, t in record["teacher"].items()) + ".",
             "", "| search | params removed | set | " + " | ".join(METRICS) + " | within |",
             "|---|---|---|" + "---|" * (len(METRICS) + 1)]
    for row in record["rows"]:
        for name in ("validation", *TESTS):
            drops = row["drops"][name]
            lines.append(f"| {row['run']} | {row['reduction']:.1%} | {name} | "
                         + " | ".join(f"{drops[m]:+.2f}" for m in METRICS)
                         + f" | {'yes' if max(drops.values()) <= record['limit'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--limit", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets = {name: scenes(args.images, seed) for name, seed in SEEDS.items()}
    teacher = driving.pretrained("s").eval()
    teacher_record = {}
    for name, data in sets.items():
        records = driving.evaluate_scenes(teacher, driving.loader(data, batch_size=16))
        interval = records.interval(resamples=1000)
        teacher_record[name] = {"value": {m: 100 * records.metrics()[m] for m in METRICS},
                                "interval": {m: [100 * v for v in interval[m]] for m in METRICS}}
    rows = []
    from rich.progress import track

    for run in track(args.runs.split(","), description="kept models on the test sets"):
        model, step = kept_model(RESULTS / "within_checkpoints" / run)
        drops = {}
        for name, data in sets.items():
            metrics = driving.evaluate(model, driving.loader(data, batch_size=16))
            drops[name] = {m: teacher_record[name]["value"][m] - 100 * metrics[m] for m in METRICS}
        rows.append({"run": run, "reduction": step["reduction"], "drops": drops,
                     "held_on_both_tests": all(d <= args.limit for name in TESTS for d in drops[name].values())})
    record = {"images": args.images, "limit": args.limit, "seeds": SEEDS, "teacher": teacher_record, "rows": rows,
              "machine": machine()}
    write_results(args.out, "within_heldout", record, markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
