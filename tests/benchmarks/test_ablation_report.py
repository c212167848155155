"""The evidence grid's summary: means, spreads and paired verdicts computed from the rows, not typed in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ablation_report  # noqa: E402


def row(criterion: str, seed: int, delta_m: float, reduction: float = 0.6, stage: str = "distilled") -> dict:
    return {"reduction": reduction, "criterion": criterion, "stage": stage, "seed": seed, "delta_m": delta_m,
            "lane_iou": 60.0 + delta_m, "params": 1, "params_reduction": reduction}


def table(text: str, first: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first}")]


def test_spread_is_mean_and_half_range():
    assert ablation_report.spread([1.0, 2.0, 4.0]) == "2.3 ±1.5"
    assert ablation_report.spread([-3.0], 2) == "-3.00"


def test_paired_verdicts():
    rows = ([row("conflict_taylor", s, d) for s, d in enumerate([-3.0, -3.2, -2.9])]
            + [row("taylor", s, d) for s, d in enumerate([-5.0, -4.0, -4.5])]         # ahead in every seed, apart
            + [row("task_taylor", s, d) for s, d in enumerate([-3.1, -3.0, -2.8])]     # overlapping: not ahead
            + [row("magnitude", 0, -6.0)])                                             # one seed only
    text = ablation_report.headline({"rows": rows})
    verdicts = {r[2]: (r[3], r[4], r[5]) for r in table(text, "0.60 | conflict_taylor")}
    assert verdicts["taylor"] == ("3", "+1.47 [+0.80, +2.00]", "yes")
    assert verdicts["task_taylor"][2] == "no"
    assert verdicts["magnitude"] == ("1", "+3.00 [+3.00, +3.00]", "one seed only")
    assert "random" not in verdicts  # no rows, no claim
    task_aware = {r[2]: r[5] for r in table(text, "0.60 | task_taylor")}
    assert task_aware == {"magnitude": "one seed only", "taylor": "yes"}
    means = {r[0]: r for r in table(text, "conflict_taylor")}
    assert means["conflict_taylor"][1:3] == ["3", "-3.03 ±0.15%"]


def test_variants_compared_on_the_same_seeds():
    rows = [row("conflict_taylor", 0, -3.0), row("conflict_taylor", 1, -4.0),
            row("conflict_taylor:lam=1", 0, -2.5)]
    text = ablation_report.headline({"rows": rows})
    variant = table(text, "0.60 | conflict_taylor:lam=1")
    assert variant == [["0.60", "conflict_taylor:lam=1", "1", "-2.50%", "-3.00%", "+0.50"]]


@pytest.mark.parametrize("stage", ["pruned", "finetuned"])
def test_only_the_distilled_stage_is_compared(stage):
    rows = [row("conflict_taylor", 0, -1.0, stage=stage), row("taylor", 0, -9.0, stage=stage)]
    assert table(ablation_report.headline({"rows": rows}), "0.60") == []


def test_what_distillation_adds_is_paired_by_seed():
    rows = [row("conflict_taylor", 0, -3.0, stage="finetuned"), row("conflict_taylor", 0, -2.5),
            row("conflict_taylor", 1, -4.0, stage="finetuned"), row("conflict_taylor", 1, -3.0)]
    text = ablation_report.headline({"rows": rows})
    assert "without it, +0.75 points [+0.50, +1.00] over 2 seed(s)" in text


def test_plot_draws_seeds_that_agree_exactly(tmp_path):
    """Three identical values have a float mean a rounding error outside their range; matplotlib refuses the
    negative error bar that makes, which stopped both grid shards once."""
    value = -92.90322580645162
    rows = [row(c, s, value, stage=stage) for c in ("random", "conflict_taylor") for s in range(3)
            for stage in ("pruned", "distilled")]
    ablation_report.plot({"rows": rows}, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0
