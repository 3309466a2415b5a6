"""The wheel a user installs: built from this checkout, installed into a fresh virtualenv, then `vestis
ingest` and `vestis serve` run from there (not from the source tree) on a real photo.

The fresh venv gets the wheel alone (`--no-deps --no-index`); its dependencies are the ones this test
runs with, reached through a `.pth` line (no network, and no second multi-gigabyte torch install). A
`.pth` line adds a folder to sys.path but runs none of the `.pth` files inside it, so the editable
install of the development venv stays out: every Vestis module must come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools reuses build/ in the source tree, where files since deleted linger.
    source = tmp_path_factory.mktemp("source") / "vestis"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "samples", "vestis-data", ".mypy_cache", "dist"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(out)], check=True, cwd=out, env=clean_env())
    (found,) = out.glob("vestis-*.whl")
    return found


def test_the_wheel_carries_pages_weights_licence_and_extras(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    for needed in ("search_api/static/index.html", "search_api/static/review.js", "vision/weights/garment-heads.pt",
                   "vision/weights/garment-parser-v2.pt", "vision/weights/garment-parser-v2-seed2.pt",
                   "configs/default.yaml",
                   "configs/models/garment-heads.yaml"):
        assert needed in names, f"{needed} missing from {wheel.name}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata
    for extra in ("server", "elasticsearch", "dashboard", "dev"):
        assert f"Provides-Extra: {extra}" in metadata
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not [line for line in core if any(n in line for n in ("fastapi", "uvicorn", "elasticsearch"))], core


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, env=clean_env())
    python = root / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--disable-pip-version-check", str(wheel)], check=True, env=clean_env())
    (purelib,) = Path(subprocess.check_output([str(python), "-c", "import sysconfig;print(sysconfig.get_path('purelib'))"],
                                              text=True).strip()),
    (purelib / "borrowed-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return root


def clean_env() -> dict[str, str]:
    """No VESTIS_* settings and no PYTHONPATH (which may point at the checkout); HOME stays, for the
    model cache (~/.cache/vestis) that `vestis models fetch` filled."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VESTIS_") and k != "PYTHONPATH"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def test_ingest_and_serve_from_the_installed_wheel(venv, tmp_path, shared_data):
    work = tmp_path / "elsewhere"  # not the checkout: nothing may import from the source tree
    work.mkdir()
    shutil.copyfile(shared_data / "ccp" / "images" / "0001.jpg", work / "photo.jpg")
    env = clean_env()
    bin_ = venv / "bin"
    where = subprocess.check_output([str(bin_ / "python"), "-c", "import vestis, vision, search_api; "
                                     "print(vestis.__file__, vision.__file__, search_api.__file__)"],
                                    cwd=work, env=env, text=True).split()
    assert all(path.startswith(str(venv)) for path in where), where
    version = subprocess.run([str(bin_ / "vestis"), "--version"], cwd=work, env=env, capture_output=True, text=True)
    assert version.returncode == 0 and "0.1.0" in version.stdout, version.stdout + version.stderr

    ingest = subprocess.run([str(bin_ / "vestis"), "ingest", "photo.jpg", "--data-dir", "data", "--workers", "1"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=400)
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert "1 done" in ingest.stdout

    port = free_port()
    server = subprocess.Popen([str(bin_ / "vestis"), "serve", "--data-dir", "data", "--port", str(port),
                               "--set", "search.text_model="], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            server.kill()
            pytest.fail(f"vestis serve never answered:\n{server.communicate()[0]}")
        for page, marker in (("/", b"<html"), ("/review", b"<html"), ("/static/app.js", b"function"),
                             ("/docs", b"swagger-ui"), ("/redoc", b"redoc")):
            status, body = get(base + page)
            assert status == 200 and marker in body.lower(), page
        queue = json.loads(get(f"{base}/api/review/queue")[1])
        (item,) = queue["items"]
        frame = json.loads(get(f"{base}/api/review/frames/{item['frame_id']}")[1])
        garments = [g for p in frame["frame"]["persons"] for g in p["garments"]]
        assert garments and all(g["category"]["value"] for g in garments), frame
    finally:
        server.terminate()
        server.wait(timeout=30)
