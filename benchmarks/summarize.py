"""Gather the committed benchmark results into docs/benchmarks.md and the README's benchmark section.

Every table is copied from a file under benchmarks/results/ that a benchmark script wrote; nothing is typed in.

    python benchmarks/summarize.py
"""

from __future__ import annotations

import json
import re

from harness import RESULTS, ROOT, write_text

# (results stem pattern, title, the command that writes it)
SECTIONS = [
    ("evidence", "Evidence out of sample: criteria and torch-pruning at its best, decided on validation scenes, "
     "reported on two untouched test sets",
     "python benchmarks/evidence.py --seeds 0 --only "
     "'0.60_*_steps400_*,0.60_taylor_steps1600*,0.60_task_taylor_steps1600*,0.60_tp_*_steps1600*'; "
     "python benchmarks/evidence.py --seeds 1,2 --choice-seeds 0 --only "
     "'0.60_taylor_*,0.60_task_taylor_*,0.60_conflict_taylor_steps400_*,0.60_tp_taylor_global_*' "
     "(each in two processes, one per core)"),
    ("frontier", "Accuracy at the same measured speed: 1.5x and 2x faster on this CPU",
     "python benchmarks/frontier.py --speedups 1.5,2.0 --seeds 0 (two processes); "
     "python benchmarks/frontier.py --methods latency_task_taylor,params_task_taylor,tp_global_iso_r16 "
     "--speedups 1.5,2.0 --seeds 1,2; python benchmarks/frontier.py --methods tp_global_iso_r8 --speedups 1.5,2.0 "
     "--seeds 1,2; python benchmarks/frontier.py --methods macs_task_taylor,tp_local_r8,tp_global_iso_r16 --speedups "
     "1.5,2.0 --seeds 1,2; python benchmarks/frontier.py --methods latency_task_taylor --speedups 1.7 --seeds 0,1,2; "
     "python benchmarks/frontier.py --fastest --methods tp_global_iso_r8,tp_local_r8,tp_global_iso_r16 --speedups 2.0 "
     "--seeds 0,1,2; python benchmarks/frontier.py --methods latency_steps3_task_taylor --speedups 2.0 --seeds 0,1,2 "
     "and --methods tp_local_r8,latency_task_taylor --speedups 1.7 --seeds 0,1,2 (two processes each)"),
    ("frontier_2threads/frontier", "Accuracy at the same measured speed at two threads (planned and matched at two)",
     "python benchmarks/frontier.py --threads 2 --methods latency_task_taylor,latency_plan1t_task_taylor,"
     "latency_r4_task_taylor,tp_global_iso_r8 --speedups 1.5 --seeds 0,1,2 --out benchmarks/results/frontier_2threads "
     "(other benchmarks paused). The latency_table32 rows ran as latency_task_taylor before its table was measured "
     "no coarser than multiples of 8 (1.5x seeds 0-2, 2x seed 0, then --fastest at 2x); the latency_task_taylor 2x "
     "row: --methods latency_task_taylor --speedups 2.0 --seeds 0, then on a new machine --methods "
     "latency_task_taylor,tp_global_iso_r8 --speedups 2.0 --seeds 1,2,0 and --fastest on the same; --methods "
     "params_task_taylor,tp_global_iso_r16,tp_local_r8,macs_task_taylor --speedups 1.5 --seeds 0, then --seeds 1,2; "
     "the same four --speedups 2.0 --seeds 0,1,2, then --fastest on the same"),
    ("frontier_threads", "The frontier's students at two threads (matched at one)",
     "python benchmarks/frontier_threads.py --threads 2"),
    ("frontier_widths", "Why torch-pruning cannot reach 2x here: where each method removes its MACs",
     "OMP_NUM_THREADS=1 python benchmarks/frontier_widths.py"),
    ("within_heldout", "The earlier prune_within searches, checked on the untouched test sets",
     "python benchmarks/within_heldout.py"),
    ("within_evidence_seed0",
     "prune_within with no hand-written hints, decided on validation, reported on both test sets",
     "python benchmarks/within_evidence.py"),
    ("within_evidence_seed1", "The same, on the second seed", "python benchmarks/within_evidence.py --seed 1"),
    ("within_evidence_seed0_progress", "prune_within with no hand-written hints, seed 0: the run so far",
     "python benchmarks/within_evidence.py --status"),
    ("within_evidence_seed1_progress", "The same search on the second seed: the run so far",
     "python benchmarks/within_evidence.py --status --seed 1"),
    ("ablation", "Earlier evidence (decided and reported on the same 500 scenes; superseded by the out-of-sample "
     "evidence above): criteria at 45% and 60% fewer parameters, three seeds",
     "python benchmarks/ablation.py --shard 1/2 & python benchmarks/ablation.py --shard 2/2"),
    ("plan_overlap", "How much the conflict penalty changes the plan (channels kept in common with task_taylor)",
     "python benchmarks/plan_overlap.py"),
    ("conflict", "The conflict penalty where tasks conflict: two tasks through a one-number bottleneck, five seeds",
     "python benchmarks/conflict.py"),
    ("within", "How far the driving teacher can be pruned with every metric within a limit (prune_within)",
     "python benchmarks/within.py"),
    ("within_seed1", "The same search on a second seed (other scoring batches and fine-tune order)",
     "python benchmarks/within.py --seed 1"),
    ("within_val300", "The search with each recovery's step chosen on 300 validation scenes (prune_within(validate=))",
     "python benchmarks/within.py --validate-images 300"),
    ("within_seed1_val300", "The same, on the second seed",
     "python benchmarks/within.py --seed 1 --validate-images 300"),
    ("within_steps1200", "The search with recoveries twice as long (1200 steps)",
     "python benchmarks/within.py --recovery-steps 1200"),
    ("within_seed1_steps1200", "Recoveries of 1200 steps, on the second seed",
     "python benchmarks/within.py --seed 1 --recovery-steps 1200"),
    ("within_heads", "The search with the heads' output logits distilled as well as the trunk's features",
     "python benchmarks/within.py --heads"),
    ("within_seed1_heads", "The heads' outputs distilled too, on the second seed",
     "python benchmarks/within.py --seed 1 --heads"),
    ("within_protect-lane_head", "The search with the lane head never narrowed",
     'python benchmarks/within.py --protect "lane_head.*"'),
    ("within_seed1_protect-lane_head", "The lane head never narrowed, on the second seed",
     'python benchmarks/within.py --seed 1 --protect "lane_head.*"'),
    ("within_seed1_lane2", "A task-balanced budget (lane's groups weighted twice), on the second seed",
     "python benchmarks/within.py --seed 1 --task-weights lane=2"),
    ("within_bn0", "The search before PreciseBN (each recovery left the running BatchNorm statistics as they were)",
     "python benchmarks/within.py --bn-batches 0"),
    ("within_seed1_bn0", "Before PreciseBN, on the second seed", "python benchmarks/within.py --seed 1 --bn-batches 0"),
    ("recovery_drift", "What the recovery fine-tune alone does to the unpruned teacher",
     "python benchmarks/recovery_drift.py && python benchmarks/recovery_drift.py --lrs 1e-3 --seeds 0 && "
     "python benchmarks/recovery_drift.py --lrs 1e-3 --alphas 10 && "
     "python benchmarks/recovery_drift.py --lrs 1e-3 --heads "
     "&& python benchmarks/recovery_drift.py --lrs 1e-3 --seeds 1,0 --bn-batches 100"),
    ("teacher_s_curve", "The driving teacher's validation curve while it was trained",
     "python examples/driving/train_teacher.py ... --curve benchmarks/results/teacher_s_curve.json "
     "&& python benchmarks/teacher_curve.py"),
    ("latency", "Speed on this CPU: plain torch-pruning, the params target and the latency target",
     "python benchmarks/latency.py --latency-ratios 0.2,0.3,0.4,0.5 --repeats 15"),
    ("latency_tasks", "What the speed targets cost in task metrics, at the same size or speed and the same fine-tune",
     "python benchmarks/latency_tasks.py --latency-ratio 0.25"),
    ("latency_2threads/latency", "Speed with two threads (unstable on this shared 2-vCPU machine; see docs/latency.md)",
     "python benchmarks/latency.py --models driving --threads 2 --latency-ratios 0.3,0.5 --repeats 15 "
     "--out benchmarks/results/latency_2threads"),
    ("overhead_resnet50_three_head", "Time of prune() against plain torch-pruning (ResNet-50-sized, 384x640)",
     "OMP_NUM_THREADS=1 python benchmarks/overhead.py --model resnet50_three_head --batches 8 --batch-size 1 "
     "--repeats 3 "
     "--ratio 0.5"),
    ("overhead_tiny_driving", "Time of prune() against plain torch-pruning (tiny model)",
     "OMP_NUM_THREADS=1 python benchmarks/overhead.py --model tiny_driving --repeats 5"),
    ("resources_zoo", "Time and peak memory of prune() against plain torch-pruning, every zoo model",
     "python benchmarks/resources.py --repeats 3 --timeout 180 --memory-cap-gb 6 --name zoo"),
    ("resources_large", "Time and peak memory on full-size detectors (FCOS ResNet-50 FPN, YOLO11n-seg)",
     "python benchmarks/resources.py --large fcos_resnet50_fpn yolo11n_seg --repeats 3 --timeout 240 "
     "--memory-cap-gb 8 --bisection-steps 10 --name large"),
    ("zoo", "Lookalikes of public models pruned with no ignore list", "python benchmarks/zoo.py"),
    ("driving_sizes", "The reference driving model's sizes", "python benchmarks/driving_sizes.py --threads 1"),
]

