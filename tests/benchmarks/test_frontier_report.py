"""benchmarks/frontier_report.py: each family's best method is chosen on validation, one seed gives no verdict, an
unreached speedup is reported with the fastest probe, and the plot is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import frontier_report  # noqa: E402

META = {"settings": {}, "matching": {"repeats": 15, "tolerance": 0.03}, "steps": 400}


def write_run(folder: Path, method: str, speedup: float, seed: int, validation: float | None, test: float = 0.0
              ) -> None:
    run = {"method": method, "speedup": speedup, "seed": seed}
    if validation is None:
        record = {"run": run, "probes": [{"ratio": 0.9, "speedup": 1.79, "load": 2.0}], "reached": False,
                  "fastest": 1.79}
    else:
        sets = {name: {"delta_m": value, "lane_iou": 65.0, "map50": 93.0}
                for name, value in (("validation", validation), ("test_a", test), ("test_b", test))}
        final = {"stage": "distilled", "params_reduction": 0.5, "macs_reduction": 0.3, "sets": sets}
        record = {"run": run, "probes": [{"ratio": 0.5, "speedup": speedup, "load": 2.0}], "reached": True,
                  "ratio": 0.5, "speedup": speedup, "rows": [final, final]}
    (folder / f"{method}_{speedup}_{seed}.json").write_text(json.dumps({**record, "settings": META}))


def test_best_on_validation_one_seed_no_verdict_unreached_named(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    runs.mkdir()
    write_run(runs, "latency_task_taylor", 1.5, 0, validation=-3.0, test=-4.0)
    write_run(runs, "params_task_taylor", 1.5, 0, validation=-5.0, test=-1.0)  # better on the tests only
    write_run(runs, "tp_local_r8", 1.5, 0, validation=-6.0, test=-7.0)
    write_run(runs, "latency_task_taylor", 2.0, 0, validation=None)
    write_run(runs, "params_task_taylor", 2.0, 0, validation=-14.0, test=-14.0)
    write_run(runs, "tp_local_r8", 2.0, 0, validation=None)
    frontier_report.collect(runs, out, META)
    text = (out / "frontier.md").read_text()
    assert "| 1.50x | latency_task_taylor | tp_local_r8 | 1 | +3.00 [+3.00, +3.00] | +3.00 [+3.00, +3.00] | 1 seed |" \
        in text
    assert "| 2.00x | latency_task_taylor | 0/1 | fastest probe 1.79x |" in text
    assert "| 2.00x | params_task_taylor | none reached it (fastest 1.79x) | - | - | - | - |" in text
    assert (out / "frontier.png").stat().st_size > 0
    write_run(runs, "latency_task_taylor", 1.5, 1, validation=-3.0, test=-3.5)
    write_run(runs, "params_task_taylor", 1.5, 1, validation=-5.0, test=-1.0)
    write_run(runs, "tp_local_r8", 1.5, 1, validation=-6.0, test=-6.0)
    frontier_report.collect(runs, out, META)
    assert "| 1.50x | latency_task_taylor | tp_local_r8 | 2 | +2.75 [+2.50, +3.00] | +2.75 [+2.50, +3.00] | yes |" \
        in (out / "frontier.md").read_text()


def test_a_run_matched_at_two_threads_says_so(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    runs.mkdir()
    meta = {**META, "threads": 2}
    write_run(runs, "latency_task_taylor", 1.5, 0, validation=-3.0, test=-4.0)
    (runs / "latency_task_taylor_1.5_0.json").write_text(json.dumps(
        {**json.loads((runs / "latency_task_taylor_1.5_0.json").read_text()), "settings": meta}))
    frontier_report.collect(runs, out, meta)
    text = (out / "frontier.md").read_text()
    assert ("(batch 1, 2 threads (the latency target's table measured at 2, latency_plan1t's at one), median of 15"
            in text)
    assert "| 1.50x | latency_task_taylor | 1/1 |" in text
    assert frontier_report.collect(runs, out, META)["runs"] == []  # a one-thread collect leaves it out
