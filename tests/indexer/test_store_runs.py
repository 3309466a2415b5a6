"""Runs on every backend: frames become visible atomically when a run finishes, failures and crashes
never hide what an earlier run indexed, deletes really delete, and concurrent writers lose nothing."""

from __future__ import annotations

import threading

import pytest

from indexer.embedded import path_media_id
from indexer.store import MediaRecord, MediaStatus
from labels import FrameLabels


def labels(media_id: str, times, reason: str = "rate") -> list[FrameLabels]:
    return [
        FrameLabels(frame_id=f"{media_id}-{round(t * 1000):09d}", media_id=media_id, timestamp=t, reason=reason,
                    width=64, height=48)
        for t in times
    ]


def record(media_id: str, run_id: str, path: str | None = None) -> MediaRecord:
    return MediaRecord(media_id=media_id, path=path or f"/videos/{media_id}.mp4", kind="video",
                       status=MediaStatus.PENDING, pipeline_version="v1", run_id=run_id)


def test_finished_run_makes_frames_visible(store):
    store.begin_run(record("m1", "run-a"))
    store.write_frames("run-a", labels("m1", [2.0, 0.0, 1.0]))
    assert store.frames_of("m1") == [] and store.frame_ids_of("m1") == set()  # nothing visible before the finish
    assert store.get_media("m1").status == MediaStatus.PENDING
    store.finish_run("m1", "run-a", 3, 0, 0, 1.5)
    frames = store.frames_of("m1")
    assert [f.timestamp for f in frames] == [0.0, 1.0, 2.0]  # time order
    assert store.frame_ids_of("m1") == {f.frame_id for f in frames}
    media = store.get_media("m1")
    assert (media.status, media.frames, media.visible_run_id, media.seconds) == (MediaStatus.DONE, 3, "run-a", 1.5)
    assert [m.media_id for m in store.list_media()] == ["m1"]


def test_writes_are_idempotent_on_frame_id(backend, store):
    store.begin_run(record("m1", "run-a"))
    store.write_frames("run-a", labels("m1", [0.0, 1.0]))
    store.write_frames("run-a", labels("m1", [1.0, 2.0]))  # a retried task rewrites a frame
    store.finish_run("m1", "run-a", 3, 0, 0, 0.1)
    assert [f.timestamp for f in store.frames_of("m1")] == [0.0, 1.0, 2.0]
    assert len(backend.stored_frames("m1")) == 3


def test_failed_run_drops_only_its_own_frames(backend, store):
    store.begin_run(record("m1", "run-a"))
    store.write_frames("run-a", labels("m1", [0.0, 1.0]))
    store.finish_run("m1", "run-a", 2, 0, 0, 0.1)
    store.begin_run(record("other", "run-o"))
    store.write_frames("run-o", labels("other", [0.0]))
    store.finish_run("other", "run-o", 1, 0, 0, 0.1)

    store.begin_run(record("m1", "run-b"))
    store.write_frames("run-b", labels("m1", [0.0, 0.5, 1.0, 1.5]))
    assert [f.timestamp for f in store.frames_of("m1")] == [0.0, 1.0]  # still the finished run
    assert store.frame_ids_of("m1") == {f.frame_id for f in labels("m1", [0.0, 1.0])}  # not the pending run's
    store.fail_run("m1", "run-b", "ffmpeg could not decode the video: boom")

    media = store.get_media("m1")
    assert media.status == MediaStatus.FAILED and media.reason == "ffmpeg could not decode the video: boom"
    assert [f.timestamp for f in store.frames_of("m1")] == [0.0, 1.0]
    assert {run for _, run in backend.stored_frames("m1")} == {"run-a"}
    assert [f.timestamp for f in store.frames_of("other")] == [0.0]


def test_new_run_replaces_old_frames_on_finish(backend, store):
    store.begin_run(record("m1", "run-a"))
    store.write_frames("run-a", labels("m1", [0.0, 1.0, 2.0]))
    store.finish_run("m1", "run-a", 3, 0, 0, 0.1)
    store.begin_run(record("m1", "run-b"))
    store.write_frames("run-b", labels("m1", [0.0, 0.5]))
    store.finish_run("m1", "run-b", 2, 0, 0, 0.1)
    assert [f.timestamp for f in store.frames_of("m1")] == [0.0, 0.5]
    assert {run for _, run in backend.stored_frames("m1")} == {"run-b"}
    assert store.get_media("m1").frames == 2


