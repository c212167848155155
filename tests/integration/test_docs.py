"""Every example in README.md, docs/*.md and examples/ runs, so that none can rot.

- Fenced ```python blocks run in page order in one namespace per page (a block may use what an earlier one
  defined), seeded by `tests/docs_fixtures.py` with tiny stand-ins for the names a page uses without defining
  them.
- Fenced ```bash blocks run as subprocesses: a block's consecutive `taskprune ...` commands in one Python
  process (each a call of `taskprune.cli.main`, what `python -m taskprune` runs), and
  `python examples/<script> ...` with this interpreter; `> FILE` after a command writes its output to FILE.
  Any other command fails the test, and so does a block that sets up an environment (venv, pip): such blocks
  must be marked.
- A page's blocks share one temporary working directory, so a later block can read what an earlier one wrote.
- The line just before a block may be an HTML comment that tells this test what to do instead:
    `<!-- doc-test: skip: REASON -->`  do not run the block (setting up environments, needing torchrun, ...);
    `<!-- doc-test: COMMAND -->`       run COMMAND (commands joined by ` && `) instead of a slow bash block;
    `<!-- doc-test: file NAME -->`     also write the python block to NAME in the working directory (a module
                                       that a later `taskprune ... MODULE:FACTORY` command imports).
- Every script in examples/ runs with `--quick`, or with the tiny arguments listed in EXAMPLE_ARGS; when a doc
  block already ran the same command, the examples test takes that run.

Each block is its own case, `<page>:<block number>:<language>`, so a failure names the page and the block.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from docs_fixtures import namespace

import taskprune
from taskprune.criteria import unregister_criterion
from taskprune.layers import unregister_layer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGUAGES = {"python", "bash"}
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
SETUP_COMMANDS = ("python3 -m venv", "python -m venv", "pip ", ". .venv", "source ")
TIMEOUT = 600

# Scripts without --quick and the tiny invocation CI runs instead, in a temporary directory (docs/driving.md
# runs the same commands, so the examples test reuses those runs).
EXAMPLE_ARGS: dict[str, list[str]] = {
    "driving/train_teacher.py": ["--size", "n", "--image-size", "64", "96", "--train-images", "16",
                                 "--val-images", "8", "--epochs", "1", "--batch-size", "8", "--workers", "0",
                                 "--out", "teacher.pt", "--run-dir", "run", "--no-progress"],
    "driving/draw_samples.py": ["--out", "samples.png", "--rows", "1", "--cols", "1", "--size", "64", "96"],
}

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<text>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    number: int  # 1-based among the page's python and bash blocks
    language: str
    code: str
    line: int  # of the first code line in the page
    directive: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.number}:{self.language}"


def read_blocks(page: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """The page's python and bash blocks, and (line, first line) of its other fenced blocks."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    others: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language = match["fence"], match["info"].strip().split(" ")[0].lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), len(lines))
        code = "\n".join(line[len(match["indent"]):] for line in lines[i + 1:end])
        before = _DIRECTIVE.match(lines[i - 1]) if i else None
        language = "bash" if language in SHELL_LANGUAGES else language
        if language in RUN_LANGUAGES:
            directive = before["text"] if before else None
            blocks.append(Block(page, len(blocks) + 1, language, code, i + 2, directive))
        else:
            others.append((i + 1, code.strip().splitlines()[0] if code.strip() else ""))
        i = end + 1
    return blocks, others


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)[0]]


# -- running a page ------------------------------------------------------------------------------------------
@dataclass
class PageRun:
    """The state of one page's run: its namespace, its working directory and how far it got."""

    workdir: Path
    names: dict[str, Any]
    done: int = 0
    failures: dict[int, str] = field(default_factory=dict)


_PAGES: dict[Path, PageRun] = {}


def page_run(page: Path, tmp_path_factory: pytest.TempPathFactory) -> PageRun:
    if page not in _PAGES:
        workdir = tmp_path_factory.mktemp(page.stem)
        _PAGES[page] = PageRun(workdir, namespace(workdir))
    return _PAGES[page]