# besides the speed excerpt, the README shows these (docs/benchmarks.md shows all)
README_SECTIONS = ("evidence", "frontier", "frontier_2threads/frontier", "conflict", "within_heldout",
                   "within_evidence_seed0", "within_evidence_seed1", "within_evidence_seed0_progress",
                   "within_evidence_seed1_progress", "overhead_resnet50_three_head", "resources_large")


def section(pattern: str, title: str, command: str) -> str | None:
    found = sorted(RESULTS.glob(f"{pattern}.md"))
    if not found:
        return None
    body = found[-1].read_text().strip()
    body = re.sub(r"^# .*\n+", "", body)  # the file's own title gives way to ours
    body = re.sub(r"^## ", "#### ", body, flags=re.MULTILINE)
    return f"### {title}\n\n`{command}`\n\n{body}\n"


def headline() -> str:
    """The README's short version: the README_SECTIONS (with their pictures) in SECTIONS' order and the speed at
    ~40% fewer parameters; the earlier same-scenes ablation is in docs/benchmarks.md only."""
    parts = []
    speed = speed_summary()
    for pattern, title, command in SECTIONS:
        if pattern == "latency" and speed:
            parts.append(f"### {title} (excerpt)\n\n`{command}`\n\n{speed}")
        if pattern not in README_SECTIONS:
            continue
        text = section(pattern, title, command)
        if text and pattern in PICTURES and (RESULTS / PICTURES[pattern]).exists():
            text += f"\n![{title}](benchmarks/results/{PICTURES[pattern]})\n"
        if text:
            parts.append(text)
    return "\n".join(parts) + "\nAll results: [docs/benchmarks.md](docs/benchmarks.md).\n"


