"""benchmarks/frontier.py's speed matching: a bisection that ends short of the asked speed because the method slows
down as it prunes more (torch-pruning past a ratio of about 0.68 on the driving teacher) scans a grid of ratios and
bisects again where the grid is fast enough."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import frontier  # noqa: E402


def peaked(ratio: float) -> float:
    """A speedup that rises to 1.6x at ratio 0.3 and falls after it."""
    return 1 + 2 * ratio if ratio <= 0.3 else 1.6 - 1.5 * (ratio - 0.3)


def fake_probe(speed):
    def probe(bench, method, ratio, seed, matching, probes):
        probes.append({"ratio": ratio, "speedup": speed(ratio)})
        return speed(ratio), ratio, None, None
    return probe


def test_a_speed_that_falls_past_a_ratio_is_still_matched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frontier, "_probe", fake_probe(peaked))
    method = frontier.Method("torch_pruning", high=0.9)
    found = frontier.match(None, method, 1.5, 0, frontier.Matching())
    measured, ratio = found["best"][:2]
    assert abs(measured - 1.5) <= 0.03 * 1.5
    assert 0.2 < ratio < 0.3
    first = found["probes"][0]["ratio"]
    assert first == pytest.approx(0.45) and peaked(first) < 1.5 * 0.97  # the bisection alone started on the far side


def test_an_unreachable_speed_reports_the_fastest_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frontier, "_probe", fake_probe(peaked))
    found = frontier.match(None, frontier.Method("torch_pruning", high=0.9), 2.0, 0, frontier.Matching())
    assert found["best"][0] == pytest.approx(1.6)
    assert max(p["speedup"] for p in found["probes"]) == pytest.approx(1.6)


def test_a_monotonic_method_never_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frontier, "_probe", fake_probe(lambda r: 1 + 1.5 * r))
    found = frontier.match(None, frontier.Method("params", high=0.9), 1.5, 0, frontier.Matching())
    assert abs(found["best"][0] - 1.5) <= 0.045
    assert len(found["probes"]) <= frontier.Matching().probes  # the bisection alone


def test_the_latency_variants_plan_at_their_threads_and_multiple_and_restore_the_runs_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    rounds: list = []
    tables: list = []

    class Result:
        model, channel_map = "student", {}

    def fake_prune(*args, **kwargs):
        seen.append(frontier.torch.get_num_threads())
        rounds.append(kwargs["round_to"])
        tables.append(kwargs["latency_table"])
        return Result()

    class FakeBench:
        teacher = example = tasks = None
        settings = frontier.Settings()

        def scoring_batches(self, seed):
            return [0]

    monkeypatch.setattr(frontier.taskprune, "prune", fake_prune)
    monkeypatch.setattr(frontier, "measure_table", lambda model, x, *, alignment, progress: f"table@{alignment}")
    before = frontier.torch.get_num_threads()
    frontier.torch.set_num_threads(2)
    try:
        assert frontier.prune_at(FakeBench(), frontier.METHODS["latency_plan1t_task_taylor"], 0.4, 0)[0] == "student"
        frontier.prune_at(FakeBench(), frontier.METHODS["latency_task_taylor"], 0.4, 0)
        frontier.prune_at(FakeBench(), frontier.METHODS["latency_r4_task_taylor"], 0.4, 0)
        frontier.prune_at(FakeBench(), frontier.METHODS["latency_table32_task_taylor"], 0.4, 0)
        assert seen == [1, 2, 2, 2]
        assert rounds == ["auto", "auto", 4, "auto"]
        assert tables == [None, None, None, "table@32"]
        assert frontier.torch.get_num_threads() == 2
    finally:
        frontier.torch.set_num_threads(before)
