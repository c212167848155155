"""benchmarks/evidence_report.py: the torch-pruning row is chosen on validation alone, and "ahead" needs every seed
ahead on both test sets beyond the seed spread (one seed gives no verdict)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import evidence_report  # noqa: E402

SETTINGS = {"image_size": [192, 320], "eval_images": 500, "validation_seed": 20000, "test_seeds": [30000, 40000],
            "distill": "mse", "lr": 0.001, "bn_batches": 100}


def write_run(folder: Path, method: str, seed: int, validation: float, test: float) -> None:
    sets = {name: {"delta_m": value, "lane_iou": 60.0, "map50": 90.0}
            for name, value in (("validation", validation), ("test_a", test), ("test_b", test))}
    row = {"reduction": 0.6, "method": method, "seed": seed, "steps": 400, "stage": "distilled",
           "params_reduction": 0.6, "sets": sets}
    (folder / f"{method}_{seed}.json").write_text(json.dumps({"settings": SETTINGS, "rows": [row]}))


def test_torch_pruning_is_chosen_on_validation_and_waits_for_every_seed(tmp_path):
    write_run(tmp_path, "tp_local", 0, validation=-6.0, test=-3.0)  # best on the tests, worse on validation
    write_run(tmp_path, "tp_global_iso", 0, validation=-5.0, test=-9.0)
    names = ["tp_local", "tp_global_iso"]
    assert evidence_report.best_torch_pruning(tmp_path, SETTINGS, 0.6, 400, [0], names) == "tp_global_iso"
    assert evidence_report.best_torch_pruning(tmp_path, SETTINGS, 0.6, 400, [0, 1], names) is None


def test_one_seed_gives_no_verdict_and_overlapping_seeds_are_not_ahead(tmp_path):
    write_run(tmp_path, "task_taylor", 0, validation=-4.0, test=-4.0)
    write_run(tmp_path, "taylor", 0, validation=-5.0, test=-5.0)
    out = tmp_path / "out"
    evidence_report.collect(tmp_path, out, SETTINGS)
    text = (out / "evidence.md").read_text()
    assert "| task_taylor | taylor | 1 | +1.00 [+1.00, +1.00] | +1.00 [+1.00, +1.00] | 1 seed |" in text
    write_run(tmp_path, "task_taylor", 1, validation=-4.0, test=-6.0)  # ahead on seed 1 too, but the ranges overlap
    write_run(tmp_path, "taylor", 1, validation=-5.0, test=-6.5)
    evidence_report.collect(tmp_path, out, SETTINGS)
    assert "| task_taylor | taylor | 2 | +0.75 [+0.50, +1.00] | +0.75 [+0.50, +1.00] | no |" in (
        out / "evidence.md").read_text()
    write_run(tmp_path, "task_taylor", 1, validation=-4.0, test=-4.5)  # now apart on both sets
    write_run(tmp_path, "taylor", 1, validation=-5.0, test=-8.0)
    evidence_report.collect(tmp_path, out, SETTINGS)
    assert "| task_taylor | taylor | 2 | +2.25 [+1.00, +3.50] | +2.25 [+1.00, +3.50] | yes |" in (
        out / "evidence.md").read_text()


def test_long_torch_pruning_run_of_a_later_seed_can_be_chosen_on_the_first_seed(tmp_path):
    """`evidence.py --seeds 1 --choice-seeds 0`: seed 1 ran only the chosen configuration's short run, so its long
    torch-pruning run is planned only when the choice is read from seed 0, where every configuration ran."""
    import evidence

    settings = evidence.Settings()
    names = list(evidence.SETUPS)
    for index, name in enumerate(names):
        write_run(tmp_path, name, 0, validation=-10.0 + index, test=-5.0)
    write_run(tmp_path, names[0], 1, validation=-3.0, test=-3.0)
    for path in tmp_path.glob("*.json"):  # the grid's own settings, so the runs count
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "settings": json.loads(json.dumps(evidence.asdict(settings)))}))
    long_tp = {run.method for run in evidence.plan_runs([0.6], [1], 400, 1600, tmp_path, settings)
               if run.steps == 1600} - set(evidence.OURS) - {"teacher_finetuned"}
    assert long_tp == set()
    chosen = {run.method for run in evidence.plan_runs([0.6], [1], 400, 1600, tmp_path, settings, [0])
              if run.steps == 1600 and run.seed == 1} - set(evidence.OURS) - {"teacher_finetuned"}
    assert chosen == {names[-1]}  # the best seed-0 validation, not seed 1's only run
