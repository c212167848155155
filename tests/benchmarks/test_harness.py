"""benchmarks/harness.py: the one place results are written, and the shape of the benchmarks folder around it
(one spelling of the results path, no import cycles between scripts, nothing private taken from taskprune)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import harness  # noqa: E402

BENCHMARKS = Path(harness.__file__).resolve().parent
SCRIPTS = {path.stem: path for path in sorted(BENCHMARKS.glob("*.py"))}


def test_results_are_a_json_and_a_markdown_file_and_no_partial_is_left(tmp_path):
    record = {"settings": {"ratio": 0.3}, "rows": [1, 2]}
    harness.write_results(tmp_path / "out", "zoo", record, "| a |\n")
    assert json.loads((tmp_path / "out" / "zoo.json").read_text()) == record
    assert (tmp_path / "out" / "zoo.json").read_text() == json.dumps(record, indent=1) + "\n"
    assert (tmp_path / "out" / "zoo.md").read_text() == "| a |\n"
    harness.write_results(tmp_path / "out", "zoo", record, "", indent=2)
    assert (tmp_path / "out" / "zoo.json").read_text() == json.dumps(record, indent=2) + "\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["zoo.json", "zoo.md"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "plot.png"
    path.write_text("old")

    def fails(partial: Path) -> None:
        partial.write_text("half")
        raise RuntimeError("plotting failed")

    try:
        harness.write_atomically(path, fails)
    except RuntimeError:
        pass
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_done_compares_settings_as_json(tmp_path):
    path = tmp_path / "run.json"
    assert not harness.done(path, {"size": (1, 2)})
    harness.write_json(path, {"settings": {"size": [1, 2]}, "rows": []})
    assert harness.done(path, {"size": (1, 2)})  # a tuple reads back as a list
    assert not harness.done(path, {"size": (1, 3)})


def test_the_machine_record_names_the_load_and_the_code():
    record = harness.machine()
    assert {"commit", "cpu", "cores", "torch", "threads", "load"} <= set(record)
    assert "load average" in harness.uptime()


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_scripts_import_each_other_without_a_cycle():
    edges = {name: {i.split(".")[0] for i in _imports(path)} & set(SCRIPTS) - {name}
             for name, path in SCRIPTS.items()}

    def cycle_from(name: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        if name in path:
            return path[path.index(name):] + (name,)
        return next((c for d in sorted(edges[name]) if (c := cycle_from(d, (*path, name)))), None)

    cycles = [c for name in SCRIPTS if (c := cycle_from(name, ()))]
    assert not cycles, " -> ".join(cycles[0])


def test_no_script_takes_a_private_name_of_taskprune():
    private = {name: [i for i in _imports(path) if i.startswith("taskprune") and any(
        part.startswith("_") for part in i.split("."))] for name, path in SCRIPTS.items()}
    assert not {name: found for name, found in private.items() if found}


def _results_paths(path: Path) -> list[str]:
    """Where a script builds the results folder itself: `... / "results"`, or a "benchmarks/results..."
    path."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        joined = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
        if joined and isinstance(node.right, ast.Constant) and node.right.value == "results":
            found.append(ast.unparse(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("benchmarks/results") and " " not in node.value:  # a path, not a link
            found.append(node.value)
    return found


def test_the_results_folder_is_spelled_only_in_the_harness():
    spelled = {name: found for name, path in SCRIPTS.items()
               if name != "harness" and (found := _results_paths(path))}
    assert not spelled
    assert _results_paths(BENCHMARKS / "harness.py") == ["ROOT / 'benchmarks' / 'results'"]
