"""Pictures: every plot writes a PNG from what the library produces, and a missing matplotlib names the extra."""

from __future__ import annotations

import sys

import pytest

import taskprune
from taskprune import plots


def test_channels_metrics_and_frontier_are_drawn(two_head, tmp_path):
    model, x = two_head
    result = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False)
    assert plots.plot_channels(result.report, tmp_path / "c.png").stat().st_size > 1000
    assert plots.plot_channels(result.report.to_dict(), tmp_path / "d.png").stat().st_size > 1000
    models = {"teacher": {"mAP50": 0.9, "lane IoU": 0.6}, "student": {"mAP50": 0.85, "lane IoU": 0.55}}
    assert plots.plot_metrics(models, tmp_path / "m.png").stat().st_size > 1000
    frontier = [{"reduction": 0.0, "drop": {"a": 0.0}, "within": True},
                {"reduction": 0.3, "drop": {"a": 0.4}, "within": True},
                {"reduction": 0.5, "drop": {"a": 1.5}, "within": False}]
    assert plots.plot_frontier(frontier, {"a": 1.0}, tmp_path / "f.png").stat().st_size > 1000


def test_a_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install taskprune\[plot\]"):
        plots.plot_metrics({"a": {"x": 1.0}}, tmp_path / "m.png")
