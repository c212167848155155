"""finetune(): task losses go down, the schedule is the closed form, checkpoints, distillation, two processes."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from dist_finetune_worker import TwoTaskNet  # the model the two-process test trains
from torch import nn

from taskprune.distill import Distill, FeatureDistiller
from taskprune.tasks import Tasks, call_model
from taskprune.train import FinetuneConfig, cosine_lr, cosine_schedule, finetune

REPO = Path(__file__).resolve().parents[2]
KEEP = [0, 2, 5, 7]


def make_tasks(weights: dict[str, float] | None = None) -> Tasks:
    return Tasks(
        outputs={"seg": lambda out: out["seg"], "cls": lambda out: out["cls"]},
        losses={"seg": lambda out, b: F.binary_cross_entropy_with_logits(out, b["mask"]),
                "cls": lambda out, b: F.cross_entropy(out, b["label"])},
        inputs=lambda batch: batch["image"],
        weights=weights or {"seg": 1.0, "cls": 0.5},
    )


def make_batches(count: int = 6, batch: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        image = torch.randn(batch, 3, 8, 8, generator=generator)
        batches.append({"image": image, "mask": (image.mean(1, keepdim=True) > 0).float(),
                        "label": (image[:, 0].mean((1, 2)) > 0).long()})
    return batches


def summed_task_loss(model: nn.Module, tasks: Tasks, batches: list[dict[str, torch.Tensor]]) -> float:
    with torch.no_grad():
        total = 0.0
        for batch in batches:
            out = call_model(model, tasks.model_inputs(batch))
            total += sum(tasks.weight(n) * tasks.loss(n, tasks.task_output(n, out), batch).item() for n in tasks.names)
    return total / len(batches)


def pruned_student(teacher: TwoTaskNet) -> tuple[TwoTaskNet, dict[str, list[int]]]:
    student = TwoTaskNet(len(KEEP))
    with torch.no_grad():
        student.trunk[0].weight.copy_(teacher.trunk[0].weight[KEEP])
        student.trunk[0].bias.copy_(teacher.trunk[0].bias[KEEP])
        student.trunk[2].weight.copy_(teacher.trunk[2].weight[:, KEEP])
        student.trunk[2].bias.copy_(teacher.trunk[2].bias)
        student.seg.load_state_dict(teacher.seg.state_dict())
        student.cls.load_state_dict(teacher.cls.state_dict())
    return student, {"trunk.0": KEEP}


def test_a_few_steps_lower_the_summed_task_loss():
    torch.manual_seed(0)
    model, tasks, batches = TwoTaskNet(), make_tasks(), make_batches()
    before = summed_task_loss(model, tasks, batches)
    returned = finetune(model, tasks, batches, epochs=4, lr=3e-2, progress=False)
    assert returned is model
    assert summed_task_loss(model, tasks, batches) < 0.7 * before


def test_cosine_schedule_is_the_closed_form():
    # total 10, warmup 2: 1/2, 1 while warming up, then 0.5 * (1 + cos(pi * (s - 2) / 8)).
    expected = {0: 0.5, 1: 1.0, 2: 1.0, 4: 0.5 * (1 + math.cos(math.pi / 4)), 6: 0.5,
                9: 0.5 * (1 + math.cos(7 * math.pi / 8))}
    for step, value in expected.items():
        assert cosine_lr(step, 10, 2) == pytest.approx(value)
    assert cosine_lr(10, 10, 2) == pytest.approx(0.0)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    schedule = cosine_schedule(optimizer, 10, 2)
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.2 * cosine_lr(s, 10, 2) for s in range(10)])


def test_finetune_steps_with_the_schedule_over_a_dataset(monkeypatch):
    class Samples(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.items = [{k: v[i] for k, v in batch.items()} for batch in make_batches(2, 5) for i in range(5)]

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            return self.items[index]

    lrs = []
    step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    torch.manual_seed(0)
    finetune(TwoTaskNet(), make_tasks(), Samples(), epochs=2, batch_size=4, optimizer="sgd", lr=0.1,
             warmup_steps=2, progress=False)
    total = 2 * math.ceil(10 / 4)
    assert lrs == pytest.approx([0.1 * cosine_lr(s, total, 2) for s in range(total)])


def test_best_checkpoint_is_written_and_loads_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model, tasks, batches = TwoTaskNet(), make_tasks(), make_batches()
    scores, states = iter([0.3, 0.9, 0.5, 0.4]), []

    def eval_fn(student: nn.Module) -> dict[str, float]:
        assert not student.training
        states.append(copy.deepcopy(student.state_dict()))
        return {"score": next(scores), "loss": 1.0}

    path = tmp_path / "runs" / "best.pt"
    finetune(model, tasks, batches, epochs=1, eval_fn=eval_fn, eval_every=2, best_key="score", checkpoint=path,
             progress=False, keep_best=False, judge_start=False)
    assert len(states) == 3  # after steps 2, 4 and 6; the end of training is step 6
    saved = torch.load(path, weights_only=True)
    assert saved.keys() == states[1].keys()
    assert all(torch.equal(saved[k], states[1][k]) for k in saved)
    assert not any(torch.equal(saved[k], model.state_dict()[k]) for k in saved if k.endswith("weight"))
    with pytest.raises(ValueError, match="best_key 'acc'.*score, loss"):
        finetune(model, tasks, batches, epochs=1, eval_fn=eval_fn, best_key="acc", progress=False)


def test_min_mode_keeps_the_lowest_and_extra_metrics_need_no_key(tmp_path):
    model, tasks, batches = TwoTaskNet(), make_tasks(), make_batches(4)
    losses, states = iter([0.5, 0.2, 0.4, 0.3]), []

    def eval_fn(student: nn.Module) -> dict[str, float]:
        states.append(copy.deepcopy(student.state_dict()))
        return {"loss": next(losses)}

    finetune(model, tasks, batches, epochs=1, eval_fn=eval_fn, eval_every=1, best_mode="min",
             checkpoint=tmp_path / "best.pt", progress=False, keep_best=False, judge_start=False)
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert len(states) == 4 and all(torch.equal(saved[k], states[1][k]) for k in saved)
    # Several metrics, no best_key and no checkpoint: evaluation only reports.
    finetune(model, tasks, batches, epochs=1, eval_fn=lambda m: {"a": 1.0, "b": 2.0}, progress=False)


def test_checkpoint_without_eval_fn_is_the_last_state(tmp_path):
    model = TwoTaskNet()
    finetune(model, make_tasks(), make_batches(2), epochs=1, checkpoint=tmp_path / "last.pt", progress=False)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("align", ["select", "adapter"])
def test_kd_finetune_lowers_the_feature_distance(align):
    torch.manual_seed(0)
    teacher = TwoTaskNet()
    student, channel_map = pruned_student(teacher)
    for module in student.trunk:
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.3)
    batches = make_batches(4)
    x = batches[0]["image"]
    config = Distill(layers=("trunk.0", "trunk.2"), loss="mse", align="select")

    def distance() -> float:
        with FeatureDistiller(teacher, student, config, channel_map) as distiller, torch.no_grad():
            return distiller(x)[0].item()

    before = distance()
    teacher_state = copy.deepcopy(teacher.state_dict())
    # Task weights 0: only distillation trains the student.
    finetune(student, make_tasks({"seg": 0.0, "cls": 0.0}), batches, epochs=5, teacher=teacher,
             distill=Distill(layers=("trunk.0", "trunk.2"), align=align), channel_map=channel_map, lr=1e-2,
             progress=False)
    assert distance() < 0.5 * before
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_state.items())
    assert all(not m._forward_hooks for m in [*student.modules(), *teacher.modules()])


def test_kd_finetune_on_a_prune_result_with_auto_layers(two_head, two_head_tasks, batches):
    from taskprune.prune import prune

    model, example = two_head
    result = prune(model, example, ratio=0.3, progress=False)
    before = [p.detach().clone() for p in result.model.parameters()]
    student = finetune(result.model, two_head_tasks, batches, epochs=1, teacher=model, lr=1e-3,
                       distill=Distill(loss="cwd", align="adapter"), channel_map=result.channel_map, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters(), strict=True))
    assert not student.training  # it came in eval mode


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"optimizer": "adam"}, ValueError, "available: adamw, sgd"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"grad_clip": -1.0}, ValueError, "grad_clip"),
        ({"best_mode": "up"}, ValueError, "'max' or 'min'"),
        ({"distill": Distill()}, ValueError, "teacher="),
        ({"channel_map": {"trunk.0": [0]}}, ValueError, "teacher="),
    ],
)
def test_finetune_rejects_bad_arguments(kwargs, error, message):
    kwargs = {"epochs": 1, **kwargs}
    with pytest.raises(error, match=None) as info:
        finetune(TwoTaskNet(), make_tasks(), make_batches(1), progress=False, **kwargs)
    assert message in str(info.value)


def test_finetune_rejects_one_shot_and_unsized_data():
    batches = make_batches(2)
    with pytest.raises(TypeError, match="more than once"):
        finetune(TwoTaskNet(), make_tasks(), iter(batches), epochs=1, progress=False)

    class Stream:
        def __iter__(self):
            return iter(batches)

    with pytest.raises(ValueError, match="max_steps"):
        finetune(TwoTaskNet(), make_tasks(), Stream(), epochs=1, progress=False)
    model = TwoTaskNet()
    finetune(model, make_tasks(), Stream(), epochs=3, max_steps=3, progress=False)


def test_non_finite_loss_names_the_task():
    tasks = Tasks(outputs={"seg": lambda out: out["seg"], "cls": lambda out: out["cls"]},
                  losses={"seg": lambda out, b: out.mean() * float("nan"), "cls": lambda out, b: out.pow(2).mean()},
                  inputs=lambda batch: batch["image"])
    with pytest.raises(RuntimeError, match=r"step 0: seg nan, cls"):
        finetune(TwoTaskNet(), tasks, make_batches(1), epochs=1, progress=False)


def test_progress_bar_shows_the_task_losses(capsys):
    finetune(TwoTaskNet(), make_tasks(), make_batches(2), epochs=1, progress=True,
             eval_fn=lambda model: {"score": 1.0})
    out = capsys.readouterr().out
    assert "seg" in out and "cls" in out and "score 1" in out and "best score 1" in out


def test_two_processes_end_with_identical_replicas(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "tests" / "dist_finetune_worker.py"), str(tmp_path)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    reached = [line for line in run.stderr.splitlines() if line.startswith("rank ")]
    assert run.returncode == 0, f"{reached}\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert any(not torch.equal(ranks[0]["initial"][k], ranks[1]["initial"][k]) for k in ranks[0]["initial"])
    assert all(torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]) for k in ranks[0]["state"])
    assert any(not torch.equal(ranks[0]["state"][k], ranks[0]["initial"][k]) for k in ranks[0]["state"])
    assert len(ranks[0]["adapters"]) == 4
    assert all(torch.equal(ranks[0]["adapters"][k], ranks[1]["adapters"][k]) for k in ranks[0]["adapters"])
    # Strided batches: rank 0 got batches 0 and 2, rank 1 batches 1 and 3; the fifth was dropped.
    assert ranks[0]["seen_strided"] == [0, 1, 4, 5] and ranks[1]["seen_strided"] == [2, 3, 6, 7]
    # DistributedSampler: each epoch the ranks see disjoint halves of the 12 samples.
    for epoch in (0, 1):
        halves = [set(rank["seen_sampler"][6 * epoch: 6 * epoch + 6]) for rank in ranks]
        assert halves[0].isdisjoint(halves[1]) and halves[0] | halves[1] == set(range(12))
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*")) == ["checkpoint_rank0.pt"]
    # bn_batches: each rank re-estimated on its own half of the samples; the averaged statistics are the same
    normed = [rank["normed"] for rank in ranks]
    assert all(torch.equal(normed[0][k], normed[1][k]) for k in normed[0])
    assert not torch.equal(normed[0]["trunk.0.running_mean"], torch.zeros(3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_finetune_with_distillation_on_cuda():
    torch.manual_seed(0)
    teacher = TwoTaskNet().cuda()
    student, channel_map = pruned_student(teacher.cpu())
    teacher, student = teacher.cuda(), student.cuda()
    tasks = make_tasks()
    batches = [{k: v.cuda() for k, v in batch.items()} for batch in make_batches()]
    before = summed_task_loss(student, tasks, batches)
    finetune(student, tasks, batches, epochs=4, lr=3e-2, teacher=teacher, channel_map=channel_map,
             distill=Distill(layers=("trunk.0",), align="adapter", loss="cwd"), progress=False)
    assert next(student.parameters()).dtype == torch.float32
    assert summed_task_loss(student, tasks, batches) < before


def test_finetune_config_round_trips_and_refuses_unknown_keys():
    config = FinetuneConfig(epochs=3, max_steps=40, lr=5e-4, optimizer="sgd", seed=2)
    assert FinetuneConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown FinetuneConfig field\(s\) \['learning_rate'\]; valid: epochs, "):
        FinetuneConfig.from_dict({**config.to_dict(), "learning_rate": 1e-3})
