"""What the command's tests share: a user's modules to import by name, and the one-line error a user sees."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def user_modules(tmp_path, monkeypatch) -> Iterator[Callable[..., Path]]:
    """`user_modules(name=source, ...)` writes each module into a fresh folder that is the working directory
    and first on sys.path, as a user's own code is when they run the command; the modules are forgotten
    afterwards."""
    written: list[str] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(**sources: str) -> Path:
        for name, source in sources.items():
            (tmp_path / f"{name}.py").write_text(source)
            written.append(name)
        return tmp_path

    yield write
    for name in written:
        sys.modules.pop(name, None)


@pytest.fixture
def one_line_error(capsys) -> Callable[[], str]:
    """Read what the command wrote to stderr, checking it is one line and no traceback."""
    def read() -> str:
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    return read
