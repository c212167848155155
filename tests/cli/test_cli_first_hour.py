"""The command's small traps found in a user's first hour (#27): a gradient criterion without --tasks names the
option, an --input-shape of the wrong rank is refused before torch reads it as something else, --debug keeps the
exit status, --version, messages that read as English, and the quickstart's count of steps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import taskprune
from taskprune.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FUNCTIONS = '''
    import taskprune

    def build_with_unfit_inputs():
        return build(), torch.randn(1, 5, 32, 32)

    def tasks_with_a_wrong_output():
        picks = {"det": lambda out: out["detection"], "seg": lambda out: out["seg"]}
        losses = {"det": lambda out, batch: out.pow(2).mean(), "seg": lambda out, batch: out.pow(2).mean()}
        return taskprune.Tasks(outputs=picks, losses=losses), [torch.randn(2, 3, 32, 32)]
'''

PACKAGE = Path(taskprune.__file__).parent
DOCS = Path(__file__).parents[2] / "docs"


@pytest.fixture
def models(det_seg_module):
    return det_seg_module("first_hour_models", FUNCTIONS)


def test_a_gradient_criterion_without_tasks_names_the_tasks_option(models, one_line_error):
    assert main(["prune", "first_hour_models:build", "--input-shape", "1,3,32,32", "--ratio", "0.3",
                 "--importance", "conflict_taylor", "--out", "p.pt"]) == 2
    err = one_line_error()
    assert "--importance conflict_taylor" in err and "needs --tasks MODULE:FUNCTION" in err
    assert "tasks=" not in err and "data=" not in err  # the Python advice is no use on the command line
    assert not (models / "p.pt").exists()


@pytest.mark.parametrize("command", ["inspect", "prune"])
@pytest.mark.parametrize("shape", ["1,3,128", "3,32,32", "1,1,3,32,32"])
def test_an_input_shape_of_the_wrong_rank_is_refused_before_torch_reads_it(models, one_line_error, command,
                                                                            shape):
    extra = ["--ratio", "0.3", "--out", "p.pt"] if command == "prune" else []
    assert main([command, "first_hour_models:build", "--input-shape", shape, *extra]) == 2
    err = one_line_error()
    rank = len(shape.split(","))
    assert (f"--input-shape {shape} has {rank} dimensions, but the model's first convolution, 'trunk.0' "
            "(Conv2d, 3 input channels), takes 4: N,C,H,W") in err
    assert "channels instead" not in err  # torch's reading of a 3-D input as one unbatched image


def test_an_input_shape_that_does_not_fit_is_bad_input(models, one_line_error):
    assert main(["inspect", "first_hour_models:build", "--input-shape", "1,5,32,32"]) == 2
    assert "the model on --input-shape 1,5,32,32 fails in layer 'trunk.0' (Conv2d, given input [1, 5, 32, 32])" \
        in one_line_error()


def test_debug_keeps_the_exit_status(models, capsys):
    bad_input = ["prune", "first_hour_models:build", "--input-shape", "1,3,128", "--ratio", "0.3", "--out", "p.pt"]
    failure = ["prune", "first_hour_models:build_with_unfit_inputs", "--ratio", "0.3", "--out", "p.pt"]
    for argv, status in ((bad_input, 2), (failure, 1)):
        assert main(argv) == status
        quiet = capsys.readouterr().err
        assert main([*argv, "--debug"]) == status
        err = capsys.readouterr().err
        assert "Traceback" in err and "Traceback" not in quiet
        assert err.strip().splitlines()[-1] == quiet.strip()  # the same one line, after the traceback


def test_version(capsys):
    with pytest.raises(SystemExit) as finished:
        main(["--version"])
    assert finished.value.code == 0
    assert capsys.readouterr().out.strip() == f"taskprune {taskprune.__version__}"


def test_a_message_about_a_task_reads_as_english(models, one_line_error):
    assert main(["prune", "first_hour_models:build", "--input-shape", "1,3,32,32", "--ratio", "0.3",
                 "--importance", "taylor", "--tasks", "first_hour_models:tasks_with_a_wrong_output",
                 "--out", "p.pt"]) == 2
    err = one_line_error()
    assert "cannot pick the output of task 'det' from the model output" in err and "'det''s" not in err


def test_no_message_puts_a_possessive_after_a_quoted_name():
    """f"task {name!r}'s output" prints task 'det''s output."""
    found = [f"{path.relative_to(PACKAGE)}:{number}" for path in sorted(PACKAGE.rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"!r\}'s\b", line)]
    assert found == []


def test_the_quickstart_counts_the_steps_it_lists():
    text = (DOCS / "quickstart.md").read_text()
    said = re.search(r"goes through the (\w+) steps", text)
    assert said is not None
    the_list = text[said.end():].split("\n\n")[1]  # the paragraph after the sentence
    listed = re.findall(r"^(\d+)\. \*\*", the_list, flags=re.M)
    words = {"three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
    assert words[said.group(1)] == len(listed) == int(listed[-1])