def test_crashed_run_is_invisible_and_cleared_on_next_begin(backend):
    first = backend.open()
    first.begin_run(record("m1", "run-a"))
    first.write_frames("run-a", labels("m1", [0.0, 1.0]))
    first.finish_run("m1", "run-a", 2, 0, 0, 0.1)
    first.begin_run(record("m1", "run-crash"))
    first.write_frames("run-crash", labels("m1", [0.0, 0.3, 0.6, 0.9]))
    first.close()  # the process dies here: no finish, no fail

    second = backend.open()
    try:
        assert [f.timestamp for f in second.frames_of("m1")] == [0.0, 1.0]
        assert second.get_media("m1").visible_run_id == "run-a"
        assert {run for _, run in backend.stored_frames("m1")} == {"run-a", "run-crash"}
        second.begin_run(record("m1", "run-c"))
        assert {run for _, run in backend.stored_frames("m1")} == {"run-a"}  # leftovers cleared
        assert [f.timestamp for f in second.frames_of("m1")] == [0.0, 1.0]
        second.write_frames("run-c", labels("m1", [0.0, 2.0]))
        second.finish_run("m1", "run-c", 2, 0, 0, 0.1)
        assert [f.timestamp for f in second.frames_of("m1")] == [0.0, 2.0]
    finally:
        second.close()


def test_crash_in_a_first_run_leaves_nothing_visible(backend):
    first = backend.open()
    first.begin_run(record("m1", "run-crash"))
    first.write_frames("run-crash", labels("m1", [0.0, 1.0]))
    first.close()
    second = backend.open()
    try:
        assert second.frames_of("m1") == []
        assert second.get_media("m1").status == MediaStatus.PENDING
        second.begin_run(record("m1", "run-2"))
        assert backend.stored_frames("m1") == []
    finally:
        second.close()


def test_finish_requires_the_pending_run(store):
    store.begin_run(record("m1", "run-a"))
    with pytest.raises(RuntimeError, match="no pending run"):
        store.finish_run("m1", "run-zzz", 0, 0, 0, 0.0)
    with pytest.raises(RuntimeError):
        store.finish_run("unknown", "run-a", 0, 0, 0, 0.0)


def test_changed_content_at_same_path_replaces_old_record(backend, store):
    store.begin_run(record("old", "run-a", path="/videos/clip.mp4"))
    store.write_frames("run-a", labels("old", [0.0]))
    store.finish_run("old", "run-a", 1, 0, 0, 0.1)
    store.begin_run(record("new", "run-b", path="/videos/clip.mp4"))
    store.write_frames("run-b", labels("new", [0.0, 1.0]))
    store.finish_run("new", "run-b", 2, 0, 0, 0.1)
    assert [m.media_id for m in store.list_media()] == ["new"]
    assert store.frames_of("old") == [] and backend.stored_frames("old") == []


def test_record_failure(store):
    store.record_failure("/videos/broken.mp4", "video", "empty file (0 bytes)")
    media = store.get_media(path_media_id("/videos/broken.mp4"))
    assert (media.status, media.reason, media.path) == (MediaStatus.FAILED, "empty file (0 bytes)", "/videos/broken.mp4")
    store.record_failure("/videos/broken.mp4", "video", "still empty")
    assert [m.reason for m in store.list_media()] == ["still empty"]
    # a file with a known id keeps its earlier visible frames when it later fails to probe
    store.begin_run(record("m1", "run-a"))
    store.write_frames("run-a", labels("m1", [0.0]))
    store.finish_run("m1", "run-a", 1, 0, 0, 0.1)
    store.record_failure("/videos/m1.mp4", "video", "not a readable video", media_id="m1")
    assert store.get_media("m1").status == MediaStatus.FAILED
    assert len(store.frames_of("m1")) == 1


def test_two_store_objects_in_threads_lose_no_rows(backend):
    stores = [backend.open(), backend.open()]
    for i, s in enumerate(stores):
        s.begin_run(record(f"m{i}", f"run{i}"))

    def write(i):
        for b in range(30):
            stores[i].write_frames(f"run{i}", labels(f"m{i}", [(b * 10 + k) / 10 for k in range(10)]))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, s in enumerate(stores):
        s.finish_run(f"m{i}", f"run{i}", 300, 0, 0, 0.1)
    try:
        assert [len(stores[0].frames_of(f"m{i}")) for i in range(2)] == [300, 300]
    finally:
        for s in stores:
            s.close()
