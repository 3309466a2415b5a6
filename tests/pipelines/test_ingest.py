"""The ingest job end to end on a real two-process Dask LocalCluster with the pass_through stage."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, get_task_stream
from PIL import Image

from configs import load_settings
from indexer import MediaStatus, open_store
from indexer.frame_images import FrameImageStore
from pipelines.ingest import pipeline_version, run_ingest
from pipelines.media import fingerprint, frame_id
from pipelines.sampling import sample_frames

pytestmark = pytest.mark.slow

VIDEOS = ["bikes.mp4", "carphone_pristine.mp4", "one-by-one-person-detection.mp4"]
SEGMENT_SECONDS = 20  # the 139 s video becomes 7 segment tasks


def make_settings(data_dir: Path, *extra: dict):
    overrides = [
        {"data_dir": str(data_dir)},
        {"vision": {"stages": ["pass_through"]}},
        {"sampling": {"segment_seconds": SEGMENT_SECONDS}},
        {"cluster": {"gpu": "auto"}},
        *extra,
    ]
    return load_settings(None, overrides)


def expected_samples(path: Path, settings) -> list[tuple[float, str]]:
    s = settings.sampling
    return [
        (round(f.pts_time, 6), f.reason)
        for f in sample_frames(path, fps=s.fps, shot_threshold=s.shot_threshold, max_side=s.max_side)
    ]


def ingest(paths, settings, client, **kwargs):
    store = open_store(settings)
    try:
        report = run_ingest([str(p) for p in paths], settings, client, store, **kwargs)
        media = {m.path: m for m in store.list_media()}
        frames = {m.media_id: store.frames_of(m.media_id) for m in media.values()}
    finally:
        store.close()
    return report, media, frames


def by_name(report):
    outcomes = {}
    for o in report.outcomes:
        assert o.name not in outcomes, f"{o.name} reported twice"
        outcomes[o.name] = o
    return outcomes


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def media_folder(tmp_path_factory, shared_videos, shared_data, garbage_video_bytes) -> Path:
    folder = tmp_path_factory.mktemp("ingest") / "archive"
    (folder / "photos").mkdir(parents=True)
    for name in VIDEOS:
        shutil.copyfile(shared_videos / name, folder / name)
    photos = sorted((shared_data / "ccp" / "images").glob("*.jpg"))[:2]
    for photo in photos:
        shutil.copyfile(photo, folder / "photos" / photo.name)
    (folder / "corrupt.mp4").write_bytes(garbage_video_bytes)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("not media, skipped silently inside a folder")
    return folder


@pytest.fixture(scope="module")
def first_run(client, media_folder, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    settings = make_settings(data_dir)
    with get_task_stream(client) as stream:
        report, media, frames = ingest([media_folder], settings, client)
    return settings, report, media, frames, stream.data


def test_outcomes_of_a_mixed_folder(first_run, media_folder):
    settings, report, media, _, _ = first_run
    outcomes = by_name(report)
    photos = sorted(p.name for p in (media_folder / "photos").iterdir())
    assert set(outcomes) == set(VIDEOS) | set(photos) | {"corrupt.mp4", "empty.mp4"}
    for name in VIDEOS + photos:
        assert outcomes[name].status == "done", outcomes[name]
        assert outcomes[name].reason == ""
    assert outcomes["empty.mp4"].status == "failed"
    assert outcomes["empty.mp4"].reason == "empty file (0 bytes)"
    assert outcomes["corrupt.mp4"].status == "failed"
    assert outcomes["corrupt.mp4"].reason.startswith("not a readable video")
    for o in report.failed:
        assert o.reason and "\n" not in o.reason and len(o.reason) < 300
    assert {o.name for o in report.failed} == {"corrupt.mp4", "empty.mp4"}


def test_frame_counts_match_whole_file_sampling(first_run, media_folder):
    settings, report, media, frames, _ = first_run
    outcomes = by_name(report)
    for name in VIDEOS:
        path = media_folder / name
        expected = expected_samples(path, settings)
        record = media[str(path)]
        assert outcomes[name].frames == record.frames == len(expected), name
        stored = frames[record.media_id]
        assert [(round(f.timestamp, 6), f.reason) for f in stored] == expected, name
        assert len({f.frame_id for f in stored}) == len(stored)
        assert record.media_id == fingerprint(path)
    assert outcomes["one-by-one-person-detection.mp4"].frames == 140
    assert outcomes["bikes.mp4"].frames == 14  # 10 rate samples and 4 shot changes
    for photo in (media_folder / "photos").iterdir():
        record = media[str(photo)]
        assert record.frames == 1
        assert [(f.reason, f.timestamp) for f in frames[record.media_id]] == [("image", 0.0)]


def test_store_records(first_run, media_folder):
    settings, _, media, frames, _ = first_run
    version = pipeline_version(settings)
    done = [m for m in media.values() if m.status == MediaStatus.DONE]
    failed = {Path(m.path).name: m for m in media.values() if m.status == MediaStatus.FAILED}
    assert len(done) == len(VIDEOS) + 2
    assert all(m.pipeline_version == version and m.visible_run_id == m.run_id for m in done)
    assert set(failed) == {"corrupt.mp4", "empty.mp4"}
    assert failed["empty.mp4"].reason == "empty file (0 bytes)"
    assert failed["corrupt.mp4"].reason.startswith("not a readable video")
    assert all(frames[m.media_id] == [] for m in failed.values())
    bikes = media[str(media_folder / "bikes.mp4")]
    assert (bikes.width, bikes.height, bikes.kind) == (640, 272, "video")
    assert bikes.duration == pytest.approx(10.0, abs=0.1)


def test_frame_images_are_written(first_run):
    settings, _, media, frames, _ = first_run
    images = FrameImageStore(settings.data_dir, settings.sampling.thumbnail_side)
    root = Path(settings.data_dir) / "frames"
    for record in media.values():
        stored = frames[record.media_id]
        if record.status != MediaStatus.DONE:
            assert not (root / record.media_id).exists()
            continue
        files = sorted((root / record.media_id).glob("*.jpg"))
        assert len(files) == len(stored) == record.frames
        for f in stored:
            assert f.frame_id == frame_id(record.media_id, f.timestamp)
            target = images.path_for(record.media_id, f.frame_id)
            assert target.parent.parent == root
            with Image.open(target) as picture:
                assert picture.format == "JPEG"
                assert max(picture.size) <= settings.sampling.thumbnail_side
                assert picture.size[0] / picture.size[1] == pytest.approx(f.width / f.height, rel=0.02)
    assert not list(root.rglob("*.part"))


def test_long_video_spreads_over_both_workers(first_run, client):
    *_, tasks = first_run
    segments = [t for t in tasks if str(t["key"]).startswith("process_segment")]
    # the 139 s video in 20-s segments is 7, rounded up to 8 for the two workers; the 10 s and 4 s
    # videos stay whole
    assert len(segments) == 10
    assert {t["worker"] for t in segments} == set(client.scheduler_info(n_workers=-1)["workers"])


def test_rerun_skips_everything_done(first_run, client, media_folder):
    settings, _, media, frames, _ = first_run
    report, media_after, frames_after = ingest([media_folder], settings, client)
    outcomes = by_name(report)
    for path, record in media.items():
        name = Path(path).name
        if record.status == MediaStatus.DONE:
            assert outcomes[name].status == "skipped", outcomes[name]
            assert outcomes[name].frames == record.frames
        else:
            assert outcomes[name].status == "failed"
    assert set(media_after) == set(media)
    for record in media.values():
        assert media_after[record.path].run_id == record.run_id  # no new run started
        assert frames_after[record.media_id] == frames[record.media_id]  # nothing duplicated


@pytest.fixture
def small_folder(tmp_path, shared_videos, shared_data) -> Path:
    folder = tmp_path / "small"
    folder.mkdir()
    shutil.copyfile(shared_videos / "bikes.mp4", folder / "bikes.mp4")
    shutil.copyfile(sorted((shared_data / "ccp" / "images").glob("*.jpg"))[0], folder / "photo.jpg")
    return folder


def frame_rows(settings) -> int:
    import sqlite3

    with sqlite3.connect(Path(settings.data_dir) / "vestis.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]


def test_force_redoes_files_without_duplicates(client, small_folder, tmp_path):
    settings = make_settings(tmp_path / "data", {"sampling": {"segment_seconds": 3}})
    first, media, frames = ingest([small_folder], settings, client)
    assert {o.name: (o.status, o.frames) for o in first.outcomes} == {"bikes.mp4": ("done", 14), "photo.jpg": ("done", 1)}
    assert frame_rows(settings) == 15
    forced, media_forced, frames_forced = ingest([small_folder], settings, client, force=True)
    assert {o.name: (o.status, o.frames) for o in forced.outcomes} == {"bikes.mp4": ("done", 14), "photo.jpg": ("done", 1)}
    for path, record in media.items():
        assert media_forced[path].run_id != record.run_id
        assert [f.frame_id for f in frames_forced[record.media_id]] == [f.frame_id for f in frames[record.media_id]]
    assert frame_rows(settings) == 15  # the old run's rows are gone, not kept beside the new ones


def test_changed_sampling_changes_version_and_redoes(client, small_folder, tmp_path):
    settings = make_settings(tmp_path / "data")
    ingest([small_folder], settings, client)
    again = make_settings(tmp_path / "data", {"sampling": {"fps": 2}})
    assert pipeline_version(again) != pipeline_version(settings)
    assert pipeline_version(make_settings(tmp_path / "data")) == pipeline_version(settings)
    report, media, frames = ingest([small_folder], again, client)
    outcomes = by_name(report)
    assert outcomes["bikes.mp4"].status == "done"
    assert outcomes["bikes.mp4"].frames == len(expected_samples(small_folder / "bikes.mp4", again)) == 24
    assert outcomes["photo.jpg"].status == "done"
    assert all(m.pipeline_version == pipeline_version(again) for m in media.values())
    assert frame_rows(again) == 25
    # and back: the old version is not "done" any more, so it is redone too
    back, _, _ = ingest([small_folder], settings, client)
    assert {o.status for o in back.outcomes} == {"done"}


def test_changed_content_at_the_same_path(client, small_folder, tmp_path, shared_videos):
    settings = make_settings(tmp_path / "data")
    ingest([small_folder], settings, client)
    shutil.copyfile(shared_videos / "carphone_pristine.mp4", small_folder / "bikes.mp4")
    report, media, frames = ingest([small_folder], settings, client)
    outcomes = by_name(report)
    assert (outcomes["bikes.mp4"].status, outcomes["bikes.mp4"].frames) == ("done", 4)
    assert outcomes["photo.jpg"].status == "skipped"
    record = media[str(small_folder / "bikes.mp4")]
    assert record.media_id == fingerprint(small_folder / "bikes.mp4") and len(frames[record.media_id]) == 4
    assert len(media) == 2  # the old content's record is gone


def test_same_content_twice_is_ingested_once(client, small_folder, tmp_path):
    shutil.copyfile(small_folder / "bikes.mp4", small_folder / "bikes copy.mp4")
    settings = make_settings(tmp_path / "data")
    report, media, _ = ingest([small_folder], settings, client)
    statuses = sorted((o.name, o.status) for o in report.outcomes)
    assert statuses == [("bikes copy.mp4", "done"), ("bikes.mp4", "skipped"), ("photo.jpg", "done")] or statuses == [
        ("bikes copy.mp4", "skipped"), ("bikes.mp4", "done"), ("photo.jpg", "done")
    ]
    assert frame_rows(settings) == 15


def test_problems_from_arguments(client, small_folder, tmp_path):
    settings = make_settings(tmp_path / "data")
    (small_folder / "notes.txt").write_text("x")
    missing = str(tmp_path / "missing.mp4")
    report, media, _ = ingest([small_folder / "notes.txt", missing], settings, client)
    outcomes = {o.path: o for o in report.outcomes}
    assert outcomes[missing].status == "failed" and outcomes[missing].reason == "no such file or folder"
    assert outcomes[str(small_folder / "notes.txt")].status == "failed"
    assert "not a supported" in outcomes[str(small_folder / "notes.txt")].reason
    # an explicit unsupported file is listed with its reason; a missing path has nothing to list
    assert [Path(p).name for p in media] == ["notes.txt"]


def test_many_photos_are_batched(client, shared_data, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted((shared_data / "ccp" / "images").glob("*.jpg"))[:20]
    for photo in photos:
        shutil.copyfile(photo, folder / photo.name)
    settings = make_settings(tmp_path / "data")
    with get_task_stream(client) as stream:
        report, media, frames = ingest([folder], settings, client)
    assert sorted((o.name, o.status, o.frames) for o in report.outcomes) == sorted(
        (p.name, "done", 1) for p in photos
    )
    assert all(len(frames[m.media_id]) == 1 for m in media.values())
    image_tasks = [t for t in stream.data if str(t["key"]).startswith("process_images")]
    assert len(image_tasks) == 2  # 16 per task
    for record in media.values():
        with Image.open(record.path) as original:
            stored = frames[record.media_id][0]
            assert (stored.width, stored.height) == original.size  # CCP photos are below max_side
