"""What runs on the Dask workers: probing, and frames through the vision stages into the store.

Models and the store connection are built once per worker by `VisionWorkerPlugin`; tasks carry
only small descriptions (paths, segment bounds) and return small summaries.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from distributed import WorkerPlugin, get_worker

from configs import Settings
from indexer import StoreUnavailable, open_store
from indexer.frame_images import FrameImageStore
from pipelines.media import MediaError, MediaInfo, check_unchanged, fingerprint, frame_id
from pipelines.probe import probe_media
from pipelines.sampling import load_image, sample_frames
from pipelines.segments import Segment
from labels import FrameLabels
from vision.registry import build_stages, run_stages
from vision.stage import Frame

PLUGIN_NAME = "vestis-vision"
log = logging.getLogger(__name__)


class VisionWorkerPlugin(WorkerPlugin):
    """Loads the vision models and opens the store once per worker process."""

    name = PLUGIN_NAME

    def __init__(self, settings_values: dict):
        self.settings_values = settings_values

    def setup(self, worker=None):
        self.settings = Settings.from_dict(self.settings_values)
        self.stages = build_stages(self.settings)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.settings.cluster.threads_per_worker)
        self.images = FrameImageStore(self.settings.data_dir, self.settings.sampling.thumbnail_side)
        self._store = None
        self._store_lock = threading.Lock()

    @property
    def store(self):
        """Opened on first use, not in setup: a worker (re)started while the store is unreachable still
        comes up, and its tasks fail their media with the store's reason (then the next run redoes them)."""
        with self._store_lock:
            if self._store is None:
                self._store = open_store(self.settings)
            return self._store

    def teardown(self, worker=None):
        store = getattr(self, "_store", None)
        if store is not None:
            store.close()


def _plugin() -> VisionWorkerPlugin:
    plugin = get_worker().plugins[PLUGIN_NAME]
    assert isinstance(plugin, VisionWorkerPlugin)
    return plugin


@dataclass
class Inspection:
    path: str
    kind: str
    info: MediaInfo | None = None
    media_id: str | None = None
    error: str | None = None


@dataclass
class SegmentResult:
    media_id: str
    frames: int = 0
    persons: int = 0
    garments: int = 0
    seconds: float = 0.0
    error: str | None = None


def inspect_media(path: str, kind: str) -> Inspection:
    try:
        return Inspection(path, kind, info=probe_media(Path(path), kind))
    except MediaError as exc:
        try:
            media_id = fingerprint(Path(path))
        except MediaError:
            media_id = None
        return Inspection(path, kind, media_id=media_id, error=str(exc))


class _FrameSink:
    """Batches frames (of one or many media files) through the stages and into the store."""

    def __init__(self, plugin: VisionWorkerPlugin):
        self.plugin = plugin
        self.pending: list[tuple[Frame, str, SegmentResult]] = []

    def add(self, frame: Frame, run_id: str, result: SegmentResult) -> None:
        self.pending.append((frame, run_id, result))
        if len(self.pending) >= self.plugin.settings.vision.batch_size:
            self.flush()

    def flush(self) -> None:
        """Stages, thumbnails, then one bulk write per run. A result counts only frames that were
        written; StoreUnavailable (the store's own retries spent) propagates to the task."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        frames = run_stages(self.plugin.stages, [frame for frame, _, _ in pending])
        by_run: dict[str, tuple[list[FrameLabels], SegmentResult]] = {}
        for frame, (_, run_id, result) in zip(frames, pending):
            self.plugin.images.save(frame.labels.media_id, frame.labels.frame_id, frame.image)
            by_run.setdefault(run_id, ([], result))[0].append(frame.labels)
        for run_id, (labels, result) in by_run.items():
            self.plugin.store.write_frames(run_id, labels)
            result.frames += len(labels)
            result.persons += sum(len(f.persons) for f in labels)
            result.garments += sum(f.garment_count for f in labels)


def one_line(exc: Exception) -> str:
    """An exception's message as a media file's reason: one line, at most 300 characters."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def process_segment(info: MediaInfo, segment: Segment, run_id: str) -> SegmentResult:
    plugin = _plugin()
    sampling = plugin.settings.sampling
    result = SegmentResult(info.media_id)
    started = time.perf_counter()
    sink = _FrameSink(plugin)
    try:
        for sampled in sample_frames(
            info.path, fps=sampling.fps, shot_threshold=sampling.shot_threshold, max_side=sampling.max_side,
            start=segment.start, end=segment.end,
        ):
            timestamp = max(0.0, sampled.pts_time - info.start_time)
            height, width = sampled.image.shape[:2]
            labels = FrameLabels(
                frame_id=frame_id(info.media_id, timestamp), media_id=info.media_id, timestamp=timestamp,
                reason=sampled.reason, width=width, height=height,
            )
            sink.add(Frame(sampled.image, labels), run_id, result)
        sink.flush()
        check_unchanged(info)  # after the decode: frames of a file replaced meanwhile fail the media
    except MediaError as exc:
        result.error = str(exc)
    except StoreUnavailable as exc:
        # Not raised: the store already retried with backoff, and a Dask retry would redo the
        # stages only to wait again. The media fails with this reason; the next ingest redoes it.
        result.error = one_line(exc)
    result.seconds = time.perf_counter() - started
    return result


def process_images(items: list[tuple[MediaInfo, str]]) -> list[SegmentResult]:
    """A batch of photos, each its own media file with its own run id."""
    plugin = _plugin()
    sink = _FrameSink(plugin)
    results = [SegmentResult(info.media_id) for info, _ in items]
    started = time.perf_counter()
    try:
        for (info, run_id), result in zip(items, results):
            try:
                image = load_image(info.path, plugin.settings.sampling.max_side)
                check_unchanged(info)
            except MediaError as exc:
                result.error = str(exc)
                continue
            height, width = image.shape[:2]
            labels = FrameLabels(
                frame_id=frame_id(info.media_id, 0.0), media_id=info.media_id, timestamp=0.0, reason="image",
                width=width, height=height,
            )
            sink.add(Frame(image, labels), run_id, result)
        sink.flush()
    except StoreUnavailable as exc:  # as in process_segment: every photo not written fails with the reason
        for result in results:
            if not result.error and not result.frames:
                result.error = one_line(exc)
    elapsed = (time.perf_counter() - started) / max(1, len(items))
    for result in results:
        result.seconds = elapsed
    return results
