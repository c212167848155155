"""prune_within(): the returned model never breaks a limit, the frontier records every step, bad limits are named."""

from __future__ import annotations

import json

import pytest
import torch

import taskprune
from taskprune.criteria import get_criterion
from taskprune.train import FinetuneConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASKS = taskprune.Tasks(losses={"a": lambda out, batch: (out - batch["a"]).pow(2).mean(),
                                "b": lambda out, batch: (out - batch["b"]).pow(2).mean()},
                        inputs=lambda batch: batch["image"])


def _teacher_and_data(two_head):
    model, x = two_head
    generator = torch.Generator().manual_seed(3)
    batches = []
    for _ in range(4):
        image = torch.randn(4, 3, 16, 16, generator=generator)
        with torch.no_grad():
            out = model(image)
        batches.append({"image": image, "a": out["a"], "b": out["b"]})  # learn to imitate the teacher
    return model, x, batches


def _scores(batches):
    def evaluate(model):
        with torch.no_grad():
            return {task: -100 * sum(float((model(b["image"])[task] - b[task]).pow(2).mean()) for b in batches)
                    for task in ("a", "b")}
    return evaluate


def test_the_returned_model_is_within_every_limit(two_head, tmp_path):
    model, x, batches = _teacher_and_data(two_head)
    evaluate = _scores(batches)
    limits = {"a": 0.25, "b": 0.25}  # about where 40-60% of the parameters are gone on this model
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=evaluate, limits=limits,
                                   step=0.2, max_ratio=0.8, round_to=None, importance="magnitude",
                                   recovery=FinetuneConfig(epochs=1, max_steps=3, lr=1e-3, progress=False),
                                   measure_latency=False, progress=False)
    base, got = evaluate(model), evaluate(found.result.model)
    assert all(base[k] - got[k] <= limits[k] for k in limits)
    assert found.frontier[0]["reduction"] == 0.0 and found.frontier[0]["within"]
    within = [f for f in found.frontier if f["within"]]
    assert found.reduction == within[-1]["reduction"]
    assert abs(1 - found.result.report.params_after / found.result.report.params_before - found.reduction) < 0.011
    assert not found.frontier[-1]["within"], "the limits were meant to stop it before max_ratio"
    assert found.frontier[-1]["recovery_rounds"] == 2  # a second recovery round was tried before stopping
    assert all(f["within"] for f in found.frontier[:-1])
    assert 0 < found.reduction < found.frontier[-1]["reduction"]
    json.loads(found.to_json())
    assert found.plot(tmp_path / "frontier.png").stat().st_size > 0


def test_a_limit_broken_at_the_first_step_returns_the_unpruned_model(two_head):
    model, x, batches = _teacher_and_data(two_head)
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_scores(batches),
                                   limits={"a": 0.0, "b": 0.0}, step=0.5, round_to=None, importance="magnitude",
                                   recovery=FinetuneConfig(epochs=1, max_steps=1, lr=1e-6, progress=False),
                                   measure_latency=False, progress=False)
    assert found.reduction == 0.0 and not found.frontier[1]["within"]
    assert found.result.report.params_after == found.result.report.params_before
    assert all(torch.equal(a, b) for a, b in zip(found.result.model.state_dict().values(),
                                                 model.state_dict().values(), strict=True))


def test_limits_must_name_metrics_evaluate_returns(two_head):
    model, x, batches = _teacher_and_data(two_head)
    with pytest.raises(ValueError, match=r"limits name metric\(s\) \['lane_iou'\] .* it returns: a, b"):
        taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_scores(batches),
                               limits={"lane_iou": 1.0})


class _Scenes(torch.utils.data.Dataset):
    """The imitation batches as single samples, so the scoring batches come from a seeded DataLoader, with noise
    added to every image as it is read (augmentation drawn from torch's global random state)."""

    def __init__(self, batches):
        self.samples = [{k: v[i] for k, v in batch.items()} for batch in batches for i in range(len(batch["image"]))]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        sample = self.samples[index]
        return {**sample, "image": sample["image"] + 0.05 * torch.randn_like(sample["image"])}


def _collate(samples):
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


class _Interrupted(Exception):
    pass


def _interrupting(evaluate, after):
    calls = []

    def wrapped(model):
        calls.append(1)
        if len(calls) > after:
            raise _Interrupted
        return evaluate(model)
    return wrapped, calls


