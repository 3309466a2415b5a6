"""The floors of docs/architecture.md, held by import-linter's contracts in pyproject.toml: no import
runs up the floors, the index knows nothing of torch, the CLI imports no HTTP framework outside serve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_no_import_runs_up_the_floors():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.is_file():
        pytest.skip("import-linter is not installed (it is in the dev extra)")
    done = subprocess.run([str(lint_imports), "--no-cache"], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
