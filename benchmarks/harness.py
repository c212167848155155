"""What every benchmark script shares: where results go, writing them atomically (JSON and markdown),
skipping finished runs, claiming a run so two processes never do the same one, and a record of the code,
machine and load behind a number.

    from harness import RESULTS, machine, write_results
    write_results(RESULTS, "zoo", record, markdown(record))     # results/zoo.json and results/zoo.md
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

__all__ = ["RESULTS", "ROOT", "claim", "done", "machine", "print_markdown", "uptime", "write_atomically",
           "write_json", "write_results", "write_text"]


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(partial_path)` and rename the partial file onto `path`: a reader (or a second shard
    gathering at once) sees the old file or the new one, never half of one. The folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    write_atomically(path, lambda partial: partial.write_text(text))


def write_json(path: Path, record: Any, indent: int = 1) -> None:
    """Write `record` as indented JSON ending in a newline, atomically."""
    write_text(path, json.dumps(record, indent=indent) + "\n")


def write_results(folder: Path, stem: str, record: Any, markdown: str, indent: int = 1) -> None:
    """A benchmark's result: `folder/stem.json` holding `record` and `folder/stem.md` holding `markdown`."""
    write_json(folder / f"{stem}.json", record, indent)
    write_text(folder / f"{stem}.md", markdown)


def done(path: Path, settings: dict) -> bool:
    """Whether `path` holds a finished run made with `settings` (compared as JSON)."""
    if not path.exists():
        return False
    return json.loads(path.read_text())["settings"] == json.loads(json.dumps(settings))


def claim(path: Path) -> bool:
    """Take a run for this process: True when its claim file was made here, or left by a process that is gone
    (a session's end); False while another living process of the same script holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            with open(path, "x") as handle:
                handle.write(f"{os.getpid()} {Path(sys.argv[0]).name}")
            return True
        except FileExistsError:
            owner, _, script = path.read_text().partition(" ")
            pid = int(owner) if owner.isdigit() else 0
            if pid == os.getpid():
                return True
            if _alive(pid, script or "python"):
                return False
            path.unlink(missing_ok=True)
    return False


def _alive(pid: int, script: str) -> bool:
    try:
        return script in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def uptime() -> str:
    """The machine's load as `uptime` prints it, written beside timings so a reader can judge them."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def machine() -> dict[str, Any]:
    """The code and machine behind a number: commit, CPU, cores, torch, threads and the load average now."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    from taskprune.latency.cache import cpu_name

    return {"commit": commit, "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "load": os.getloadavg()[0]}


def print_markdown(text: str, width: int = 160) -> None:
    """Show a result's markdown on the terminal (rich only prints; the files are plain markdown)."""
    from rich.console import Console
    from rich.markdown import Markdown

    Console(width=width).print(Markdown(text))
