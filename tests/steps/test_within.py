"""prune_within(): the returned model never breaks a limit, the frontier records every step, bad limits are named."""

from __future__ import annotations

import json

import pytest
import torch
from two_task_models import imitation_batches

import taskprune
from taskprune.criteria import get_criterion
from taskprune.train import FinetuneConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASKS = taskprune.Tasks(losses={"a": lambda out, batch: (out - batch["a"]).pow(2).mean(),
                                "b": lambda out, batch: (out - batch["b"]).pow(2).mean()},
                        inputs=lambda batch: batch["image"])


def _teacher_and_data(two_head):
    model, x = two_head
    return model, x, imitation_batches(model, 4)  # learn to imitate the teacher


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
                                   recovery=FinetuneConfig(epochs=1, max_steps=3, lr=1e-3, bn_mode="train",
                                                           progress=False),
                                   measure_latency=False, progress=False)
    base, got = evaluate(model), evaluate(found.result.model)
    assert all(base[k] - got[k] <= limits[k] for k in limits)
    assert found.frontier[0]["reduction"] == 0.0 and found.frontier[0]["within"]
    within = [f for f in found.frontier if f["within"]]
    assert found.reduction == within[-1]["reduction"]
    assert abs(1 - found.result.report.params_after / found.result.report.params_before - found.reduction) < 0.011
    broken = [f for f in found.frontier if f["verdict"] is False]
    assert broken, "the limits were meant to stop it before max_ratio"
    assert broken[0]["recovery_rounds"] == 2  # a second recovery round was tried before giving up
    held = max(f["ratio"] for f in found.frontier if f["verdict"])
    assert min(f["ratio"] for f in broken) - held <= 0.02 + 1e-9  # bisected down to the resolution
    assert all(f["within"] == bool(f["verdict"]) for f in found.frontier)
    assert 0 < found.reduction < max(f["reduction"] for f in broken)
    json.loads(found.to_json())
    assert found.plot(tmp_path / "frontier.png").stat().st_size > 0


def _sized(model, narrowed_b_costs=0.0):
    """A metric per task read off the model's shape alone: "a" loses a point per 1% of the parameters removed, "b"
    loses `narrowed_b_costs` points once the layer serving only "b" (b.0) lost a channel."""
    params = sum(p.numel() for p in model.parameters())

    def evaluate(student):
        removed = 1 - sum(p.numel() for p in student.parameters()) / params
        return {"a": -100 * removed, "b": -narrowed_b_costs * (student.b[0].out_channels < 8)}
    return evaluate


QUICK = dict(round_to=None, measure_latency=False, progress=False,
             recovery=FinetuneConfig(epochs=1, max_steps=1, lr=1e-9, bn_mode="train", progress=False))


def test_a_first_step_that_breaks_a_limit_is_bisected_instead_of_returning_nothing(two_head):
    model, x, batches = _teacher_and_data(two_head)
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_sized(model),
                                   limits={"a": 5.0}, step=0.1, importance="magnitude", remedies=(), **QUICK)
    assert [round(f["ratio"], 4) for f in found.frontier][:3] == [0.0, 0.1, 0.05]
    assert not found.frontier[1]["within"]
    assert 0.02 < found.reduction <= 0.05  # "a" allows 5% of the parameters
    held = max(f["ratio"] for f in found.frontier if f["verdict"])
    assert min(f["ratio"] for f in found.frontier if f["verdict"] is False) - held <= 0.02


def test_a_remedy_that_spares_the_broken_task_holds_and_stays_in_force(two_head):
    model, x, batches = _teacher_and_data(two_head)
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_sized(model, 10.0),
                                   limits={"a": 45.0, "b": 1.0}, step=0.2, importance="random", **QUICK)
    remedied = [f for f in found.frontier if f["remedy"]]
    assert remedied and remedied[0]["remedy"] == "task_groups:b" and remedied[0]["verdict"] is True
    assert remedied[0]["protected"] == ["b.0"]
    assert all(not f["remedy"].startswith("task_weight") for f in remedied)  # random has no task weights
    assert found.result.model.b[0].out_channels == 8  # the later steps kept b.0 whole
    assert found.reduction > 0.3


def test_task_weights_are_tried_first_with_a_task_aware_criterion(two_head):
    model, x, batches = _teacher_and_data(two_head)
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_sized(model, 10.0),
                                   limits={"a": 45.0, "b": 1.0}, step=0.2, importance="task_taylor",
                                   max_ratio=0.4, **QUICK)
    tried = [f["remedy"] for f in found.frontier if f["remedy"]]
    assert tried[:1] == ["task_weight:b"]


