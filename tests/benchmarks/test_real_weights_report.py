"""real_weights.py with a memory cap: a torch-pruning cell past it is recorded as failed and reported so, and
the run goes on; anything else is raised. No pretrained network needed."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def _failing_bench(error: Exception, cap: int | None = 4):
    def prune(target, ratio, method):
        raise error

    return SimpleNamespace(name="net", args=SimpleNamespace(memory_cap_gb=cap), prune=prune)


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory")])
def test_a_torch_pruning_cell_past_the_memory_cap_is_recorded_as_failed_and_reported(error):
    import real_weights
    import real_weights_report

    record = real_weights.cell(_failing_bench(error), "params", 0.5, "torch_pruning", picture=False)
    assert record["pruned"] is None and record["failed"].startswith(f"{type(error).__name__} under a 4 GB")
    done = {"network": "net", "target": "params", "share": 0.5, "params_reduction": 0.5, "prune_cpu_seconds": 1.0,
            "pruned": {"drivable": 50.0, "lane": 40.0}, "recovered": {"drivable": 60.0, "lane": 50.0}}
    records = [record, {**done, "method": "task_taylor"},
               {**done, "method": "taylor", "recovered": {"drivable": 10.0, "lane": 10.0}}]
    assert real_weights_report.verdict(records).endswith(
        "net: task_taylor 55.0 vs taylor 10.0 (ahead); torch_pruning produced no model.")
    assert [w["winners"] for w in real_weights_report.winners(records, "recovered")] == [["task_taylor"]]


def test_an_error_raised_inside_torch_pruning_is_its_failure_and_ours_is_raised():
    import real_weights

    def raise_inside_torch_pruning(target, ratio, method):  # as 1.6.1's importance does on twinlitenet_se
        code = compile("raise IndexError('index 32 is out of bounds')", "/site/torch_pruning/pruner/importance.py",
                       "exec")
        exec(code)

    bench = SimpleNamespace(name="net", args=SimpleNamespace(memory_cap_gb=None), prune=raise_inside_torch_pruning)
    record = real_weights.cell(bench, "params", 0.3, "torch_pruning", picture=False)
    assert record["failed"].startswith("IndexError inside torch_pruning/pruner/importance.py: index 32")
    with pytest.raises(IndexError):  # the same error from one of our criteria is a bug, not a result
        real_weights.cell(bench, "params", 0.3, "task_taylor", picture=False)


def test_a_refused_budget_is_the_cells_result():
    import real_weights

    from taskprune.budget.plan import UnreachableBudget

    refusal = UnreachableBudget("cannot bring the latency to 50.0% of dense within 5%", closest=0.42, round_to=1)
    record = real_weights.cell(_failing_bench(refusal, cap=None), "latency", 0.5, "magnitude", picture=False)
    assert record["pruned"] is None and record["failed"].startswith("refused: cannot bring the latency to 50.0%")


def test_other_errors_and_errors_without_a_cap_are_raised():
    import real_weights

    with pytest.raises(RuntimeError, match="shape"):
        real_weights.cell(_failing_bench(RuntimeError("shape mismatch")), "params", 0.5, "torch_pruning", False)
    with pytest.raises(MemoryError):
        real_weights.cell(_failing_bench(MemoryError(), cap=None), "params", 0.5, "torch_pruning", False)
