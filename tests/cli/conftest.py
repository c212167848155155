"""What the command's tests share: a user's modules to import by name (one holding a two-task toy model), and the
one-line error a user sees."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DET_SEG = textwrap.dedent('''
    import torch
    from torch import nn

    class DetSeg(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                       nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
            self.det = nn.Conv2d(32, 6, 1)
            self.seg = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 2, 1))

        def forward(self, x):
            features = self.trunk(x)
            return {"det": self.det(features), "seg": self.seg(features)}

    def build():
        torch.manual_seed(0)
        return DetSeg()
''')


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
def det_seg_module(user_modules) -> Callable[..., Path]:
    """`det_seg_module(name, functions, **other_modules)` writes, as `user_modules` does, module `name`: a
    two-task toy model (`DetSeg`, whose output is a dict of "det" and "seg"), its seeded factory `build()`, and
    then `functions`, the source of the other factories a test names on the command line."""
    def write(name: str, functions: str, **other_modules: str) -> Path:
        return user_modules(**{name: DET_SEG + textwrap.dedent(functions)}, **other_modules)

    return write


@pytest.fixture
def one_line_error(capsys) -> Callable[[], str]:
    """Read what the command wrote to stderr, checking it is one line and no traceback."""
    def read() -> str:
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    return read
