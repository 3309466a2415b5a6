"""The ingest job: discover media, skip what is already done, fan segments out to Dask, record outcomes.

The client only plans and keeps score; workers decode, run the vision stages and write to the
store themselves, returning small summaries.

Faults. A task that raises is retried (TASK_RETRIES); a task whose worker dies is rescheduled by
Dask on another worker (up to `distributed.scheduler.allowed-failures` deaths, then KilledWorker
fails that media). Frames are written under the run id, so a redone task overwrites rather than
duplicates. When a worker cannot reach the store after the store's own retries, that media fails
with the store's one-line reason and the run goes on (the outage may be over). When the client
itself cannot reach the store to record an outcome, the run stops: outstanding tasks are cancelled,
every media not concluded is reported failed, and `IngestReport.stopped` says why. Nothing it had
not finished is marked done, so the next `vestis ingest` redoes exactly those.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Protocol

from distributed import Client, Future, as_completed

from configs import Settings
from indexer import LabelStore, MediaRecord, MediaStatus, StoreUnavailable
from indexer.frame_images import FrameImageStore
from indexer.store import media_name
from pipelines.cluster import ClusterError, vision_resources
from pipelines.discover import discover_media
from pipelines.media import printable_path
from pipelines.segments import plan_segments
from pipelines.tasks import (
    Inspection,
    SegmentResult,
    VisionWorkerPlugin,
    inspect_media,
    one_line,
    process_images,
    process_segment,
)
from vision.registry import stages_version

# Bumped when sampling or frame records change in a way that needs re-ingestion.
PIPELINE_SCHEMA = "1"
TASK_RETRIES = 2


def pipeline_version(settings: Settings) -> str:
    """What produced a media file's labels; a different version means the file is redone."""
    sampling = settings.sampling
    text = (
        f"schema={PIPELINE_SCHEMA};stages={stages_version(settings.vision.stages, settings)};"
        f"fps={sampling.fps};shot={sampling.shot_threshold};max_side={sampling.max_side}"
    )
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@dataclass
class FileOutcome:
    path: str
    status: str  # done, skipped, failed
    frames: int = 0
    persons: int = 0
    garments: int = 0
    seconds: float = 0.0
    reason: str = ""

    @property
    def name(self) -> str:
        return media_name(self.path)


@dataclass
class IngestReport:
    outcomes: list[FileOutcome] = field(default_factory=list)
    dashboard: str | None = None
    stopped: str = ""  # why the run stopped before concluding every file ("" when it did not)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def interrupted(self) -> bool:
        return self.stopped.startswith("interrupted")


class IngestObserver(Protocol):
    def media_found(self, count: int) -> None: ...
    def frames_expected(self, count: int) -> None: ...
    def frames_done(self, count: int) -> None: ...
    def media_finished(self, outcome: FileOutcome) -> None: ...


class _Silent:
    def media_found(self, count: int) -> None: ...
    def frames_expected(self, count: int) -> None: ...
    def frames_done(self, count: int) -> None: ...
    def media_finished(self, outcome: FileOutcome) -> None: ...


@dataclass
class _Run:
    """Score kept for one media file while its segments are out on the cluster."""

    record: MediaRecord
    remaining: int
    total: SegmentResult


def _register_plugin(client: Client, settings: Settings) -> None:
    """Build the stages on every worker (and on workers that join later); a failure stops the run."""
    plugin = VisionWorkerPlugin(settings.shipped())
    try:
        client.register_plugin(plugin, name=plugin.name)
    except Exception as exc:  # noqa: BLE001 - whatever broke on the worker, say it before any file is touched
        raise ClusterError(f"the vision stages could not be built on the workers: {type(exc).__name__}: {exc}") from exc


IMAGES_PER_TASK = 16


def run_ingest(
    arguments: list[str],
    settings: Settings,
    client: Client,
    store: LabelStore,
    *,
    force: bool = False,
    observer: IngestObserver | None = None,
) -> IngestReport:
    """Ingest the media the arguments name (files, folders, globs); see the module's notes on faults."""
    return IngestJob(settings, client, store, force=force, observer=observer).run(arguments)


@dataclass
class _Task:
    """What one future on the cluster is for: inspecting a file, or frames of some media."""

    kind: str  # inspect, segment, images
    media_ids: list[str] = field(default_factory=list)  # segment, images
    path: str = ""  # inspect
    media_kind: str = ""  # inspect


