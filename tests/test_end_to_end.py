"""Ingest real video with the real vision stages, then search it: what is visibly there comes first,
what is absent comes back empty, and the Elasticsearch backend answers as the embedded store does.

Two clips of the shared sample video (people walk in one at a time, seen by eye): 0-45 s holds a
woman in a grey cardigan (about 7-19 s) and a man in a black jacket (about 23-44 s, seen from behind:
a stand-up collar, no hood, a shirt's collar showing under it; until 2026-12-03 this said "hoodie",
which the frames do not show); 120-139 s holds a man in a grey shirt and jeans.
"""

from __future__ import annotations

import json
import subprocess

import imageio_ffmpeg
import pytest
from typer.testing import CliRunner

import search_api.results as results
from indexer.embedded import EmbeddedStore
from indexer.search import SearchRequest
from indexer.query_parser import QueryParser
from vestis import cli

pytestmark = pytest.mark.timeout(600)

runner = CliRunner()
PARSER = QueryParser()


def cut(source, target, start: float, seconds: float) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-ss", str(start), "-t", str(seconds), "-i",
                    str(source), "-an", "-c:v", "libx264", "-preset", "ultrafast", str(target)], check=True)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, shared_videos):
    folder = tmp_path_factory.mktemp("clips")
    cut(shared_videos / "one-by-one-person-detection.mp4", folder / "arrivals.mp4", 0, 45)
    cut(shared_videos / "one-by-one-person-detection.mp4", folder / "grey-shirt.mp4", 120, 19)
    data_dir = tmp_path_factory.mktemp("data")
    result = runner.invoke(cli.app, ["ingest", str(folder), "--data-dir", str(data_dir), "--workers", "1"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return data_dir


@pytest.fixture(autouse=True)
def word_parser(monkeypatch):
    # vocabulary words and synonyms only: these queries need no text model, and loading it per call is slow
    monkeypatch.setattr(results, "build_parser", lambda settings: (QueryParser(), None))


def search(data_dir, query: str, *options: str) -> dict:
    result = runner.invoke(cli.app, ["search", query, "--data-dir", str(data_dir), "--json", *options],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def first(answer: dict) -> tuple[str, float, float]:
    best = max(((v["name"], m) for v in answer["videos"] for m in v["moments"]), key=lambda vm: vm[1]["score"])
    return best[0], best[1]["start"], best[1]["end"]


@pytest.mark.parametrize(("query", "video", "seen"), [
    ("man in a black jacket", "arrivals.mp4", (23.0, 44.0)),  # the woman in grey is at 7-19 s
    ("grey shirt", "grey-shirt.mp4", (0.0, 19.0)),
])
def test_what_is_there_comes_first(ingested, plain_cli, query, video, seen):
    # The best moment is one of that person's (their track may be split into several moments
    # where a frame's labels differ or they are missed for a moment).
    answer = search(ingested, query)
    name, start, end = first(answer)
    assert name == video and seen[0] - 1 <= start < end <= seen[1] + 1
    assert max(m["score"] for v in answer["videos"] for m in v["moments"]) > 0.2


def scores(answer: dict) -> list[float]:
    return [m["score"] for v in answer["videos"] for m in v["moments"]]


@pytest.mark.parametrize("query", ["red dress", "floral skirt", "yellow coat"])
def test_what_is_absent_finds_nothing_likely(ingested, plain_cli, query):
    # Top labels only: nothing at all. With the labels' alternatives a small chance may remain (a
    # partly seen walker named a black dress with a few red pixels scores 0.03), far below what
    # is there (over 0.2, above).
    assert search(ingested, query, "--strict")["total"] == 0
    assert max(scores(search(ingested, query)), default=0.0) < 0.1


def test_elasticsearch_answers_as_the_embedded_store(ingested, es_client):
    from indexer.elasticsearch import ElasticsearchStore

    embedded = EmbeddedStore(ingested)
    es = ElasticsearchStore(es_client)
    try:
        for media in embedded.list_media():  # the same labels, written through the protocol
            es.begin_run(media)
            es.write_frames(media.run_id, embedded.frames_of(media.media_id))
            es.finish_run(media.media_id, media.run_id, media.frames, media.persons, media.garments, media.seconds)
        for text in ("man in a black jacket", "grey shirt", "black", "jeans without a hat", "", "red dress"):
            request = SearchRequest(query=PARSER.parse(text), limit=50)
            expected, got = embedded.search(request), es.search(request)
            assert got == expected, text
        strict = SearchRequest(query=PARSER.parse("red dress"), limit=50, strict=True)
        assert embedded.search(strict).total == 0 and es.search(strict).total == 0
    finally:
        embedded.close()
