"""Smoke test of bench/index_bench.py at a tiny size: the generator gives honest, reproducible frames and
the benchmark completes with a sane report. Never its speed: benchmarks do not fail on speed."""

from __future__ import annotations

import math
import sys

import pytest

from bench import index_bench
from indexer.moments import build_moments
from labels import FrameLabels
from labels.vocabulary import COLORS, GARMENT_CATEGORIES, PATTERNS, SLEEVES

FRAMES = 2_000


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_generator_is_reproducible_and_splits_at_sizes():
    videos = list(index_bench.generate(FRAMES, seed=7, boundaries=(700,)))
    frames = [f for v in videos for f in v.frames]
    assert len(frames) == FRAMES
    assert all(isinstance(f, FrameLabels) for f in frames)
    assert len({f.frame_id for f in frames}) == FRAMES
    # The first 700 frames are whole media, and the same frames as a 700-frame data set.
    small = [f for v in index_bench.generate(700, seed=7) for f in v.frames]
    assert [f.model_dump() for f in small] == [f.model_dump() for f in frames[:700]]
    assert frames[699].media_id != frames[700].media_id
    assert [f.model_dump() for v in index_bench.generate(FRAMES, seed=8) for f in v.frames][:50] != \
        [f.model_dump() for f in frames[:50]]

    persons = [p for f in frames for p in f.persons]
    assert all(len(f.persons) <= 3 for f in frames) and persons
    assert {len(f.persons) for f in frames} >= {0, 1, 2}
    assert all(1 <= len(p.garments) <= 4 for p in persons if p.garments)
    garments = [g for p in persons for g in p.garments]
    # labels keep two alternatives, as the garment stage does, summing to at most 1
    for g in garments[:200]:
        for label in (g.category, g.color):
            assert len(label.alternatives) == 3 and label.alternatives[0].value == label.value
            assert sum(a.probability for a in label.alternatives) <= 1.0 + 1e-9
    assert {g.category.value for g in garments} <= set(GARMENT_CATEGORIES)
    assert {g.color.value for g in garments} <= set(COLORS)
    assert {g.pattern.value for g in garments if g.pattern} <= set(PATTERNS)
    assert {g.sleeve.value for g in garments if g.sleeve} <= set(SLEEVES)
    assert any(f.reason == "shot" for f in frames)
    # Masks decode to the frame's size.
    mask = garments[0].mask
    assert sum(mask.counts) == mask.width * mask.height
    # People persist over frames: moments hold several frames each.
    video = max(videos, key=lambda v: len(v.frames))
    moments = build_moments(video.frames)
    assert 0 < len(moments) < sum(len(f.persons) for f in video.frames) / 2


def test_bench_at_a_tiny_size(tmp_path):
    queries = [q for q in index_bench.QUERIES
               if q.name in ("black", "blue jeans", "(empty query)", "black, 10 media", "black, page 2")]
    report = index_bench.run(sizes=(FRAMES,), backends=("embedded",), queries=queries, warmup=1, repeats=3,
                             min_repeats=3, budget_s=1.0, workdir=tmp_path, log=None)
    embedded = report["backends"]["embedded"]
    assert embedded["status"] == "ok"
    [run] = embedded["runs"]
    index = run["index"]
    assert run["frames"] == index["frames"] == FRAMES
    for key in ("videos", "persons", "garments", "write_frames_per_s", "finish_run_s", "frames_per_s",
                "frames_per_cpu_s", "mean_frame_doc_bytes"):
        assert _positive(index[key]), key
    assert 0 < run["moments"] < FRAMES
    assert _positive(run["disk_bytes"])
    search = run["search"]
    assert [q["name"] for q in search["queries"]] == [q.name for q in queries]
    for q in search["queries"]:
        assert q["runs"] == 3
        assert _positive(q["p50_ms"]) and q["p50_ms"] <= q["p95_ms"] <= q["p99_ms"] <= q["max_ms"]
    by_name = {q["name"]: q for q in search["queries"]}
    assert by_name["(empty query)"]["total"] == run["moments"]
    assert 0 < by_name["black, 10 media"]["total"] <= by_name["black"]["total"]
    assert by_name["black, page 2"]["total"] == by_name["black"]["total"]
    # ranked from the bound lists: a broad query reads about its page, not every matching moment
    assert by_name["black"]["total_exact"] and by_name["(empty query)"]["total_exact"]
    assert 0 < by_name["black"]["documents_read"] <= 2 * 21 < by_name["black"]["total"]
    assert _positive(search["overall"]["p99_ms"])
    assert list(tmp_path.iterdir()) == []  # the store is removed

    text = index_bench.summary_markdown(report)
    assert "Index and search" in text and "blue jeans" in text and "**all queries**" in text


def test_the_moments_build_gives_the_api_builds_store_and_can_be_kept(tmp_path):
    """--build moments (build_moments + the store's moment writer) holds the same moments as the ingest's
    calls, and a kept store (--store-dir) is reused by the next run instead of rebuilt."""
    queries = [q for q in index_bench.QUERIES if q.name in ("black", "red striped dress", "(empty query)")]
    runs = {}
    for build in ("api", "moments"):
        report = index_bench.run(sizes=(FRAMES,), backends=("embedded",), queries=queries, warmup=1, repeats=1,
                                 min_repeats=1, budget_s=1.0, log=None, build=build, store_dir=tmp_path / build)
        [runs[build]] = report["backends"]["embedded"]["runs"]
        assert not runs[build]["store_reused"]
    assert runs["api"]["moments"] == runs["moments"]["moments"] > 0
    for api, moments in zip(runs["api"]["search"]["queries"], runs["moments"]["search"]["queries"]):
        assert (api["total"], api["documents_read"]) == (moments["total"], moments["documents_read"]), api["name"]
    again = index_bench.run(sizes=(FRAMES,), backends=("embedded",), queries=queries, warmup=1, repeats=1,
                            min_repeats=1, budget_s=1.0, log=None, build="moments", store_dir=tmp_path / "moments")
    [run] = again["backends"]["embedded"]["runs"]
    assert run["store_reused"] and run["moments"] == runs["moments"]["moments"]
    with pytest.raises(ValueError, match="holds another store"):
        index_bench.run(sizes=(FRAMES,), backends=("embedded",), queries=queries, log=None, build="moments",
                        store_dir=tmp_path / "api")


def test_unavailable_backend_is_recorded_as_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "indexer.elasticsearch", None)  # import fails
    report = index_bench.run(sizes=(FRAMES,), backends=("elasticsearch",), log=None)
    assert report["backends"]["elasticsearch"]["status"].startswith("skipped: ")
    assert "skipped" in index_bench.summary_markdown(report)
