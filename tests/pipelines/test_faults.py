"""Faults during an ingest, on a real two-process Dask LocalCluster with the pass_through stage.

- A Dask worker killed mid-task: the task runs again elsewhere, counts match, nothing duplicated.
- The embedded store's writer killed (SIGKILL) inside a write transaction: the file is intact, the
  previous run stays visible, the next ingest redoes the media.
- Elasticsearch (osmem-server) unreachable mid-run: a short outage is ridden out by the retries; a
  longer one fails the video with the store's reason and the next ingest redoes only it; the server
  stopped for good stops the run cleanly, and a server restarted on the same port gets everything
  on the next ingest. A client losing the store stops the run with every file accounted for.

Timing inside the workers is driven by a gate in the pass_through stage (`FaultPatches`, a worker
plugin defined here and only here): the first batch of a chosen media file at or after a chosen
timestamp writes `reached-<media>` (with the worker's pid) and waits for `go-<media>`. The same
plugin points the workers' Elasticsearch client at osmem (PlainJsonNode, short timeouts).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, WorkerPlugin

from configs import load_settings
from indexer import MediaStatus, StoreUnavailable, open_store
from pipelines.ingest import run_ingest
from pipelines.media import fingerprint
from pipelines.sampling import sample_frames
from tests.indexer.backends import start_osmem_or_skip
from vision.pass_through import PassThroughStage

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
GATE_WAIT_S = 60.0


# --- in the workers ---------------------------------------------------------------------------------

_ORIGINAL_PASS_THROUGH = PassThroughStage.__call__


def _hold_if_asked(directory: Path, media_id: str, timestamp: float) -> None:
    hold = directory / f"hold-{media_id}"
    try:
        at = float(hold.read_text())
    except (FileNotFoundError, ValueError):
        return
    if timestamp < at:
        return
    try:  # one task claims the gate; a retry of it (or any other task) passes
        os.rename(hold, directory / f"claimed-{media_id}")
    except FileNotFoundError:
        return
    (directory / f"pid-{media_id}").write_text(str(os.getpid()))
    os.rename(directory / f"pid-{media_id}", directory / f"reached-{media_id}")
    deadline = time.monotonic() + GATE_WAIT_S
    while not (directory / f"go-{media_id}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _gated_pass_through(directory: Path):
    def call(self, frames):
        for frame in frames:
            _hold_if_asked(directory, frame.labels.media_id, frame.labels.timestamp)
        return _ORIGINAL_PASS_THROUGH(self, frames)

    return call


class FaultPatches(WorkerPlugin):
    """Test-only patches in every worker, also in workers that (re)start later."""

    name = "vestis-test-faults"

    def __init__(self, gate_dir: str, es_request_timeout: float | None = None):
        self.gate_dir = gate_dir
        self.es_request_timeout = es_request_timeout

    def setup(self, worker=None):
        PassThroughStage.__call__ = _gated_pass_through(Path(self.gate_dir))
        if self.es_request_timeout is not None:
            import indexer.elasticsearch as backend
            from tests.indexer.elasticsearch_server import client_for

            timeout = self.es_request_timeout

            def osmem_client(url, **kwargs):
                # What ElasticsearchStore.connect builds, on PlainJsonNode; short timeouts and one
                # request per store try, so an outage costs seconds and "5 tries" means 5 requests.
                kwargs.update(request_timeout=timeout, max_retries=0)
                return client_for(url, **kwargs)

            backend.Elasticsearch = osmem_client

    def teardown(self, worker=None):
        import elasticsearch

        import indexer.elasticsearch as backend

        PassThroughStage.__call__ = _ORIGINAL_PASS_THROUGH
        backend.Elasticsearch = elasticsearch.Elasticsearch


# --- in the test --------------------------------------------------------------------------------------


class Gate:
    def __init__(self, directory: Path):
        self.directory = directory

    def hold(self, path: Path, at: float = 0.0) -> str:
        media_id = fingerprint(path)
        (self.directory / f"hold-{media_id}").write_text(str(at))
        return media_id

    def reached(self, media_id: str, timeout: float = 60.0) -> int:
        """The pid of the worker process waiting at the gate."""
        marker = self.directory / f"reached-{media_id}"
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert time.monotonic() < deadline, "no task reached the gate"
            time.sleep(0.02)
        return int(marker.read_text())

    def release(self, media_id: str) -> None:
        (self.directory / f"go-{media_id}").touch()

    def release_all(self) -> None:
        for marker in self.directory.glob("hold-*"):
            marker.unlink(missing_ok=True)
        for marker in self.directory.glob("reached-*"):
            self.release(marker.name.removeprefix("reached-"))


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture
def patches(client, tmp_path):
    """Installs FaultPatches (gate only) in both workers; `patches(es_request_timeout=...)` re-installs
    them with the osmem client too. Removed, and every gate opened, afterwards."""
    gate_dir = tmp_path / "gate"
    gate_dir.mkdir()
    client.wait_for_workers(2, timeout=60)  # a worker killed by an earlier test is back

    def install(es_request_timeout: float | None = None) -> Gate:
        client.register_plugin(FaultPatches(str(gate_dir), es_request_timeout), name=FaultPatches.name)
        return Gate(gate_dir)

    install()
    yield install
    Gate(gate_dir).release_all()
    client.unregister_worker_plugin(FaultPatches.name)


@pytest.fixture
def folder(tmp_path, shared_videos, shared_data) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copyfile(shared_videos / name, folder / name)
    shutil.copyfile(sorted((shared_data / "ccp" / "images").glob("*.jpg"))[0], folder / "photo.jpg")
    return folder


def make_settings(data_dir: Path, *extra: dict):
    overrides = [
        {"data_dir": str(data_dir)},
        {"vision": {"stages": ["pass_through"], "batch_size": 2}},  # several writes per segment
        {"sampling": {"segment_seconds": 20}},
        {"cluster": {"gpu": "auto"}},
        *extra,
    ]
    return load_settings(None, overrides)


def expected_timestamps(path: Path, settings) -> list[float]:
    s = settings.sampling
    return [round(f.pts_time, 6) for f in sample_frames(path, fps=s.fps, shot_threshold=s.shot_threshold,
                                                          max_side=s.max_side)]


def outcomes(report) -> dict[str, tuple]:
    by_name = {}
    for o in report.outcomes:
        assert o.name not in by_name, f"{o.name} reported twice"
        by_name[o.name] = (o.status, o.frames if o.status != "failed" else o.reason)
    return by_name


class Hooked:
    """A store whose named methods first call a hook (which may raise, or end an outage)."""

    def __init__(self, store, **hooks):
        self._store = store
        self._hooks = hooks

    def __getattr__(self, name):
        method = getattr(self._store, name)
        hook = self._hooks.get(name)
        if hook is None:
            return method

        def hooked(*args, **kwargs):
            hook(*args, **kwargs)
            return method(*args, **kwargs)

        return hooked


class Begun:
    """An observer that tells when `count` media files have begun (their begin_run is written)."""

    def __init__(self, count: int):
        self.count = count
        self.event = threading.Event()

    def media_found(self, count): ...
    def frames_done(self, count): ...
    def media_finished(self, outcome): ...

    def frames_expected(self, count):  # called right after begin_run
        self.count -= 1
        if self.count == 0:
            self.event.set()

    def wait(self, timeout: float = 60.0) -> None:
        assert self.event.wait(timeout), "the media files were not all begun"


def in_background(work, *args, **kwargs):
    pool = ThreadPoolExecutor(1)
    future = pool.submit(work, *args, **kwargs)
    pool.shutdown(wait=False)
    return future


def sqlite_rows(settings, sql: str, *params) -> list[tuple]:
    db = sqlite3.connect(Path(settings.data_dir) / "vestis.sqlite3")
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


# --- a Dask worker killed mid-task --------------------------------------------------------------------


def test_worker_killed_mid_task_the_task_runs_elsewhere_and_counts_match(client, patches, folder, tmp_path):
    gate = patches()
    settings = make_settings(tmp_path / "data")
    bikes = folder / "bikes.mp4"
    media_id = gate.hold(bikes, at=5.0)  # the segment has written frames 0..4 when it stops here
    workers_before = set(client.scheduler_info(n_workers=-1)["workers"])
    store = open_store(settings)
    try:
        running = in_background(run_ingest, [str(bikes)], settings, client, store)
        pid = gate.reached(media_id)
        [(run_id, written)] = sqlite_rows(settings, "SELECT run_id, COUNT(*) FROM frames WHERE media_id = ? "
                                                    "GROUP BY run_id", media_id)
        assert written >= 4  # the killed attempt really wrote part of the run
        os.kill(pid, signal.SIGKILL)
        report = running.result(timeout=120)
        record = store.get_media(media_id)
        frames = store.frames_of(media_id)
    finally:
        store.close()
    expected = expected_timestamps(bikes, settings)
    assert outcomes(report) == {"bikes.mp4": ("done", len(expected))} and len(expected) == 14
    assert (record.status, record.frames, record.run_id) == (MediaStatus.DONE, 14, run_id)
    assert [round(f.timestamp, 6) for f in frames] == expected
    # the retry rewrote the killed attempt's frames under the same run id: no duplicates, no leftovers
    assert sqlite_rows(settings, "SELECT COUNT(*), COUNT(DISTINCT frame_id) FROM frames") == [(14, 14)]
    # the worker really died (the nanny started a new one in its place)
    client.wait_for_workers(2, timeout=60)
    assert set(client.scheduler_info(n_workers=-1)["workers"]) != workers_before


# --- the embedded store's writer killed mid-transaction --------------------------------------------------

# Opens the store, begins a second run of a media file and writes many frames in batches; stops for
# good inside a chosen write transaction (after its statements ran, before COMMIT) and says so.
WRITER = r"""
import sys, time
from indexer.embedded import EmbeddedStore
from labels import FrameLabels

