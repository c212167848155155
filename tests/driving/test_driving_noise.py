"""Per-scene records: the same metrics as `evaluate`, and bootstrap intervals that resample scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taskprune import driving


@pytest.fixture(scope="module")
def model_and_scenes():
    torch.manual_seed(0)
    model = driving.DrivingNet(size="n").eval()
    scenes = driving.loader(driving.SyntheticDriving(12, size=(64, 96), seed=3), batch_size=5)
    return model, scenes


def test_records_give_the_metrics_of_evaluate(model_and_scenes):
    model, scenes = model_and_scenes
    records = driving.evaluate_scenes(model, scenes)
    assert len(records) == 12 and records.drivable.shape == (12, 4)
    assert records.drivable.sum() == 12 * 64 * 96  # every pixel counted once per scene
    assert records.metrics() == pytest.approx(driving.evaluate(model, scenes), abs=1e-12)


def test_a_subset_of_scenes_is_the_metric_of_those_scenes_alone(model_and_scenes):
    model, _ = model_and_scenes
    first = driving.loader(driving.SyntheticDriving(12, size=(64, 96), seed=3), batch_size=4)
    records = driving.evaluate_scenes(model, first)
    only = [driving.SyntheticDriving(12, size=(64, 96), seed=3)[i] for i in range(4)]
    alone = driving.evaluate(model, [driving.collate(only)])
    assert records.metrics(np.arange(4)) == pytest.approx(alone, abs=1e-12)


def test_interval_is_reproducible_and_holds_the_estimate_of_distinct_scenes():
    rng = np.random.default_rng(0)
    counts = np.stack([rng.integers(1, 100, 4) for _ in range(40)])
    detections = tuple((rng.random(3), rng.random(3) > 0.5, np.zeros(3, np.int64), np.zeros(2, np.int64))
                       for _ in range(40))
    records = driving.SceneRecords(detections, counts, counts[::-1].copy())
    first, again = records.interval(resamples=300, seed=1), records.interval(resamples=300, seed=1)
    assert first == again
    point = records.metrics()
    for name, (low, high) in first.items():
        assert low <= point[name] <= high and low < high, name


def test_identical_scenes_have_no_noise():
    counts = np.tile(np.array([[5, 1, 2, 30]]), (10, 1))
    detections = tuple((np.array([0.9]), np.array([True]), np.array([0]), np.array([0])) for _ in range(10))
    interval = driving.SceneRecords(detections, counts, counts).interval(resamples=50)
    assert all(low == high for low, high in interval.values())


def test_bad_interval_settings_are_refused_by_name():
    records = driving.SceneRecords((), np.zeros((0, 4), np.int64), np.zeros((0, 4), np.int64))
    with pytest.raises(ValueError, match="level"):
        records.interval(level=95)
    with pytest.raises(ValueError, match="resamples"):
        records.interval(resamples=1)
