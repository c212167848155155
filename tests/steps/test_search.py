"""The search of prune_within read from its frontier alone: steps forward, bisection after a break, remedies."""

from __future__ import annotations

import pytest

from taskprune.steps.search import (
    Remedy,
    accepted_remedies,
    failing_tasks,
    metric_tasks_of,
    next_ratio,
    pending_remedies,
)

LIMITS = {"map50": 1.0, "lane_iou": 1.0}
TASKS = {"map50": "det", "lane_iou": "lane"}


def _entry(ratio, verdict, remedy=None, drops=None, protected=()):
    return {"ratio": ratio, "verdict": verdict, "remedy": remedy, "within": bool(verdict),
            "drop": drops or {"map50": 0.0, "lane_iou": 0.0}, "protected": list(protected)}


def test_steps_forward_until_max_ratio():
    frontier = [_entry(0.0, True)]
    assert next_ratio(frontier, 0.1, 0.3, 0.02) == pytest.approx(0.1)
    frontier += [_entry(0.1, True), _entry(0.2, True)]
    assert next_ratio(frontier, 0.1, 0.3, 0.02) == pytest.approx(0.3)
    frontier.append(_entry(0.3, True))
    assert next_ratio(frontier, 0.1, 0.3, 0.02) is None


def test_a_break_is_bisected_down_to_the_resolution():
    frontier = [_entry(0.0, True), _entry(0.1, True), _entry(0.2, False)]
    assert next_ratio(frontier, 0.1, 0.9, 0.02) == pytest.approx(0.15)
    frontier.append(_entry(0.15, True))
    assert next_ratio(frontier, 0.1, 0.9, 0.02) == pytest.approx(0.175)
    frontier.append(_entry(0.175, False))
    assert next_ratio(frontier, 0.1, 0.9, 0.02) == pytest.approx(0.1625)  # 0.025 apart: once more
    frontier.append(_entry(0.1625, True))
    assert next_ratio(frontier, 0.1, 0.9, 0.02) is None  # 0.0125 apart

def test_the_first_step_breaking_is_bisected_from_zero():
    frontier = [_entry(0.0, True), _entry(0.1, False)]
    assert next_ratio(frontier, 0.1, 0.9, 0.02) == pytest.approx(0.05)
    frontier.append(_entry(0.05, True))
    assert next_ratio(frontier, 0.1, 0.9, 0.02) == pytest.approx(0.075)


def test_only_final_verdicts_count():
    frontier = [_entry(0.0, True), _entry(0.1, None)]  # remedies still to try at 0.1
    assert next_ratio(frontier, 0.1, 0.9, 0.02) == pytest.approx(0.1)


def test_remedies_are_for_the_tasks_that_broke_and_carry_on_after_the_last_tried():
    broken = {"map50": 0.4, "lane_iou": 1.6}
    frontier = [_entry(0.0, True), _entry(0.3, None, drops=broken)]
    assert failing_tasks(frontier[1], LIMITS, TASKS) == ["lane"]
    kinds = ("task_weight", "task_groups")
    assert pending_remedies(frontier, 0.3, LIMITS, TASKS, kinds) == [Remedy("task_weight", "lane"),
                                                                    Remedy("task_groups", "lane")]
    frontier.append(_entry(0.3, None, remedy="task_weight:lane", drops=broken))
    assert pending_remedies(frontier, 0.3, LIMITS, TASKS, kinds) == [Remedy("task_groups", "lane")]
    assert pending_remedies(frontier, 0.3, LIMITS, TASKS, ("task_weight",)) == []


def test_a_metric_without_a_task_gets_no_remedy():
    frontier = [_entry(0.0, True), _entry(0.3, None, drops={"map50": 2.0, "lane_iou": 0.0})]
    assert pending_remedies(frontier, 0.3, LIMITS, {"lane_iou": "lane"}, ("task_groups",)) == []


def test_remedies_that_held_are_kept_for_later_steps():
    frontier = [_entry(0.0, True), _entry(0.3, None, drops={"map50": 0.0, "lane_iou": 2.0}),
                _entry(0.3, True, remedy="task_groups:lane", protected=["lane_head.7"]),
                _entry(0.4, False, remedy="task_weight:det")]
    assert accepted_remedies(frontier) == [{"remedy": "task_groups:lane", "protect": ["lane_head.7"]}]


def test_metric_tasks_by_name_or_given():
    assert metric_tasks_of({"lane_iou": 1, "lane_acc": 1, "map50": 1}, ["det", "lane"], None) == \
        {"lane_iou": "lane", "lane_acc": "lane"}
    assert metric_tasks_of(LIMITS, ["det", "lane"], TASKS) == TASKS
    with pytest.raises(ValueError, match=r"metric_tasks names task\(s\) \['lanes'\].*tasks: det, lane"):
        metric_tasks_of(LIMITS, ["det", "lane"], {"lane_iou": "lanes"})
