"""The teacher loop: it lowers the loss, checkpoints, resumes, and `evaluate` reports YOLOP's five metrics."""

from __future__ import annotations

import pytest
import torch

from taskprune.driving import DrivingNet, SyntheticDriving, evaluate, loader
from taskprune.driving.train import TrainConfig, train


def test_train_checkpoints_and_resumes(tmp_path):
    torch.manual_seed(0)
    model = DrivingNet(size="n")
    data = SyntheticDriving(8, size=(64, 96), seed=0)
    config = TrainConfig(epochs=2, batch_size=4, warmup_steps=1, eval_every=2)
    checkpoint = tmp_path / "last.pt"
    history = train(model, data, SyntheticDriving(4, size=(64, 96), seed=9), config, checkpoint=checkpoint,
                    progress=False, log=lambda _: None)
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["step"] == 4
    assert "metrics" not in history[0] and set(history[1]["metrics"]) == {
        "recall", "map50", "drivable_miou", "lane_acc", "lane_iou"}
    state = torch.load(checkpoint, weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 4
    # Resuming a finished run trains nothing more, leaves the weights as they were and gives back the history.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    resumed = DrivingNet(size="n")
    assert train(resumed, data, None, config, checkpoint=checkpoint, progress=False, log=lambda _: None) == history
    assert all(torch.equal(before[k], v) for k, v in resumed.state_dict().items())


def test_training_lowers_the_segmentation_loss():
    torch.manual_seed(0)
    model = DrivingNet(size="n")
    data = SyntheticDriving(4, size=(64, 96), seed=0)
    history = train(model, data, None, TrainConfig(epochs=6, batch_size=4, warmup_steps=0, lr=5e-3),
                    progress=False, log=lambda _: None)
    assert history[-1]["loss"]["drivable"] < history[0]["loss"]["drivable"]


def test_evaluate_rejects_models_without_decode():
    with pytest.raises(TypeError, match="decode"):
        evaluate(torch.nn.Conv2d(3, 3, 1), loader(SyntheticDriving(1, size=(64, 64))))


def test_config_validation():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
