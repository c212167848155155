"""Every public function gives back each submodule's own train/eval mode: a model in train mode with a frozen
(eval-mode) stem keeps its stem frozen, and `finetune` trains only in the modes the caller set."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taskprune

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class FrozenStemNet(nn.Module):
    """A stem (conv + BatchNorm) meant to stay frozen, a trunk, and two task heads."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.trunk = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.a = nn.Conv2d(32, 4, 1)
        self.b = nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(self.stem(x))
        return {"a": self.a(features), "b": self.b(features)}


def frozen_stem_model() -> FrozenStemNet:
    torch.manual_seed(0)
    model = FrozenStemNet().train()
    model.stem.eval()  # the owner froze the stem: its BatchNorm statistics must not move
    return model


def modes(model: nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


TASKS = taskprune.Tasks(outputs={"a": lambda out: out["a"], "b": lambda out: out["b"]},
                        losses={"a": lambda out, batch: out.pow(2).mean(),
                                "b": lambda out, batch: (out - 1).pow(2).mean()})


def batches(count: int = 3) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(4, 3, 16, 16, generator=generator) for _ in range(count)]


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("importance", ["magnitude", "conflict_taylor"])
def test_prune_keeps_every_submodules_mode(inplace, importance):
    model = frozen_stem_model()
    before = modes(model)
    result = taskprune.prune(model, torch.randn(1, 3, 16, 16), ratio=0.3, importance=importance, tasks=TASKS,
                             data=batches(), round_to=None, inplace=inplace, progress=False)
    assert modes(model) == before
    assert modes(result.model) == before
    assert result.model.stem.training is False and result.model.trunk.training is True


def test_prune_iteratively_keeps_modes():
    model = frozen_stem_model()
    before = modes(model)
    result = taskprune.prune_iteratively(model, torch.randn(1, 3, 16, 16), schedule=[0.2, 0.4], round_to=None,
                                         progress=False)
    assert modes(model) == before and modes(result.model) == before


def test_finetune_keeps_a_frozen_batchnorm_frozen():
    model = frozen_stem_model()
    before = modes(model)
    stem_stats = model.stem[1].running_mean.clone()
    trunk_stats = model.trunk[1].running_mean.clone()
    taskprune.finetune(model, TASKS, batches(), epochs=1, progress=False, bn_mode="train")
    assert modes(model) == before
    assert torch.equal(model.stem[1].running_mean, stem_stats), "the frozen stem's statistics moved"
    assert not torch.equal(model.trunk[1].running_mean, trunk_stats), "the trunk did not train in train mode"


def test_finetune_trains_an_eval_model_as_a_whole_and_gives_it_back_in_eval():
    model = frozen_stem_model().eval()
    stem_stats = model.stem[1].running_mean.clone()
    taskprune.finetune(model, TASKS, batches(), epochs=1, progress=False, bn_mode="train")
    assert not any(modes(model).values())
    assert not torch.equal(model.stem[1].running_mean, stem_stats)


def test_finetune_with_distillation_and_evaluation_keeps_teacher_and_student_modes():
    teacher = frozen_stem_model()
    result = taskprune.prune(teacher, torch.randn(1, 3, 16, 16), ratio=0.3, round_to=None, progress=False)
    student = result.model
    teacher_modes, student_modes = modes(teacher), modes(student)
    seen: list[bool] = []
    taskprune.finetune(student, TASKS, batches(), epochs=1, teacher=teacher, channel_map=result.channel_map,
                       eval_fn=lambda m: seen.append(m.training) or {"score": 0.0}, progress=False)
    assert seen and not any(seen), "eval_fn must see the student in eval mode"
    assert modes(teacher) == teacher_modes and modes(student) == student_modes


def test_feature_distiller_gives_the_teacher_its_modes_back():
    teacher = frozen_stem_model()
    before = modes(teacher)
    distiller = taskprune.FeatureDistiller(teacher, frozen_stem_model(), taskprune.Distill(layers=("trunk",)))
    distiller(torch.randn(2, 3, 16, 16))
    assert modes(teacher) == before


def test_export_onnx_keeps_modes(tmp_path):
    pytest.importorskip("onnx")
    model = frozen_stem_model()
    before = modes(model)
    taskprune.export_onnx(model, torch.randn(1, 3, 16, 16), tmp_path / "m.onnx")
    assert modes(model) == before


def test_save_load_keeps_the_fresh_models_modes(tmp_path):
    model = frozen_stem_model()
    result = taskprune.prune(model, torch.randn(1, 3, 16, 16), ratio=0.3, round_to=None, progress=False)
    taskprune.save(result, tmp_path / "p.pt")
    fresh = frozen_stem_model()
    before = modes(fresh)
    loaded = taskprune.load(tmp_path / "p.pt", fresh)
    assert modes(loaded) == before


def test_latency_target_keeps_modes():
    from taskprune import latency

    model = frozen_stem_model()
    before = modes(model)
    x = torch.randn(1, 3, 16, 16)
    with latency.override(table=latency.macs_table(model, x), alignment=1):
        result = taskprune.prune(model, x, ratio=0.3, target="latency", round_to=None, progress=False)
    assert modes(model) == before and modes(result.model) == before


@pytest.mark.parametrize("target", ["params", "macs"])
def test_prune_never_moves_batchnorm_statistics(target):
    """Counting MACs runs a forward; in train mode it would have updated the running statistics of the copy."""
    model = frozen_stem_model()
    result = taskprune.prune(model, torch.randn(2, 3, 16, 16), ratio=0.2, target=target, round_to=None,
                             progress=False)
    kept = result.channel_map.get("trunk.0", list(range(32)))
    assert torch.equal(result.model.trunk[1].running_mean, model.trunk[1].running_mean[kept])