def run_block(block: Block, run: PageRun) -> None:
    directive = block.directive or ""
    if directive.startswith("skip:"):
        return
    previous = Path.cwd()
    os.chdir(run.workdir)
    # as in a Python session started there, modules written in the working directory are importable
    sys.path.insert(0, str(run.workdir))
    try:
        if block.language == "python":
            if directive and not directive.startswith("file "):
                pytest.fail(f"{block.id}: a python block takes `skip: REASON` or `file NAME`, "
                            f"not `{directive}`")
            if directive.startswith("file "):
                (run.workdir / directive.removeprefix("file ").strip()).write_text(block.code + "\n")
            registered = set(taskprune.list_criteria())
            layer_kinds = set(taskprune.list_layer_kinds())
            try:  # blank lines first, so a traceback gives the line in the page
                exec(compile("\n" * (block.line - 1) + block.code, str(block.page), "exec"), run.names)
            finally:  # the registries other tests see stay as they were
                for name in set(taskprune.list_criteria()) - registered:
                    unregister_criterion(name)
                for name in set(taskprune.list_layer_kinds()) - layer_kinds:
                    unregister_layer(name)
        else:
            run_bash(block, run.workdir)
    finally:
        os.chdir(previous)
        sys.path.remove(str(run.workdir))
        here = str(run.workdir)
        written = [n for n, m in sys.modules.items() if str(getattr(m, "__file__", "")).startswith(here)]
        for name in written:  # another page may write a module of the same name
            del sys.modules[name]


