"""The integrations stay out of `import taskprune`, and a missing Ultralytics names the extra to install."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_taskprune_does_not_import_ultralytics() -> None:
    done = run("import sys, taskprune, taskprune.integrations; print('ultralytics' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_missing_ultralytics_names_the_extra() -> None:
    # sys.modules[name] = None makes the import fail as if the package were not installed
    done = run("import sys; sys.modules['ultralytics'] = None\n"
               "import taskprune.integrations.ultralytics")
    assert done.returncode != 0
    assert "pip install taskprune[ultralytics]" in done.stderr