def test_report_is_recorded_and_never_decides(two_head):
    model, x, batches = _teacher_and_data(two_head)
    options = dict(tasks=TASKS, data=batches, evaluate=_sized(model), limits={"a": 25.0}, step=0.2,
                   importance="magnitude", **QUICK)
    plain = taskprune.prune_within(model, x, **options)
    reported = taskprune.prune_within(model, x, report=lambda m: {"a": -1e9, "c": 7.0}, **options)
    decisions = [(f["ratio"], f["verdict"]) for f in plain.frontier]
    assert [(f["ratio"], f["verdict"]) for f in reported.frontier] == decisions
    assert all(f["report"] == {"a": -1e9, "c": 7.0} for f in reported.frontier)
    assert all(f["report"] is None for f in plain.frontier)


def test_bad_search_settings_are_refused_by_name(two_head):
    model, x, batches = _teacher_and_data(two_head)
    options = dict(tasks=TASKS, data=batches, evaluate=_sized(model), limits={"a": 25.0}, **QUICK)
    with pytest.raises(ValueError, match=r"Unknown remedy 'protect'; available: task_weight, task_groups"):
        taskprune.prune_within(model, x, remedies=("protect",), **options)
    with pytest.raises(ValueError, match=r"resolution=0"):
        taskprune.prune_within(model, x, resolution=0, **options)


def test_a_limit_broken_at_the_first_step_returns_the_unpruned_model(two_head):
    model, x, batches = _teacher_and_data(two_head)
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_scores(batches),
                                   limits={"a": 0.0, "b": 0.0}, step=0.5, round_to=None, importance="magnitude",
                                   recovery=FinetuneConfig(epochs=1, max_steps=1, lr=1e-6, bn_mode="train",
                                                           progress=False),
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
                   recovery=FinetuneConfig(epochs=1, max_steps=3, lr=1e-3, bn_mode="train", batch_size=4,
                                           progress=False))
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
                   recovery=FinetuneConfig(epochs=1, max_steps=1, lr=1e-3, bn_mode="train", progress=False))
    taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path, **options)
    with pytest.raises(ValueError, match=r"other settings: step=0.4 \(now 0.2\).*another folder to start over"):
        taskprune.prune_within(model, x, step=0.2, max_ratio=0.4, checkpoint=tmp_path, **options)
    other = dict(options, recovery=FinetuneConfig(epochs=1, max_steps=1, lr=1e-3, bn_mode="train", bn_batches=4,
                                                  progress=False))
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
    # a checkpoint that does not record a setting cannot say what it ran with: refused by name, not assumed
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    del state["settings"]["validate"]
    torch.save(state, tmp_path / "state.pt")
    with pytest.raises(ValueError, match=r"other settings: validate=None \(now False\)"):
        taskprune.prune_within(model, x, step=0.4, max_ratio=0.4, checkpoint=tmp_path, **options)


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
                                                           bn_mode="train", judge_start=False,
                                                           progress=False),
                                   measure_latency=False, progress=False)
    base = calls[0][0]  # the unpruned model, validated first
    margins = [min(limits[k] - (base[k] - v[k]) for k in limits) for v, _ in calls[1:]]
    recoveries = [range(1 + 4 * i, 5 + 4 * i) for i in range(len(margins) // 4)]  # four validations each
    assert len(margins) == 4 * sum(f["recovery_rounds"] for f in found.frontier)
    picked = []
    for row in found.frontier[1:]:
        if not row["recovery_rounds"]:
            continue  # refused by the budget, or a remedy that changed nothing: no recovery ran
        last = recoveries[sum(f["recovery_rounds"] for f in found.frontier[1:row["step"] + 1]) - 1]
        best = max(last, key=lambda i: margins[i - 1])
        assert {k: row[k] for k in limits} == pytest.approx(calls[best][1])  # the test metrics of the chosen step
        picked.append(best != last[-1])
    assert any(picked), \
        "every recovery's best was its last step: the test shows nothing"


def test_every_measured_latency_comes_with_its_spread_and_repeats(two_head):
    """A latency ratio of one median hid how noisy it was (a step at 127% of the teacher's); every entry now gives
    the quartiles of its interleaved rounds beside the median, and how many rounds there were."""
    model, x, batches = _teacher_and_data(two_head)
    found = taskprune.prune_within(model, x, tasks=TASKS, data=batches, evaluate=_sized(model), limits={"a": 50.0},
                                   step=0.2, max_ratio=0.4, importance="magnitude",
                                   **{**QUICK, "measure_latency": True})
    pruned = [f for f in found.frontier[1:] if f.get("reduction") is not None]
    assert pruned
    for entry in pruned:
        low, high = entry["latency_spread"]
        assert 0 < low <= entry["latency"] <= high and entry["latency_repeats"] == 11