data_dir, media_id, where = sys.argv[1:4]
original = EmbeddedStore._run_statements
inserts = 0

def run_statements(db, statements):
    global inserts
    original(db, statements)
    sql = statements[0][0] if statements else ""
    inserts += sql.startswith("INSERT OR REPLACE INTO frames")
    switch = "UPDATE media SET status" in str(statements)  # finish_run's, making the run visible
    if (where == "write_frames" and inserts == 2) or (where == "finish_run" and switch):
        print("inside the transaction", flush=True)
        time.sleep(120)

EmbeddedStore._run_statements = staticmethod(run_statements)
store = EmbeddedStore(data_dir)
record = store.get_media(media_id)
record.run_id = "killed-run"
store.begin_run(record)
frames = [FrameLabels(frame_id=f"{media_id}-{i:06d}", media_id=media_id, timestamp=i / 100, reason="rate",
                      width=640, height=272) for i in range(12000)]
for start in range(0, len(frames), 4000):
    store.write_frames("killed-run", frames[start:start + 4000])
store.finish_run(media_id, "killed-run", len(frames), 0, 0, 1.0)
print("finished without being killed", flush=True)
"""


@pytest.mark.parametrize("where", ["write_frames", "finish_run"])
def test_embedded_store_killed_mid_write_keeps_the_previous_run_and_is_redone(client, patches, folder, tmp_path,
                                                                              where):
    settings = make_settings(tmp_path / "data")
    bikes, media_id = folder / "bikes.mp4", fingerprint(folder / "bikes.mp4")
    store = open_store(settings)
    try:
        run_ingest([str(bikes)], settings, client, store)
        first_run = store.get_media(media_id).run_id
        before = (store.frames_of(media_id), store.moments_of(media_id))
    finally:
        store.close()
    assert len(before[0]) == 14

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(settings.data_dir), media_id, where],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        line = writer.stdout.readline()
        assert line == "inside the transaction\n", line + writer.stderr.read()
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(10) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()
        writer.stderr.close()

    assert sqlite_rows(settings, "PRAGMA integrity_check") == [("ok",)]
    runs = dict(sqlite_rows(settings, "SELECT run_id, COUNT(*) FROM frames GROUP BY run_id"))
    # committed batches of the killed run are kept (invisible), the batch or switch in flight is not
    assert runs == {first_run: 14, "killed-run": 4000 if where == "write_frames" else 12000}
    store = open_store(settings)
    try:
        record = store.get_media(media_id)
        assert (record.status, record.run_id, record.visible_run_id) == (MediaStatus.PENDING, "killed-run", first_run)
        assert (store.frames_of(media_id), store.moments_of(media_id)) == before  # what readers see: run 1

        report = run_ingest([str(bikes)], settings, client, store)  # pending, so redone
        assert outcomes(report) == {"bikes.mp4": ("done", 14)}
        record = store.get_media(media_id)
        assert record.status == MediaStatus.DONE and record.run_id not in (first_run, "killed-run")
        assert [f.frame_id for f in store.frames_of(media_id)] == [f.frame_id for f in before[0]]
    finally:
        store.close()
    assert sqlite_rows(settings, "SELECT run_id, COUNT(*) FROM frames GROUP BY run_id") == [(record.run_id, 14)]


# --- the client losing the store mid-run ------------------------------------------------------------------


def test_client_losing_the_store_stops_the_run_and_accounts_for_every_file(client, patches, folder, tmp_path):
    settings = make_settings(tmp_path / "data")
    store = open_store(settings)
    lost = "Elasticsearch unreachable after 5 tries: ConnectionError(test)"

    def finish_run(media_id, *args):
        if fingerprint(folder / "carphone_pristine.mp4") == media_id:
            raise StoreUnavailable(lost)

    try:
        report = run_ingest([str(folder)], settings, client, Hooked(store, finish_run=finish_run))
        status = {r.name: r.status for r in store.list_media()}
    finally:
        store.close()
    assert report.stopped == lost
    result = outcomes(report)
    assert set(result) == {"bikes.mp4", "carphone_pristine.mp4", "photo.jpg"}  # each exactly once
    assert result["carphone_pristine.mp4"] == ("failed", f"not finished: {lost}")
    for name, (state, detail) in result.items():
        assert state in ("done", "failed") and (state == "done") == (status.get(name) == MediaStatus.DONE), name
        assert state == "done" or detail == f"not finished: {lost}"

    store = open_store(settings)
    try:
        again = run_ingest([str(folder)], settings, client, store)
    finally:
        store.close()
    redone = outcomes(again)
    assert {name for name, (state, _) in redone.items() if state == "done"} == {
        name for name, (state, _) in result.items() if state == "failed"}
    assert {name: state for name, (state, _) in redone.items()} == {
        name: "skipped" if state == "done" else "done" for name, (state, _) in result.items()}
    assert sqlite_rows(settings, "SELECT COUNT(*), COUNT(DISTINCT frame_id) FROM frames") == [(19, 19)]


# --- Elasticsearch unreachable mid-run ---------------------------------------------------------------------

WORKER_ES_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def osmem():
    """A server of our own: these tests pause, stop and restart it."""
    server = start_osmem_or_skip()
    yield server
    server.stop()


def es_settings(tmp_path: Path, osmem, prefix: str):
    return make_settings(tmp_path / "data", {"store": {"elasticsearch_url": osmem.url, "index_prefix": prefix}})


def es_store(url: str, prefix: str, attempts: int = 5, backoff_s: float = 0.5, es_client=None):
    """The client's store, on the osmem client with the workers' short timeouts."""
    from indexer.elasticsearch import ElasticsearchStore
    from tests.indexer.elasticsearch_server import client_for

    es_client = es_client or client_for(url, request_timeout=WORKER_ES_TIMEOUT_S, max_retries=0)
    return ElasticsearchStore(es_client, prefix, attempts=attempts, backoff_s=backoff_s)


def stored_frames(url: str, prefix: str, media_id: str) -> list[tuple[str, str]]:
    """(frame id, run id) of every frame document kept, visible or not."""
    from tests.indexer.backends import ElasticsearchBackend

    return ElasticsearchBackend(url, prefix).stored_frames(media_id)


def frame_versions(url: str, prefix: str, media_id: str) -> list[int]:
    from tests.indexer.elasticsearch_server import client_for

    es = client_for(url)
    try:
        es.indices.refresh(index=f"{prefix}-frames")
        hits = es.search(index=f"{prefix}-frames", query={"term": {"media_id": media_id}}, size=1000,
                         version=True)["hits"]["hits"]
        return [h["_version"] for h in hits]
    finally:
        es.close()


def test_short_es_outage_is_ridden_out_by_the_retries_without_duplicates(client, patches, folder, tmp_path, osmem):
    gate = patches(es_request_timeout=WORKER_ES_TIMEOUT_S)
    settings = es_settings(tmp_path, osmem, "short")
    bikes = folder / "bikes.mp4"
    media_id = gate.hold(bikes, at=5.0)
    store = es_store(osmem.url, "short")
    try:
        running = in_background(run_ingest, [str(bikes)], settings, client, store)
        gate.reached(media_id)
        osmem.pause()
        try:
            gate.release(media_id)  # the next bulk write times out, and is tried again after a pause
            time.sleep(2.0)
        finally:
            osmem.resume()  # and serves the writes it had queued: the same ids, written twice
        report = running.result(timeout=120)
        record = store.get_media(media_id)
        frames = store.frames_of(media_id)
    finally:
        store.close()
    assert outcomes(report) == {"bikes.mp4": ("done", 14)} and not report.stopped
    assert [round(f.timestamp, 6) for f in frames] == expected_timestamps(bikes, settings)
    assert stored_frames(osmem.url, "short", media_id) == sorted((f.frame_id, record.run_id) for f in frames)
    # The batch in flight was written more than once (the timed-out tries, served after the pause,
    # and the retry): the same document ids, so versions went up instead of documents being added.
    assert max(frame_versions(osmem.url, "short", media_id)) > 1


def test_es_outage_longer_than_the_retries_fails_the_video_and_the_next_ingest_redoes_it(
        client, patches, folder, tmp_path, osmem):
    gate = patches(es_request_timeout=WORKER_ES_TIMEOUT_S)
    settings = es_settings(tmp_path, osmem, "long")
    bikes, photo = folder / "bikes.mp4", folder / "photo.jpg"
    bikes_id = gate.hold(bikes, at=4.0)
    # The photo waits until the outage is over, then shows that the run goes on. (Its task is
    # submitted after the bikes segment, so it never holds up the bikes segment on a worker.)
    photo_id = gate.hold(photo)

    def fail_run(media_id, run_id, reason):  # the outage ends as the client records the failure
        osmem.resume()
        gate.release(photo_id)

    store = es_store(osmem.url, "long")
    begun = Begun(2)  # no store call of the client's is left to fall into the outage
    paths = [str(bikes), str(photo)]
    try:
        running = in_background(run_ingest, paths, settings, client, Hooked(store, fail_run=fail_run), observer=begun)
        begun.wait()
        gate.reached(bikes_id)
        osmem.pause()
        try:
            gate.release(bikes_id)
            report = running.result(timeout=120)
        finally:
            osmem.resume()
        bikes_record = store.get_media(bikes_id)
        bikes_frames = store.frames_of(bikes_id)
        again = run_ingest(paths, settings, client, store)
        redone = store.get_media(bikes_id)
        frames = store.frames_of(bikes_id)
    finally:
        store.close()
    result = outcomes(report)
    assert not report.stopped
    assert result["bikes.mp4"][0] == "failed"
    reason = result["bikes.mp4"][1]
    assert re.match(r"Elasticsearch unreachable after 5 tries at http://127\.0\.0\.1:\d+: ConnectionTimeout", reason), reason
    assert "\n" not in reason and len(reason) <= 300
    assert result["photo.jpg"] == ("done", 1)
    assert (bikes_record.status, bikes_record.reason, bikes_frames) == (MediaStatus.FAILED, reason, [])

    assert outcomes(again) == {"bikes.mp4": ("done", 14), "photo.jpg": ("skipped", 1)}
    assert [round(f.timestamp, 6) for f in frames] == expected_timestamps(bikes, settings)
    assert stored_frames(osmem.url, "long", bikes_id) == sorted((f.frame_id, redone.run_id) for f in frames)
    assert len(stored_frames(osmem.url, "long", photo_id)) == 1


def test_es_stopped_mid_run_stops_the_run_and_a_restarted_server_gets_everything(
        client, patches, folder, tmp_path, osmem):
    from tests.indexer.elasticsearch_server import client_for

    gate = patches(es_request_timeout=WORKER_ES_TIMEOUT_S)
    settings = es_settings(tmp_path, osmem, "restart")
    bikes = folder / "bikes.mp4"
    bikes_id = gate.hold(bikes, at=4.0)  # frames 0..3 are written to the server that is then stopped
    es_client = client_for(osmem.url, request_timeout=WORKER_ES_TIMEOUT_S, max_retries=0)
    store = es_store(osmem.url, "restart", attempts=2, backoff_s=0.1, es_client=es_client)
    running = in_background(run_ingest, [str(bikes)], settings, client, store)
    gate.reached(bikes_id)
    osmem.process.kill()  # gone, not paused: every connection is refused
    osmem.process.wait()
    gate.release(bikes_id)
    report = running.result(timeout=120)
    # the worker gave up on its writes; then the client could not record that either, so it stopped
    assert re.match(r"Elasticsearch unreachable after 2 tries at http://127\.0\.0\.1:\d+: ConnectionError",
                    report.stopped), report.stopped
    [(status, reason)] = outcomes(report).values()
    assert status == "failed" and re.match(r"Elasticsearch unreachable after 5 tries at http://127\.0\.0\.1:\d+: ConnectionError", reason)

    osmem.restart()  # same port, so the clients holding the URL find it; osmem starts empty
    store = es_store(osmem.url, "restart", es_client=es_client)  # the old client again; re-creates the layout
    try:
        again = run_ingest([str(bikes)], settings, client, store)
        record = store.get_media(bikes_id)
        frames = store.frames_of(bikes_id)
    finally:
        store.close()
    assert outcomes(again) == {"bikes.mp4": ("done", 14)}
    assert [round(f.timestamp, 6) for f in frames] == expected_timestamps(bikes, settings)
    assert stored_frames(osmem.url, "restart", bikes_id) == sorted((f.frame_id, record.run_id) for f in frames)


def test_a_worker_starting_while_the_store_is_unreachable_still_comes_up():
    """The plugin opens the store on first use: setup succeeds, and the first write names the store."""
    from configs import Settings
    from pipelines.tasks import VisionWorkerPlugin

    settings = Settings(store={"elasticsearch_url": "http://127.0.0.1:9"}, vision={"stages": ["pass_through"]})
    plugin = VisionWorkerPlugin(settings.shipped())
    plugin.setup()
    with pytest.raises(StoreUnavailable, match="store.elasticsearch_url http://127.0.0.1:9"):
        plugin.store
    plugin.teardown()
