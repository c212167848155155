"""Ultralytics tests: offline before Ultralytics is imported, a guard that fails any test touching the network,
and tiny datasets of driving scenes written once per session in Ultralytics' format (helpers: yolo_fixtures)."""

from __future__ import annotations

import importlib.util
import os
import socket
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Ultralytics reads these when it is imported: no online check, no pip installs, settings in a private folder.
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "0"
os.environ["YOLO_VERBOSE"] = "0"
os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="taskprune-ultralytics-")

def _local(address: Any) -> bool:
    if not isinstance(address, tuple):  # a Unix socket path
        return True
    return str(address[0]).startswith("127.") or address[0] in ("::1", "localhost")


def _caller() -> str:
    """The innermost frame outside the standard library and this guard: who asked for the network."""
    frames = [f for f in traceback.extract_stack()[:-2] if "site-packages" in f.filename or "/taskprune/" in
              f.filename]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any lookup or connection to another host is refused and fails the test (Ultralytics catches the error and
    carries on, so refusing alone would not show it)."""
    attempts: list[str] = []
    connect, lookup = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if not _local(address):
            attempts.append(f"connect {address} from {_caller()}")
            raise OSError("network disabled in tests")
        return connect(self, address)

    def guarded_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost") and not str(host).startswith("127."):
            attempts.append(f"lookup {host} from {_caller()}")
            raise socket.gaierror("network disabled in tests")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
    yield attempts
    assert not attempts, f"the test tried to reach the network: {attempts}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Where Ultralytics is not installed its tests are skipped, saying how to run them (CI runs them in their own
    venv, and deselects them with -m "not ultralytics" in the main one)."""
    if importlib.util.find_spec("ultralytics") is not None:
        return
    skip = pytest.mark.skip(reason="needs pip install taskprune[ultralytics] (see .ci/run)")
    for item in items:
        if "ultralytics" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tpu() -> Any:
    """taskprune.integrations.ultralytics, imported after the offline settings above."""
    from taskprune.integrations import ultralytics

    return ultralytics


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """task -> data YAML of 8 training and 4 validation scenes at IMGSZ."""
    from yolo_fixtures import IMGSZ

    from taskprune.integrations import ultralytics as tpu

    tpu.offline_fonts()  # before any dataset check asks for a font
    root = tmp_path_factory.mktemp("scenes")
    return {task: tpu.write_driving_dataset(root / task, task=task, train=8, val=4, size=(IMGSZ, IMGSZ))
            for task in ("detect", "segment", "pose", "obb")}
