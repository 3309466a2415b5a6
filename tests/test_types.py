"""The type checker over every package (settings in pyproject.toml's [tool.mypy]): CI fails on any error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_passes_over_the_packages():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (it is in the dev extra)")
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(REPO_ROOT / ".mypy_cache")],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