# Blocks marked `skip: REASON` (setting up a virtual environment, needing torchrun) are not test cases;
# test_skips_give_a_reason holds each to a reason.
RUN_BLOCKS = [b for b in ALL_BLOCKS if not (b.directive or "").startswith("skip:")]


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_block(block: Block, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = page_run(block.page, tmp_path_factory)
    page_blocks = [b for b in ALL_BLOCKS if b.page == block.page]
    for earlier in page_blocks[run.done:block.number - 1]:  # blocks this one may build on, when run alone
        try:
            run_block(earlier, run)
        except Exception as error:
            run.failures[earlier.number] = f"{type(error).__name__}: {error}"
        run.done = earlier.number
    failed = {n: why for n, why in run.failures.items() if n < block.number}
    if failed:
        number, why = next(iter(failed.items()))
        pytest.skip(f"block {number} of this page failed first ({why[:200]})")
    try:
        run_block(block, run)
    except Exception as error:
        run.failures[block.number] = f"{type(error).__name__}: {error}"
        raise
    finally:
        run.done = max(run.done, block.number)


# -- bash ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    argv: list[str]  # as written, e.g. ["taskprune", "prune", ...]
    redirect: str | None  # `> FILE`: where its stdout goes


def bash_commands(block: Block) -> list[Command]:
    """The block's commands; a `<!-- doc-test: COMMAND -->` replaces them."""
    text = block.directive if block.directive else block.code.replace("\\\n", " ")
    commands = []
    for part in (part for row in text.splitlines() for part in row.split(" && ")):
        argv = shlex.split(part, comments=True)
        if not argv:
            continue
        shown = " ".join(argv)
        if shown.startswith(SETUP_COMMANDS):
            pytest.fail(f"{block.id} sets up an environment (`{shown}`): mark it "
                        "<!-- doc-test: skip: REASON --> (CI checks the setup steps itself)")
        example = argv[0] == "python" and len(argv) > 1 and argv[1].startswith("examples/")
        if not (argv[0] == "taskprune" or example):
            pytest.fail(f"{block.id} runs `{shown}`, which this test cannot run: give the command CI runs "
                        "instead (<!-- doc-test: COMMAND -->) or mark the block "
                        "<!-- doc-test: skip: REASON -->")
        redirect = argv[-1] if len(argv) > 2 and argv[-2] == ">" else None
        commands.append(Command(argv[:-2] if redirect else argv, redirect))
    return commands


# The consecutive `taskprune` commands of a block run in one Python process, one `taskprune.cli.main` call
# each (what `python -m taskprune` runs), like commands typed in one shell: starting Python and torch once per
# command would cost seconds each.
_TASKPRUNE_SESSION = """
import contextlib, io, json, sys
from taskprune.cli import main
for argv, redirect in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if redirect else contextlib.nullcontext():
        try:
            status = main(argv)
        except SystemExit as exit:  # argparse's own errors
            status = exit.code
    if redirect:
        with open(redirect, "w") as file:
            file.write(out.getvalue())
    if status:
        sys.exit(f"`taskprune {' '.join(argv)}` exited with status {status}")
"""


def run_bash(block: Block, workdir: Path) -> None:
    commands = bash_commands(block)
    while commands:
        if commands[0].argv[0] == "taskprune":
            session = list(itertools.takewhile(lambda c: c.argv[0] == "taskprune", commands))
            script = json.dumps([[c.argv[1:], c.redirect] for c in session])
            run_command([sys.executable, "-c", _TASKPRUNE_SESSION, script], workdir, block.id)
        else:
            session = commands[:1]
            argv = [sys.executable, str(ROOT / session[0].argv[1]), *session[0].argv[2:]]
            done = _EXAMPLE_RUNS[tuple(argv)] = run_command(argv, workdir, block.id)
            if session[0].redirect:
                (workdir / session[0].redirect).write_text(done.stdout)
        commands = commands[len(session):]


# Runs of example scripts by doc blocks, by argv: the examples test reuses a doc block's run of the same
# command instead of running the script again (a doc block always runs its command: it may need the files it
# writes).
_EXAMPLE_RUNS: dict[tuple[str, ...], subprocess.CompletedProcess[str]] = {}


def run_command(argv: list[str], cwd: Path, where: str) -> subprocess.CompletedProcess[str]:
    """Run one command; a non-zero status fails with the command and the end of its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        shown = " ".join(shlex.quote(a) for a in argv).replace(sys.executable, "python")
        pytest.fail(f"{where}: `{shown}` exited with status {done.returncode}\n"
                    f"--- stdout (end) ---\n{done.stdout[-3000:]}\n"
                    f"--- stderr (end) ---\n{done.stderr[-3000:]}")
    return done


# -- examples ------------------------------------------------------------------------------------------------
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("script", [
    pytest.param(p, marks=[pytest.mark.ultralytics] if "integrations import ultralytics" in p.read_text() else [])
    for p in EXAMPLES], ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_example(script: Path, tmp_path: Path) -> None:
    name = script.relative_to(ROOT / "examples").as_posix()
    if name in EXAMPLE_ARGS:
        args = EXAMPLE_ARGS[name]
    elif '"--quick"' in script.read_text():
        args = ["--quick"]
    else:
        pytest.fail(f"examples/{name} has no --quick: give it one (a run of a few seconds), or list its tiny "
                    "arguments in EXAMPLE_ARGS")
    argv = [sys.executable, str(script), *args]
    if tuple(argv) not in _EXAMPLE_RUNS:  # no doc block ran this command
        run_command(argv, tmp_path, f"examples/{name}")


# -- the rules themselves ------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_commands_are_in_bash_blocks(page: Path) -> None:
    """A command shown in an untagged block would escape this test: commands go in ```bash blocks."""
    _, others = read_blocks(page)
    commands = [(line, first) for line, first in others
                if first.startswith(("taskprune ", "python ", "pip ", "torchrun ", "$ "))]
    assert not commands, f"{page.name}: commands outside ```bash blocks at lines {commands}"


def test_skips_give_a_reason() -> None:
    bare = [b.id for b in ALL_BLOCKS if (b.directive or "").startswith("skip") and
            len((b.directive or "").removeprefix("skip:").strip()) < 8]
    assert not bare, f"skipped without a reason: {bare}"


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    found, fenced = set(), False
    for line in page.read_text().splitlines():
        fenced = fenced != line.lstrip().startswith("```")
        heading = None if fenced else re.match(r"^#+\s+(.*)", line)
        if heading:
            found.add(re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_links_resolve(page: Path) -> None:
    """Links between pages, and to files of the repository, point at something that exists."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path) if path else page
        if not destination.exists():
            broken.append(target)
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"
