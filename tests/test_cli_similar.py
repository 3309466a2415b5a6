"""`vestis search --like PHOTO` and `--garment REF`: the answer of /search/similar, as a table or JSON."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from PIL import Image
from typer.testing import CliRunner

import search_api.results as results
from indexer.query_parser import QueryParser
from search_api import similar
from tests.indexer.test_search import black_jacket_blue_jeans, frames
from tests.indexer.test_similar import embedded
from tests.search_api.test_similar import settings as similar_settings  # noqa: F401 (the fixture)
from vestis import cli

runner = CliRunner()


@pytest.fixture(autouse=True)
def plain_console_and_parser(monkeypatch, plain_cli):
    monkeypatch.setattr(results, "build_parser", lambda settings: (QueryParser(), None))


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_like_a_photo(similar_settings, tmp_path, monkeypatch):  # noqa: F811
    shown = embedded(frames("upload", [0.0], black_jacket_blue_jeans()), [2, 3])[0]
    monkeypatch.setattr(similar.PhotoDescriber, "describe", lambda self, rgb: shown)
    photo = tmp_path / "look.png"
    Image.new("RGB", (40, 40), (10, 10, 10)).save(photo)
    code, out = invoke("search", "--like", str(photo), "--data-dir", str(similar_settings.data_dir), "--json")
    assert code == 0, out
    answer = json.loads(out)
    assert {v["name"] for v in answer["videos"]} >= {"street.mp4", "park.mp4"}
    code, out = invoke("search", "dress", "--like", str(photo), "--data-dir", str(similar_settings.data_dir))
    assert code == 0, out
    assert "catwalk.mp4" in out and "street.mp4" not in out


def test_like_a_file_that_is_no_photo(similar_settings, tmp_path):  # noqa: F811
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not a photo")
    code, out = invoke("search", "--like", str(bogus), "--data-dir", str(similar_settings.data_dir))
    assert code == 2 and "not a JPEG, PNG or WebP" in out


def test_garment_reference_and_bad_combinations(similar_settings):  # noqa: F811
    data = str(similar_settings.data_dir)
    code, out = invoke("search", "--garment", "street-000001000/0/0", "--data-dir", data)
    assert code == 0 and "park.mp4" in out, out
    code, out = invoke("search", "--garment", "nope/0/0", "--data-dir", data)
    assert code == 2 and "no visible moment or frame" in out
    code, out = invoke("search", "--garment", "street-000001000/0/0", "--like", __file__, "--data-dir", data)
    assert code == 2 and "not both" in out