def speed_summary() -> str | None:
    """From latency.json: plain torch-pruning and the params target at 40% fewer parameters, and the latency
    target at ratio 0.5, per model."""
    path = RESULTS / "latency.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    wanted = ("torch-pruning@0.4", "torch-pruning global/8@0.4", "torch-pruning global/16@0.4", "params/none@0.4",
              "params/16@0.4", "params/auto@0.4", "latency/auto@0.5")
    lines = [f"{report['threads']} thread(s), batch 1, eager; speedup against the dense model in one interleaved "
             "run.", "", "| model | variant | params cut | MACs cut | speedup |", "|---|---|---|---|---|"]
    verdicts = []
    for result in report["results"]:
        model = f"{result['model']} {result['input'][2]}x{result['input'][3]}"
        for row in result["rows"]:
            if row["variant"] in wanted:
                lines.append(f"| {model} | {row['variant']} | {row['params_cut']:.1%} | {row['macs_cut']:.1%} | "
                             f"{row['speedup']:.2f}x |")
                model = ""
        verdicts.append(versus_torch_pruning(result))
    return "\n".join(lines + [""] + [v for v in verdicts if v]) + "\n"


def versus_torch_pruning(result: dict) -> str | None:
    """One measured sentence per model: the fastest torch-pruning configuration at ~40% fewer parameters against
    the fastest params-target configuration at the same cut; "as fast" when within 3% (two measurements of one
    network differ by that much here)."""
    at40 = [r for r in result["rows"] if r["variant"].endswith("@0.4")]
    plain = [r for r in at40 if r["variant"].startswith("torch-pruning")]
    ours = [r for r in at40 if r["variant"].startswith("params/")]
    if not plain or not ours:
        return None
    best_plain = max(plain, key=lambda r: r["speedup"])
    best_ours = max(ours, key=lambda r: r["speedup"])
    ratio = best_ours["speedup"] / best_plain["speedup"]
    plain_text = f"`{best_plain['variant']}` ({best_plain['speedup']:.2f}x)"
    ours_text = f"`{best_ours['variant']}` ({best_ours['speedup']:.2f}x)"
    if 1 / 1.03 < ratio < 1.03:
        verdict = f"{plain_text}, is as fast as the params target's fastest, {ours_text}"
    elif ratio >= 1.03:
        verdict = f"{plain_text}; the params target's fastest, {ours_text}, is {ratio:.2f}x faster"
    else:
        verdict = f"{plain_text}, is {1 / ratio:.2f}x faster than the params target's fastest, {ours_text}"
    return f"- {result['model']}: at ~40% fewer parameters the fastest torch-pruning configuration, {verdict}."


PICTURES = {"frontier": "frontier.png", "within_evidence_seed0": "within_evidence_seed0.png",
            "ablation": "ablation.png", "within": "within.png", "within_bn0": "within_bn0.png",
            "teacher_s_curve": "teacher_s_curve.png"}


def main() -> None:
    sections = []
    for pattern, title, command in SECTIONS:
        text = section(pattern, title, command)
        if text and pattern in PICTURES and (RESULTS / PICTURES[pattern]).exists():
            text += f"\n![{title}](../benchmarks/results/{PICTURES[pattern]})\n"
        if text:
            sections.append(text)
    intro = ("# Benchmarks\n\nMeasured on the project's machine (2-core x86_64 CPU, no GPU, shared with other "
             "jobs, so timings are ratios taken within one run). Regenerate this page with "
             "`python benchmarks/summarize.py` after running the commands below.\n\n")
    write_text(ROOT / "docs" / "benchmarks.md", intro + "\n".join(sections))
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
    before, rest = readme.split(start)
    _, after = rest.split(end)
    write_text(ROOT / "README.md", before + start + "\n" + headline() + end + after)
    print(f"wrote docs/benchmarks.md ({len(sections)} sections) and the README's benchmark section")


if __name__ == "__main__":
    main()
