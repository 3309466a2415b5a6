"""`vestis search`: the same answer as the API's /search, as a table or as its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import search_api.results as results
from indexer.query_parser import QueryParser
from tests.indexer.test_search import frame_id
from tests.search_api.test_app import build_scene
from vestis import cli

runner = CliRunner()


@pytest.fixture(autouse=True)
def plain_console_and_parser(monkeypatch, plain_cli):
    # exact words and synonyms, as in the API tests: no text model to load on this busy machine
    monkeypatch.setattr(results, "build_parser", lambda settings: (QueryParser(), None))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(build_scene(tmp_path_factory.mktemp("cli")).data_dir)


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_search_prints_the_moment(data_dir):
    code, out = invoke("search", "red striped dress", "--data-dir", data_dir)
    assert code == 0, out
    assert "Understood as: red striped dress" in out
    [row] = [line for line in out.splitlines() if "catwalk.mp4" in line]
    assert "0.0-4.0 s" in row and "/media/catwalk/stream#t=0" in row
    assert "dress: color=red" in row and "pattern=striped" in row
    assert "1 moment(s)" in out


def test_search_json_is_the_api_answer(data_dir):
    code, out = invoke("search", "dress", "--data-dir", data_dir, "--json", "--limit", "1")
    assert code == 0, out
    answer = json.loads(out)
    assert answer["total"] == 2 and answer["next_cursor"]
    [video] = answer["videos"]
    [moment] = video["moments"]
    assert (video["media_id"], moment["start"], moment["end"]) == ("catwalk", 0.0, 4.0)
    assert moment["best_frame_id"] == frame_id("catwalk", 2.0)


def test_search_filters_and_empty_answers(data_dir):
    code, out = invoke("search", "", "--data-dir", data_dir, "--media", "street", "--json")
    assert code == 0 and {v["media_id"] for v in json.loads(out)["videos"]} == {"street"}
    code, out = invoke("search", "green skirt", "--data-dir", data_dir)
    assert code == 0 and "no moments match" in out


def test_missing_text_model_is_noted(data_dir, monkeypatch):
    monkeypatch.setattr(results, "build_parser", lambda settings: (QueryParser(), "the text model's files are missing"))
    code, out = invoke("search", "red dress", "--data-dir", data_dir)
    assert code == 0 and "note: the text model's files are missing" in out


def test_reindex_rebuilds_the_moments_and_search_answers_the_same(data_dir):
    code, before = invoke("search", "dress", "--data-dir", data_dir, "--json")
    assert code == 0
    code, out = invoke("reindex", "--data-dir", data_dir)
    assert code == 0 and "rebuilt the moments of 2 media file(s)" in out
    code, after = invoke("search", "dress", "--data-dir", data_dir, "--json")
    assert json.loads(after) == json.loads(before)


def test_search_without_a_text_model_imports_neither_torch_nor_fastapi(data_dir):
    # A fresh interpreter: this test process has long imported both.
    script = (
        "import sys\n"
        "from vestis import cli\n"
        "try:\n"
        f"    cli.app(['search', 'red striped dress', '--data-dir', {data_dir!r}, '--set', 'search.text_model='])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('loaded:', sorted(m for m in ('torch', 'fastapi', 'starlette') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert "Understood as: red striped dress" in done.stdout
    assert "loaded: []" in done.stdout