def test_an_interrupted_run_resumes_from_its_checkpoint_and_ends_as_if_uninterrupted(two_head, tmp_path):
    model, x, batches = _teacher_and_data(two_head)
    evaluate = _scores(batches)
    # taylor scores on batches drawn by a seeded DataLoader and every sample is augmented at random: resuming must
    # put both random-number states back, or the resumed steps differ
    options = dict(tasks=TASKS, data=_Scenes(batches), collate_fn=_collate, limits={"a": 0.6, "b": 0.6},
                   step=0.2, max_ratio=0.8, round_to=None, importance="taylor", num_batches=2,
                   distill=taskprune.Distill(align="adapter"), measure_latency=False, progress=False,
                   recovery=FinetuneConfig(epochs=1, max_steps=3, lr=1e-3, batch_size=4, progress=False))
    torch.manual_seed(0)
    whole = taskprune.prune_within(model, x, evaluate=evaluate, **options)
    assert len(whole.frontier) >= 3, "the test needs a second step to interrupt"

    folder = tmp_path / "resume"
    before_step_2 = 1 + whole.frontier[1]["recovery_rounds"]  # the unpruned model's evaluation, then step 1's
    torch.manual_seed(0)
    with pytest.raises(_Interrupted):
        taskprune.prune_within(model, x, evaluate=_interrupting(evaluate, before_step_2)[0], checkpoint=folder,
                               **options)
    assert sorted(p.name for p in folder.iterdir()) == ["state.pt", "step1.pt"]
    # an attempt killed between writing step 2's model and the state that names it leaves a stray step2.pt; the
    # next attempt (interrupted in its turn at step 3) must write its own
    assert all(f["within"] for f in whole.frontier[:4]), "the test needs three steps within the limits"
    (folder / "step2.pt").write_bytes((folder / "step1.pt").read_bytes())
    with pytest.raises(_Interrupted):
        taskprune.prune_within(model, x, evaluate=_interrupting(evaluate, 1 + whole.frontier[2]["recovery_rounds"])[0],
                               checkpoint=folder, **options)

    torch.manual_seed(123)  # another random state: the checkpoint's must replace it
    resumed = taskprune.prune_within(model, x, evaluate=evaluate, checkpoint=folder, **options)
    assert resumed.frontier == whole.frontier
    assert resumed.reduction == whole.reduction
    assert resumed.result.history == [list(h) for h in whole.result.history]
    assert resumed.result.channel_map == whole.result.channel_map
    for (name, a), b in zip(resumed.result.model.state_dict().items(), whole.result.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name

    # a finished run returns at once: only the unpruned model is evaluated (to check the limits)
    counting, calls = _interrupting(evaluate, 99)
    again = taskprune.prune_within(model, x, evaluate=counting, checkpoint=folder, **options)
    assert len(calls) == 1 and again.frontier == whole.frontier and again.reduction == whole.reduction


def test_a_checkpoint_from_other_settings_is_refused_by_name(two_head, tmp_path):
    model, x, batches = _teacher_and_data(two_head)
    options = dict(tasks=TASKS, data=batches, evaluate=_scores(batches), limits={"a": 0.25, "b": 0.25},
                   round_to=None, importance="magnitude", measure_latency=False, progress=False,
                   recovery=FinetuneConfig(epochs=1, max_steps=1, lr=1e-3, progress=False))
    taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path, **options)
    with pytest.raises(ValueError, match=r"other settings: step=0.4 \(now 0.2\).*another folder to start over"):
        taskprune.prune_within(model, x, step=0.2, max_ratio=0.4, checkpoint=tmp_path, **options)
    other = dict(options, recovery=FinetuneConfig(epochs=1, max_steps=1, lr=1e-3, bn_batches=4, progress=False))
    with pytest.raises(ValueError, match=r"other settings: recovery.bn_batches=0 \(now 4\)"):
        taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path, **other)
    with pytest.raises(ValueError, match=r"other settings: validate=False \(now True\)"):
        taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path, validate=_scores(batches),
                               **options)
    with pytest.raises(ValueError, match=r"other settings: distill.alpha=1.0 \(now 2.0\)"):
        taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path,
                               distill=taskprune.Distill(alpha=2.0), **options)
    with pytest.raises(ValueError, match=r"other settings: prune.round_to=None \(now 8\)"):
        taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path, **dict(options, round_to=8))
    # a criterion's own settings count too; its name stands for its defaults
    weighted = dict(options, importance="conflict_taylor")
    taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path / "conflict", **weighted)
    with pytest.raises(ValueError, match=r"other settings: importance.lam=0.5 \(now 0.25\)"):
        taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path / "conflict",
                               **dict(weighted, importance=get_criterion("conflict_taylor", lam=0.25)))
    with pytest.raises(ValueError, match=r"importance.task_weights=None \(now \{'a': 2.0\}\)"):
        taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path / "conflict",
                               **dict(weighted, importance=get_criterion("conflict_taylor", task_weights={"a": 2})))
    # a checkpoint written before a setting existed counts as that setting's default
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    del state["settings"]["validate"], state["settings"]["recovery.keep_best"]
    for key in [k for k in state["settings"] if k.startswith(("distill.", "prune.", "importance."))]:
        del state["settings"][key]
    torch.save(state, tmp_path / "state.pt")
    again = taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path, **options)
    assert again.frontier == state["frontier"]


def test_with_validate_every_recovery_keeps_its_best_step_on_the_validation_data(two_head):
    model, x, batches = _teacher_and_data(two_head)
    evaluate, held_out = _scores(batches[:2]), _scores(batches[2:])
    limits = {"a": 0.5, "b": 0.5}
    calls = []  # every validation: its metrics, and the test metrics of the same model

    def validate(student):
        calls.append((held_out(student), evaluate(student)))
        return calls[-1][0]

    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=evaluate, validate=validate,
                                   limits=limits, step=0.2, max_ratio=0.6, round_to=None, importance="magnitude",
                                   recovery=FinetuneConfig(epochs=1, max_steps=4, eval_every=1, lr=3e-2,
                                                           progress=False),
                                   measure_latency=False, progress=False)
    base = calls[0][0]  # the unpruned model, validated first
    margins = [min(limits[k] - (base[k] - v[k]) for k in limits) for v, _ in calls[1:]]
    recoveries = [range(1 + 4 * i, 5 + 4 * i) for i in range(len(margins) // 4)]  # four validations each
    assert len(margins) == 4 * sum(f["recovery_rounds"] for f in found.frontier)
    picked = []
    for row in found.frontier[1:]:
        last = recoveries[sum(f["recovery_rounds"] for f in found.frontier[1:row["step"] + 1]) - 1]
        best = max(last, key=lambda i: margins[i - 1])
        assert {k: row[k] for k in limits} == pytest.approx(calls[best][1])  # the test metrics of the chosen step
        picked.append(best != last[-1])
    assert any(picked), \
        "every recovery's best was its last step: the test shows nothing"
