"""Cluster: GPU requirements fail fast with a clear message; GPU workers are asked for when present."""

from __future__ import annotations

import os

import logging
import shutil
import time

import pytest
from distributed import Client, LocalCluster

from configs import load_settings
from indexer import MediaStatus, open_store
from pipelines.cluster import ClusterError, connect, vision_resources
from pipelines.ingest import run_ingest

pytestmark = pytest.mark.slow


def settings_for(tmp_path, **sections):
    overrides = [{"data_dir": str(tmp_path / "data")}, {"vision": {"stages": ["pass_through"]}}]
    overrides += [{section: values} for section, values in sections.items()]
    return load_settings(None, overrides)


@pytest.fixture(scope="module")
def cpu_client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def gpu_client():
    # in-process workers that declare one GPU each (nothing here uses a real GPU)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, resources={"GPU": 1},
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def test_require_gpu_without_gpu_workers_fails_fast(cpu_client):
    started = time.perf_counter()
    with pytest.raises(ClusterError, match="GPU") as info:
        vision_resources(cpu_client, "require")
    assert time.perf_counter() - started < 5
    assert "cluster.gpu" in str(info.value) and "2 worker(s)" in str(info.value)


def test_auto_and_off_without_gpu_workers(cpu_client):
    assert vision_resources(cpu_client, "auto") is None
    assert vision_resources(cpu_client, "off") is None


def test_gpu_workers_are_requested(gpu_client):
    assert vision_resources(gpu_client, "auto") == {"GPU": 1}
    assert vision_resources(gpu_client, "require") == {"GPU": 1}
    assert vision_resources(gpu_client, "off") is None


def test_run_ingest_requiring_gpu_fails_before_any_work(cpu_client, shared_videos, tmp_path):
    settings = settings_for(tmp_path, cluster={"gpu": "require"})
    store = open_store(settings)
    try:
        started = time.perf_counter()
        with pytest.raises(ClusterError, match="GPU"):
            run_ingest([str(shared_videos / "carphone_pristine.mp4")], settings, cpu_client, store)
        assert time.perf_counter() - started < 5
        assert store.list_media() == []
    finally:
        store.close()
    assert not (tmp_path / "data" / "frames").exists()


def test_run_ingest_on_gpu_workers(gpu_client, shared_videos, tmp_path):
    settings = settings_for(tmp_path, cluster={"gpu": "require"})
    source = tmp_path / "in" / "carphone.mp4"
    source.parent.mkdir()
    shutil.copyfile(shared_videos / "carphone_pristine.mp4", source)
    store = open_store(settings)
    try:
        report = run_ingest([str(source)], settings, gpu_client, store)
        assert [(o.status, o.frames) for o in report.outcomes] == [("done", 4)]
        assert store.list_media()[0].status == MediaStatus.DONE
    finally:
        store.close()


def test_connect_local_cluster_size(tmp_path):
    settings = settings_for(tmp_path, cluster={"workers": 2, "gpu": "off"})
    with connect(settings) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 2
        assert all(w["nthreads"] == 1 for w in workers.values())
        assert all(not w.get("resources") for w in workers.values())


def test_local_workers_run_without_distributeds_malloc_trim_threshold(tmp_path, monkeypatch):
    # distributed's default (65536) more than doubled the CPU of an ingest; the workers must not get it.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    settings = settings_for(tmp_path, cluster={"workers": 1, "gpu": "off"})
    with connect(settings) as client:
        [value] = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()
    assert value is None


def test_connect_to_existing_scheduler(cpu_client, tmp_path):
    address = cpu_client.scheduler.address
    settings = settings_for(tmp_path, cluster={"scheduler": address})
    with connect(settings) as client:
        assert client.scheduler.address == address
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2


def test_unreachable_scheduler_is_a_cluster_error(tmp_path):
    settings = settings_for(tmp_path, cluster={"scheduler": "tcp://127.0.0.1:9"})
    with pytest.raises(ClusterError, match="cluster.scheduler='tcp://127.0.0.1:9'"):
        with connect(settings):
            pass
