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


def test_channel_bars_are_named_by_their_layers(two_head, tmp_path):
    """The x axis carried group numbers; a reader needs the layer names (SVG keeps every label as a comment)."""
    model, x = two_head
    report = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False).report
    svg = plots.plot_channels(report, tmp_path / "c.svg").read_text()
    assert all(f"<!-- {g.layer} -->" in svg for g in report.groups), [g.layer for g in report.groups]
    assert "root layer" in svg


def test_equal_limits_are_drawn_as_one_line_and_the_legend_says_so(tmp_path):
    frontier = [{"reduction": 0.0, "drop": {"map50": 0.0, "lane_iou": 0.0}, "within": True},
                {"reduction": 0.2, "drop": {"map50": 1.0, "lane_iou": 2.5}, "within": True}]
    svg = plots.plot_frontier(frontier, {"map50": 3.0, "lane_iou": 3.0}, tmp_path / "f.svg").read_text()
    assert "<!-- limit of map50 and lane_iou (equal: 3) -->" in svg
    apart = plots.plot_frontier(frontier, {"map50": 1.0, "lane_iou": 3.0}, tmp_path / "g.svg").read_text()
    assert "<!-- map50 limit (1) -->" in apart and "<!-- lane_iou limit (3) -->" in apart and "equal" not in apart


def test_the_frontier_line_joins_only_the_models_that_held(tmp_path, monkeypatch):
    """A bisecting search leaves broken attempts between held models; a line through them zigzags. The metric's line
    runs through the held models in order of reduction, and each broken one is a separate open marker."""
    from taskprune.reporting import plots as drawing

    drawn = {}
    monkeypatch.setattr(drawing, "_save", lambda figure, plt, path: drawn.setdefault("figure", figure))
    frontier = [{"reduction": 0.0, "drop": {"a": 0.0}, "within": True},
                {"reduction": 0.6, "drop": {"a": 1.8}, "within": False},
                {"reduction": 0.55, "drop": {"a": 0.9}, "within": True},
                {"reduction": 0.4, "drop": {"a": 0.5}, "within": True},
                {"reduction": None, "refused": "no plan", "within": False}]
    plots.plot_frontier(frontier, {"a": 1.0}, tmp_path / "f.png")
    axis = drawn["figure"].axes[0]
    line = next(line for line in axis.lines if line.get_label() == "a")
    assert list(line.get_xdata()) == pytest.approx([0.0, 40.0, 55.0])
    assert list(line.get_ydata()) == pytest.approx([0.0, 0.5, 0.9])
    markers = [tuple(map(float, point)) for collection in axis.collections for point in collection.get_offsets()]
    assert (60.0, 1.8) in markers  # the broken attempt: an open circle and a cross, off the line
    import matplotlib.pyplot as plt

    plt.close(drawn["figure"])  # _save, replaced here, would have closed it