class IngestJob:
    """One `vestis ingest` run on the client: plans, submits, and keeps score as results come back."""

    def __init__(self, settings: Settings, client: Client, store: LabelStore, *, force: bool = False,
                 observer: IngestObserver | None = None):
        self.settings = settings
        self.client = client
        # worker threads that run segments at once: long videos are cut so that they all finish together
        workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
        self.parallel = max(1, sum(int(w.get("nthreads", 1)) for w in workers))
        self.store = store
        self.force = force
        self.observer: IngestObserver = observer or _Silent()
        self.report = IngestReport(dashboard=client.dashboard_link)
        self.resources = vision_resources(client, settings.cluster.gpu)
        self.version = pipeline_version(settings)
        self.images = FrameImageStore(settings.data_dir)
        self.runs: dict[str, _Run] = {}  # media id -> its score while segments are out
        self.tasks: dict[Hashable, _Task] = {}  # future key -> what it is for, while it is out
        self.outstanding: dict[Hashable, Future] = {}
        self.pending_images: list[tuple] = []
        self.queue = as_completed([])

    def run(self, arguments: list[str]) -> IngestReport:
        store, report = self.store, self.report
        discovery = discover_media(arguments)
        for where, reason in discovery.problems:
            # Files and folders that exist get a record, so `vestis status` lists them; a path that is not
            # there (a typo, a glob matching nothing) is only in this run's report. The store holds text:
            # a name that is not UTF-8 is recorded with its bytes escaped.
            shown = printable_path(where)
            if _exists(Path(where)):
                store.record_failure(shown, "folder" if _is_folder(Path(where)) else "unknown", reason)
            self.settle(FileOutcome(shown, "failed", reason=reason), counted=False)
        self.observer.media_found(len(discovery.media))
        if not discovery.media:
            return report
        _register_plugin(self.client, self.settings)

        inspections = self.client.map(
            inspect_media, [str(m.path) for m in discovery.media], [m.kind for m in discovery.media], pure=False,
            retries=TASK_RETRIES,
        )
        for future, media in zip(inspections, discovery.media):
            self._track(future, _Task("inspect", path=str(media.path), media_kind=media.kind))
        inspections_left = len(inspections)
        try:
            for future in self.queue:
                self.outstanding.pop(future.key, None)
                task = self.tasks[future.key]
                if task.kind == "inspect":
                    inspections_left -= 1
                    self._inspected(future, task)
                    del self.tasks[future.key]  # only now: a store error above leaves it for `stop`
                    if inspections_left == 0 and self.pending_images:
                        self._submit_images()
                else:
                    del self.tasks[future.key]
                    results = _result_or_error(future, lambda err: [SegmentResult(m, error=err) for m in task.media_ids])
                    for result in results if isinstance(results, list) else [results]:
                        self.absorb(result.media_id, result)
                future.release()
        except StoreUnavailable as exc:
            self.stop(one_line(exc))
        except KeyboardInterrupt:
            self.interrupt()
        finally:
            if self.outstanding:  # stopped, or an error on the way out: leave no task running for nobody
                self.client.cancel(list(self.outstanding.values()))
        return report

    def _track(self, future: Future, task: _Task) -> None:
        self.outstanding[future.key] = future
        self.tasks[future.key] = task
        self.queue.add(future)

    def settle(self, outcome: FileOutcome, counted: bool = True) -> None:
        """Report a file's outcome; `counted`: one of the media the observer was told about (a
        discovery problem is not, so a progress bar never reads "9/8")."""
        self.report.outcomes.append(outcome)
        if counted:
            self.observer.media_finished(outcome)

    def _inspected(self, future: Future, task: _Task) -> None:
        inspection = _result_or_error(future, lambda err: Inspection(task.path, task.media_kind, error=err))
        if inspection.error:
            self.store.record_failure(task.path, task.media_kind, inspection.error, inspection.media_id)
            self.settle(FileOutcome(task.path, "failed", reason=inspection.error))
        else:
            self.start(inspection)

    def conclude(self, media_id: str) -> None:
        run = self.runs[media_id]  # popped once recorded: a store error here leaves it for `stop`
        total, record = run.total, run.record
        if total.error:
            self.store.fail_run(media_id, record.run_id, total.error)
            outcome = FileOutcome(record.path, "failed", reason=total.error)
        else:
            self.store.finish_run(media_id, record.run_id, total.frames, total.persons, total.garments, total.seconds)
            outcome = FileOutcome(record.path, "done", total.frames, total.persons, total.garments, total.seconds)
        # Pictures of frames no longer in the store (a failed run's, a replaced run's) must not be served.
        self.images.prune(media_id, self.store.frame_ids_of(media_id))
        del self.runs[media_id]
        self.settle(outcome)

    def absorb(self, media_id: str, result: SegmentResult) -> None:
        run = self.runs[media_id]
        total = run.total
        total.frames += result.frames
        total.persons += result.persons
        total.garments += result.garments
        total.seconds += result.seconds
        total.error = total.error or result.error
        self.observer.frames_done(result.frames)
        run.remaining -= 1
        if run.remaining == 0:
            self.conclude(media_id)

    def _submit_images(self) -> None:
        batch, self.pending_images = self.pending_images, []
        future = self.client.submit(process_images, batch, resources=self.resources, pure=False,
                                    retries=TASK_RETRIES)
        self._track(future, _Task("images", media_ids=[info.media_id for info, _ in batch]))

    def start(self, inspection: Inspection) -> None:
        info = inspection.info
        assert info is not None  # an inspection without one has an error and was settled
        existing = self.store.get_media(info.media_id)
        if (
            not self.force and existing is not None and existing.status == MediaStatus.DONE
            and existing.pipeline_version == self.version
        ):
            self.settle(FileOutcome(info.path, "skipped", existing.frames, existing.persons, existing.garments,
                                    reason="already done with this pipeline version"))
            return
        if info.media_id in self.runs:  # the same content under two paths: ingest it once
            self.settle(FileOutcome(info.path, "skipped",
                                    reason=f"same content as {self.runs[info.media_id].record.path}"))
            return
        record = MediaRecord(
            media_id=info.media_id, path=info.path, kind=info.kind, status=MediaStatus.PENDING,
            pipeline_version=self.version, duration=info.duration, width=info.width, height=info.height,
            run_id=uuid.uuid4().hex,
        )
        self.store.begin_run(record)
        if info.kind == "image":
            self.runs[info.media_id] = _Run(record, 1, SegmentResult(info.media_id))
            self.observer.frames_expected(1)
            self.pending_images.append((info, record.run_id))
            if len(self.pending_images) >= IMAGES_PER_TASK:
                self._submit_images()
            return
        sampling = self.settings.sampling
        segments = plan_segments(info.duration, sampling.segment_seconds, sampling.fps, self.parallel)
        self.runs[info.media_id] = _Run(record, len(segments), SegmentResult(info.media_id))
        self.observer.frames_expected(max(1, round(info.duration * sampling.fps)))
        for segment in segments:
            future = self.client.submit(
                process_segment, info, segment, record.run_id, resources=self.resources, pure=False,
                retries=TASK_RETRIES,
            )
            self._track(future, _Task("segment", media_ids=[info.media_id]))

    def interrupt(self) -> None:
        """Ctrl-C: every media not concluded is failed, in the store too (no record is left `pending`);
        `run` then cancels what is out. The next `vestis ingest` redoes them."""
        reason = "interrupted (Ctrl-C)"
        for media_id, run in list(self.runs.items()):
            try:
                self.store.fail_run(media_id, run.record.run_id, f"not finished: {reason}")
            except StoreUnavailable:
                pass  # the record stays pending; the next run redoes it all the same
        self.stop(reason)

    def stop(self, reason: str) -> None:
        """The client lost the store: every media not concluded is failed (`run` then cancels what is out)."""
        self.report.stopped = reason
        for media_id in list(self.runs):
            run = self.runs.pop(media_id)
            self.settle(FileOutcome(run.record.path, "failed", reason=run.total.error or f"not finished: {reason}"))
        for key in [k for k, task in self.tasks.items() if task.kind == "inspect"]:
            self.settle(FileOutcome(self.tasks.pop(key).path, "failed", reason=f"not finished: {reason}"))


def _exists(path: Path) -> bool:
    try:
        return path.is_file() or path.is_dir()
    except OSError:  # inside a folder that cannot be entered
        return False


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _result_or_error(future, on_error):
    """A task's result, or on_error(reason) when the task raised or its worker died."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - any task failure becomes that file's one-line reason
        return on_error(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
