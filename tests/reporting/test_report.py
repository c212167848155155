"""PruneReport: what a prune did as a table, JSON and markdown, and back from what save stores."""

from __future__ import annotations

import json

from taskprune.reporting import GroupChange, PruneReport


def _report() -> PruneReport:
    return PruneReport(criterion="conflict_taylor", target="params", ratio=0.4, reached=0.398, params_before=1000,
                       params_after=602, macs_before=5000, macs_after=2500, round_to=8,
                       groups=[GroupChange(0, "trunk.0", 32, tasks=("a", "b"), after=16),
                               GroupChange(1, "a.0", 16, tasks=("a",)),
                               GroupChange(2, "b.0", 8, tasks=("b",), kept_whole="kept whole: grouped convolution")],
                       protected_outputs=["a.2", "b.2"], timings={"graph": 0.5}, call="model(example_inputs)")


def test_attribution_and_changed_groups():
    report = _report()
    assert report.task_attribution == {"a": 1, "b": 1, "shared": 1}
    assert [g.layer for g in report.changed_groups()] == ["trunk.0", "b.0"]  # changed, or with a note


def test_text_json_and_markdown_say_the_same():
    report = _report()
    text = str(report)
    assert "asked 40.0%, reached 39.8%" in text and "1,000 -> 602 (-39.8%)" in text and "32 -> 16" in text
    data = json.loads(report.to_json())
    assert data["params_after"] == 602 and data["task_attribution"]["shared"] == 1
    assert data["groups"][2] == {"layer": "b.0", "before": 8, "after": 8, "tasks": ["b"],
                                 "note": "kept whole: grouped convolution"}  # the file format taskprune.save keeps
    markdown = report.to_markdown()
    assert "| trunk.0 | 32 -> 16 | shared |  |" in markdown
    assert "| b.0 | 8 -> 8 | b | kept whole: grouped convolution |" in markdown


def test_from_dict_round_trips():
    report = _report()
    again = PruneReport.from_dict(json.loads(report.to_json()))
    assert again == report


def test_an_extraction_reports_what_went_per_task():
    report = PruneReport(criterion="extract", target="tasks", ratio=0.0, reached=0.1, params_before=100,
                         params_after=90, macs_before=10, macs_after=8, warnings=["kept tasks: a; dropped: b"],
                         removed={"b": {"modules": ["b.0", "b.2"], "params": 10, "macs": 2.0}})
    text = str(report)
    assert "removed for b" in text and "2 modules, 10 params" in text and "pruned groups" not in text


def test_notes_are_shown_apart_from_warnings_and_kept_by_from_dict():
    report = PruneReport(criterion="magnitude", target="params", ratio=0.3, reached=0.3, params_before=100,
                         params_after=70, macs_before=10, macs_after=7, notes=["round_to='auto': steps of 8 were used"],
                         warnings=["x.0: kept whole: grouped convolution"])
    rows = report.summary_rows()
    assert ("note", "round_to='auto': steps of 8 were used") in rows
    assert ("warning", "x.0: kept whole: grouped convolution") in rows
    assert "| note | round_to='auto': steps of 8 were used |" in report.to_markdown()
    assert PruneReport.from_dict(json.loads(report.to_json())).notes == report.notes


def test_round_to_auto_reports_its_choice_as_a_note_not_a_warning():
    """The issue's trap: round_to="auto" put its choice among the warnings of almost every prune."""
    import taskprune
    from taskprune import latency
    from taskprune.testing import get_test_model

    model, x = get_test_model("plain_det_seg")()
    with latency.override(alignment=8):
        report = taskprune.prune(model, x, ratio=0.3, progress=False).report
    assert any(n.startswith("round_to='auto': steps of") and "pass round_to=N" in n for n in report.notes), \
        report.notes
    assert not any("round_to" in w for w in report.warnings), report.warnings
    assert "warning" not in str(report)
