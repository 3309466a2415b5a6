"""Smoke test of bench/load_test.py: a tiny store, two clients for two seconds against the real app
under uvicorn; the report has its figures and no request failed. Never its speed."""

from __future__ import annotations

import math

from bench import load_test


def test_a_short_load_run_reports_its_figures_without_errors(tmp_path):
    report = load_test.run(frames=600, duration_s=2.0, clients=2, seed=11, workdir=tmp_path, log=None)
    assert report["benchmark"] == "load" and report["config"]["clients"] == 2
    assert report["store"]["frames"] == 600 and report["store"]["moments"] > 0
    assert report["workload"]["searches"] == len(load_test.QUERIES) and report["workload"]["thumbnails"] > 0
    results = report["results"]
    assert results["requests"] > 0 and results["errors"] == 0 and results["error_samples"] == []
    assert results["unfinished_clients"] == 0
    assert results["elapsed_s"] >= 2.0 and results["requests_per_s"] > 0
    latency = results["latency"]
    assert latency["requests"] == results["requests"]
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert all(math.isfinite(v) for v in latency.values())
    assert sum(k["requests"] for k in results["by_kind"].values()) == results["requests"]
    assert results["by_kind"]["search"]["requests"] > 0
    text = load_test.summary_markdown(report)
    assert text.startswith("## HTTP load") and "| all |" in text and "0 errors" in text
    assert (tmp_path / "data" / "frames").is_dir()  # a given workdir is kept
