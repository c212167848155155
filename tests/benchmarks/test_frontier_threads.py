"""benchmarks/frontier_threads.py: every student the frontier fine-tuned (reached, and at its fastest) is found
with its ratio, seed and Delta_m, and the table gives each cell's speed at both thread counts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import frontier_threads  # noqa: E402
from test_frontier_fastest import reached, unreached  # noqa: E402


def test_every_fine_tuned_student_is_found_and_tabled(tmp_path):
    runs = {"latency_task_taylor_x2.00_seed0": reached("latency_task_taylor", 0, -13.0),
            "latency_task_taylor_x2.00_seed1": reached("latency_task_taylor", 1, -15.0),
            "tp_global_iso_r8_x2.00_seed0": unreached("tp_global_iso_r8", 0, 1.65, -21.0),
            "tp_local_r8_x2.00_seed0": unreached("tp_local_r8", 0, 1.6, None)}  # never fine-tuned: no student
    for key, record in runs.items():
        if record["reached"]:
            record["ratio"] = 0.5  # as frontier.execute records it
        (tmp_path / f"{key}.json").write_text(json.dumps(record))
    students = frontier_threads.points(tmp_path)
    assert [(s["key"], s["ratio"], s["seed"], s["at_fastest"]) for s in students] == [
        ("latency_task_taylor_x2.00_seed0", 0.5, 0, False), ("latency_task_taylor_x2.00_seed1", 0.5, 1, False),
        ("tp_global_iso_r8_x2.00_seed0_fastest", 0.6, 0, True)]
    assert students[2]["speedup_1t_frontier"] == 1.65 and students[2]["delta_m"] == {"test_a": -21.0,
                                                                                        "test_b": -21.0}
    speeds = {"latency_task_taylor_x2.00_seed0": 2.0, "latency_task_taylor_x2.00_seed1": 1.9,
              "tp_global_iso_r8_x2.00_seed0_fastest": 1.5}
    timings = [{"threads": 1, "load_before": 1.0, "load_after": 1.0, "speedups": speeds},
               {"threads": 2, "load_before": 1.0, "load_after": 1.0,
                "speedups": {k: v - 0.2 for k, v in speeds.items()}}]
    assert [s["params_reduction"] for s in students] == [0.8, 0.8, 0.8]  # the fine-tuned rows' (final())
    table = frontier_threads.markdown({"repeats": 21, "command": "c", "students": students, "timings": timings})
    assert "| latency_task_taylor | 2.00x | 2 | - | 2.01x (2.01-2.01) | 1.95x (1.90-2.00) | 1.75x (1.70-1.80) | " \
           "-14.00 / -14.00 |" in table
    assert "| tp_global_iso_r8 (at its fastest) | 2.00x | 1 | - | 1.65x (1.65-1.65) | 1.50x (1.50-1.50) | " \
           "1.30x (1.30-1.30) | -21.00 / -21.00 |" in table


def test_a_student_timed_as_a_sibling_is_counted_apart(tmp_path):
    """A student pruned again to a different size than the scored one (the latency target re-plans while timing)
    is not counted as the scored model."""
    students = [{"key": f"latency_task_taylor_x1.50_seed{seed}", "method": "latency_task_taylor", "speedup": 1.5,
                 "seed": seed, "at_fastest": False, "ratio": 0.33, "speedup_1t_frontier": 1.5,
                 "params_reduction": 0.80, "delta_m": {"test_a": -3.0, "test_b": -3.0}} for seed in range(3)]
    speeds = {s["key"]: 1.5 for s in students}
    timings = [{"threads": n, "load_before": 1.0, "load_after": 1.0, "speedups": speeds} for n in (1, 2)]
    timed = {students[0]["key"]: 0.80, students[1]["key"]: 0.80003, students[2]["key"]: 0.83}
    table = frontier_threads.markdown({"repeats": 21, "command": "c", "students": students, "timings": timings,
                                       "timed_params_reduction": timed})
    assert "| latency_task_taylor | 1.50x | 3 | 2/3 | 1.50x (1.50-1.50) |" in table


def test_the_reduction_timed_is_counted_against_the_teacher() -> None:
    import torch

    teacher = torch.nn.Linear(10, 10)  # 110 parameters
    models = {"whole": torch.nn.Linear(10, 10), "half": torch.nn.Linear(10, 5)}  # 110 and 55
    assert frontier_threads.timed_reductions(models, teacher) == {"whole": 0.0, "half": 0.5}
