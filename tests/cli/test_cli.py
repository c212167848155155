"""The `taskprune` command: help with examples, inspect / prune / report on a model defined in a user's own file,
one clear line and a non-zero status for bad input, and the demo end to end at a tiny budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from taskprune.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

USER_FUNCTIONS = '''
    def build_with_inputs():
        return build(), torch.randn(1, 3, 32, 32)

    def broken():
        raise RuntimeError("weights not found")

    def tasks():
        import taskprune
        losses = {"det": lambda out, batch: out.pow(2).mean(), "seg": lambda out, batch: out.pow(2).mean()}
        return taskprune.Tasks(losses=losses), [torch.randn(2, 3, 32, 32) for _ in range(2)]
'''


@pytest.fixture
def user_dir(det_seg_module):
    return det_seg_module("user_models", USER_FUNCTIONS, not_importable="import no_such_package_xyz\n")


def test_help_explains_every_command_with_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("demo", "inspect", "prune", "report"):
        assert command in text
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert f"example:\n  taskprune {command}" in capsys.readouterr().out


def test_inspect_prune_report_on_a_users_model(user_dir, capsys):
    assert main(["inspect", "user_models:build", "--input-shape", "1,3,32,32", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert isinstance(found["groups"], list) and found["groups"]
    assert found["protected_outputs"] == ["det", "seg.2"]
    assert {g["layer"] for g in found["groups"]} >= {"trunk.0", "trunk.3", "seg.0"}
    assert main(["inspect", "user_models:build_with_inputs", "--plot", "groups.png"]) == 0
    assert (user_dir / "groups.png").stat().st_size > 0
    capsys.readouterr()

    assert main(["prune", "user_models:build", "--input-shape", "1,3,32,32", "--ratio", "0.3", "--round-to",
                 "none", "--out", "pruned.pt", "--json"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert abs(pruned["reached"] - 0.3) <= 0.01
    assert main(["report", "pruned.pt", "--json", "--plot", "kept.png"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored["params_before"] == pruned["params_before"] and stored["params_after"] == pruned["params_after"]
    assert [g["after"] for g in stored["groups"]] == [g["after"] for g in pruned["groups"]]
    assert (user_dir / "kept.png").stat().st_size > 0


def test_prune_with_a_tasks_hook_uses_gradient_criteria(user_dir, capsys):
    assert main(["prune", "user_models:build", "--input-shape", "1,3,32,32", "--ratio", "0.3", "--importance",
                 "conflict_taylor", "--tasks", "user_models:tasks", "--round-to", "none", "--out", "p.pt",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["criterion"] == "conflict_taylor"


@pytest.mark.parametrize(("argv", "message"), [
    (["inspect", "not_importable:build", "--input-shape", "1,3,32,32"], "cannot import module 'not_importable'"),
    (["inspect", "user_models:nothing", "--input-shape", "1,3,32,32"], "has no function 'nothing'"),
    (["inspect", "user_models:broken", "--input-shape", "1,3,32,32"], "broken() raised RuntimeError"),
    (["inspect", "user_models:build", "--input-shape", "1,3,x"], "--input-shape must be"),
    (["inspect", "user_models", "--input-shape", "1,3,32,32"], "expected MODULE:FACTORY"),
    (["prune", "user_models:build", "--input-shape", "1,3,32,32", "--ratio", "1.5", "--out", "p.pt"],
     "ratio must be a number with 0 < ratio < 1"),
    (["prune", "user_models:build", "--input-shape", "1,5,32,32", "--ratio", "0.3", "--out", "p.pt"],
     "the model on --input-shape 1,5,32,32 fails in layer 'trunk.0'"),
    (["report", "missing.pt"], "missing.pt"),
])
def test_bad_input_is_one_line_and_a_nonzero_status(user_dir, one_line_error, argv, message):
    assert main(argv) != 0
    assert message in one_line_error()


def test_debug_shows_the_traceback(user_dir, capsys):
    assert main(["inspect", "user_models:broken", "--input-shape", "1,3,32,32", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: weights not found" in err


@pytest.mark.slow
def test_the_installed_command_runs_the_demo_at_a_tiny_budget(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "taskprune", "demo", "--quick", "--steps", "2", "--out", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert "pruned + distilled" in finished.stdout
    assert "bit-identical to the teacher's" in finished.stdout and "prune_within returned" in finished.stdout
    rows = json.loads((out / "demo.json").read_text())["rows"]
    assert set(rows) == {"teacher", "pruned", "pruned + distilled"}
    assert rows["pruned"]["params"] < rows["teacher"]["params"]
    for name in ("report.json", "report.md", "demo.md", "student.pt", "channels.png", "metrics.png", "within.json",
                 "within.png"):
        assert (out / name).stat().st_size > 0
