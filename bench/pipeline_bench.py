"""Speed of the ingest pipeline (issue #6, speed part): decode, vision stages, end to end, Dask scaling.

    .venv/bin/python bench/pipeline_bench.py [--quick] [--out FILE] [--threads N]

- decode: frames/s of the pipeline's own sampler (pipelines.sampling.sample_frames, the ffmpeg
  select/scale/showinfo graph ingest runs) at 1 fps and at full rate, against ffmpeg decoding the same
  file by itself (decode only, and decode + rgb24 conversion) as the upper bound; ratio = pipeline
  source frames/s / ffmpeg frames/s.
- stages: each vision stage, built as a worker builds it (vision.registry.build_stages, vision.batch_size
  = the batch measured), called on batches of 1/8/32 frames as pipelines/tasks.py does, in images/s
  and, for the per-person stages, persons/s. torch threads are set explicitly (default 1: what a Dask
  worker with cluster.threads_per_worker=1 runs with).
- end_to_end: pipelines.ingest.run_ingest, as `vestis ingest` calls it, on the shared videos into a
  fresh temporary data dir (embedded store), in video-seconds per wall-second.
- scaling: the same ingest on a LocalCluster of 1 and of 2 worker processes (1 thread each).

Every figure is the median of repeated timings after a warm-up. Benchmarks never assert on speed.
`run()` returns the report as a dict and `summary_markdown()` renders it (bench/run_all.py calls both).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("VESTIS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# The stage bench feeds this many images per measurement: a multiple of the largest batch, so every
# batch size processes the same images.
FULL_BATCH_SIZES = (1, 8, 32)
FULL_IMAGES = 32
QUICK_BATCH_SIZES = (1, 8)
QUICK_IMAGES = 8
STAGE_VIDEO = "one-by-one-person-detection.mp4"  # frames for the video-frame input set
QUICK_VIDEO = "bikes.mp4"  # 10 s with a person in it: the stages do real work
WARMUP_VIDEO = "carphone_pristine.mp4"  # 4 s: loads torch and the models on each worker before timing
# fps for "full rate": far above any shared video's frame rate, so each decoded frame gets its own
# sampling bucket and every frame is kept (checked against ffmpeg's own frame count).
FULL_RATE_FPS = 1000.0
THREADS_PER_WORKER = 1


# -- helpers ---------------------------------------------------------------------------------


def _timings(work: Callable, *, repeats: int, warmup: int = 1, prepare: Callable | None = None) -> list[float]:
    """Wall seconds of `work(*prepare())` for each of `repeats` runs after `warmup` untimed ones;
    prepare() (fresh inputs) runs outside the timing."""
    times = []
    for i in range(warmup + repeats):
        args = prepare() if prepare else ()
        started = time.perf_counter()
        work(*args)
        elapsed = time.perf_counter() - started
        if i >= warmup:
            times.append(elapsed)
    return times


def _timed(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "runs_s": [round(t, 4) for t in times]}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def _cpu_info() -> dict:
    info: dict = {"model": platform.processor() or platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields = dict(re.findall(r"^(model name|vendor_id|cpu family|model|flags)\s*:\s*(.*)$", text, re.M))
    info["model"] = fields.get("model name", info["model"])
    info["vendor"] = fields.get("vendor_id")
    info["family"], info["model_number"] = fields.get("cpu family"), fields.get("model")
    flags = set(fields.get("flags", "").split())
    # The ISA extensions oneDNN picks kernels by: they explain CPU-to-CPU differences better than a name.
    info["isa"] = sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile"})
    return info


def machine_info(threads: int) -> dict:
    import dask
    import distributed
    import torch

    from pipelines.sampling import ffmpeg_binary

    try:
        mem_kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory_gib = round(mem_kb / 2**20, 1)
    except (OSError, AttributeError):
        memory_gib = None
    ffmpeg = ffmpeg_binary()
    try:
        ffmpeg_version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=30).stdout
        ffmpeg_version = ffmpeg_version.splitlines()[0].split(" Copyright")[0] if ffmpeg_version else None
    except (OSError, subprocess.SubprocessError):
        ffmpeg_version = None
    return {
        "cpu": _cpu_info(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "torch_interop_threads": torch.get_num_interop_threads(),
        "numpy": np.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "ffmpeg": ffmpeg,
        "ffmpeg_version": ffmpeg_version,
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
        # The machine is shared: the load around the run says how much the figures can be trusted.
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "git_commit": _git_commit(),
    }


_base_settings = None


def _settings(**sections):
    """The default settings with some fields of some sections replaced. The config files and VESTIS_*
    environment are read once per process: the working tree may change during a long run."""
    global _base_settings
    if _base_settings is None:
        from configs import load_settings

        _base_settings = load_settings(None)
    update = {name: getattr(_base_settings, name).model_copy(update=values) if isinstance(values, dict) else values
              for name, values in sections.items()}
    return _base_settings.model_copy(update=update)


# -- decode ----------------------------------------------------------------------------------


def _ffmpeg_frames(path: Path, output_args: list[str]) -> int:
    """Run ffmpeg on the whole file, output discarded; the frame count from its -progress report."""
    from pipelines.sampling import ffmpeg_binary

    command = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-progress", "pipe:1",
               "-i", str(path), *output_args]
    done = subprocess.run(command, capture_output=True, check=True)
    counts = re.findall(rb"^frame=(\d+)", done.stdout, re.M)
    return int(counts[-1]) if counts else 0


# ffmpeg threads are left at ffmpeg's default (auto), as the pipeline's own ffmpeg process runs.
FFMPEG_BOUNDS = {
    "ffmpeg_decode_only": ["-f", "null", "-y", os.devnull],
    "ffmpeg_decode_rgb24": ["-f", "rawvideo", "-pix_fmt", "rgb24", "-y", os.devnull],
}


def bench_decode(videos: list[Path], *, repeats: int, warmup: int = 1) -> dict:
    from pipelines.probe import probe_video
    from pipelines.sampling import sample_frames

    sampling = _settings().sampling
    results = []
    for path in videos:
        info = probe_video(path)
        entry: dict = {"video": path.name, "width": info.width, "height": info.height,
                       "frame_rate": round(info.frame_rate, 3), "duration_s": round(info.duration, 3)}
        frames: dict[str, int] = {}
        for name, output_args in FFMPEG_BOUNDS.items():
            def decode_alone(name=name, output_args=output_args):
                frames[name] = _ffmpeg_frames(path, output_args)

            times = _timings(decode_alone, repeats=repeats, warmup=warmup)
            entry[name] = {"output_args": " ".join(output_args), **_timed(times)}
        source_frames = frames["ffmpeg_decode_only"]
        entry["source_frames"] = source_frames
        for name in FFMPEG_BOUNDS:
            entry[name]["frames_per_s"] = source_frames / entry[name]["median_s"]
        for name, fps in (("pipeline_1fps", sampling.fps), ("pipeline_full_rate", FULL_RATE_FPS)):
            kept: list[int] = []

            def decode(fps=fps):
                kept.append(sum(1 for _ in sample_frames(path, fps=fps, shot_threshold=sampling.shot_threshold,
                                                         max_side=sampling.max_side)))

            times = _timings(decode, repeats=repeats, warmup=warmup)
            figures = {"fps": fps, "shot_threshold": sampling.shot_threshold, "max_side": sampling.max_side,
                       **_timed(times), "sampled_frames": kept[-1]}
            median = figures["median_s"]
            # Every source frame is decoded whatever the sampling rate, so source frames/s is what
            # compares with ffmpeg's own decode.
            figures["source_frames_per_s"] = source_frames / median
            figures["sampled_frames_per_s"] = kept[-1] / median
            figures["video_s_per_wall_s"] = info.duration / median
            for bound in FFMPEG_BOUNDS:
                figures[f"ratio_to_{bound}"] = figures["source_frames_per_s"] / entry[bound]["frames_per_s"]
            entry[name] = figures
        entry["pipeline_full_rate"]["all_frames_kept"] = entry["pipeline_full_rate"]["sampled_frames"] == source_frames
        results.append(entry)
    return {
        "parameters": {
            "repeats": repeats, "warmup_runs": warmup, "statistic": "median",
            "ffmpeg": "whole file, `ffmpeg -nostdin -i FILE <output_args>`, output discarded, threads = ffmpeg default",
            "pipeline": "pipelines.sampling.sample_frames on the whole file (one ffmpeg process: select + scale + "
                        "showinfo, rgb24 frames read into numpy), all frames consumed",
            "full_rate": f"sample_frames with fps={FULL_RATE_FPS} so every frame falls in its own bucket",
            "ratio": "pipeline source frames/s divided by ffmpeg frames/s (1.0 = as fast as ffmpeg alone)",
        },
        "units": {"*_s": "seconds", "*frames_per_s": "frames per second",
                  "video_s_per_wall_s": "seconds of video per wall-clock second", "ratio_*": "dimensionless"},
        "videos": results,
    }


# -- vision stages ---------------------------------------------------------------------------


def load_photos(folder: Path, count: int) -> list[np.ndarray]:
    """The first `count` photos by name, read as ingest reads a photo (EXIF rotation, max_side)."""
    from pipelines.sampling import load_image

    max_side = _settings().sampling.max_side
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:count]
    # np.array copies: the read-only array PIL hands out makes torch warn in the stages.
    return [np.array(load_image(p, max_side)) for p in paths]


def load_video_frames(video: Path, count: int) -> list[np.ndarray]:
    """`count` of the video's 1 fps samples (as ingest samples it), evenly spread over the whole video."""
    from pipelines.sampling import sample_frames

    sampling = _settings().sampling
    frames = [f.image for f in sample_frames(video, fps=sampling.fps, shot_threshold=sampling.shot_threshold,
                                             max_side=sampling.max_side)]
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return [frames[i] for i in picks]


def bench_stages(
    image_sets: dict[str, list[np.ndarray]], *, batch_sizes=FULL_BATCH_SIZES, repeats: int, warmup: int = 1,
    threads: int = THREADS_PER_WORKER, device: str = "cpu", stage_names: list[str] | None = None,
) -> dict:
    import torch

    from labels import FrameLabels
    from vision.registry import build_stages
    from vision.stage import Frame

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = []
        for batch_size in batch_sizes:
            vision = {"device": device, "batch_size": batch_size}
            if stage_names is not None:
                vision["stages"] = stage_names
            # Built per batch size, exactly as a worker builds them for vision.batch_size.
            stages = build_stages(_settings(vision=vision))
            for set_name, images in image_sets.items():
                # Each stage gets what ingest hands it: the labels the stages before it made (in their
                # last timed run), copied fresh for every run since the stages add to them.
                before: list[FrameLabels] = [Frame.of_photo(im, f"{set_name}-{i}", "bench").labels
                                             for i, im in enumerate(images)]
                for stage in stages:
                    last: list = []

                    def prepare(before=before):
                        return ([Frame(im, labels.model_copy(deep=True)) for im, labels in zip(images, before)],)

                    def work(frames, stage=stage, last=last):
                        for start in range(0, len(frames), batch_size):
                            stage(frames[start:start + batch_size])
                        last[:] = frames

                    def warm(frames, stage=stage):  # one batch: loads kernels for this batch shape
                        stage(frames[:batch_size])

                    _timings(warm, repeats=0, warmup=warmup, prepare=prepare)
                    times = _timings(work, repeats=repeats, warmup=0, prepare=prepare)
                    median = statistics.median(times)
                    entry = {"stage": stage.name, "model_version": stage.model_version, "input": set_name,
                             "batch_size": batch_size, "images": len(images), **_timed(times),
                             "images_per_s": len(images) / median, "ms_per_image": 1000 * median / len(images)}
                    persons = sum(len(labels.persons) for labels in before)
                    if persons:  # a stage that works per person (garments, face_expression)
                        entry["persons"] = persons
                        entry["persons_per_s"] = persons / median
                    entry["persons_after"] = sum(len(f.labels.persons) for f in last)
                    results.append(entry)
                    before = [f.labels for f in last]  # what the next stage starts from, as in ingest
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "parameters": {
            "batch_sizes": list(batch_sizes), "repeats": repeats, "warmup": f"{warmup} call(s) of one batch",
            "statistic": "median", "torch_threads": threads, "device": device,
            "inputs": {name: {"images": len(ims), "sizes": sorted({f"{im.shape[1]}x{im.shape[0]}" for im in ims})}
                       for name, ims in image_sets.items()},
            "call": "stage(frames[i:i+batch]) over all images, stages built with vision.batch_size=batch; each stage "
                    "gets the labels of the stages before it in vision.stages order",
        },
        "units": {"*_s": "seconds", "images_per_s": "images per second", "persons_per_s": "persons per second",
                  "ms_per_image": "milliseconds"},
        "results": results,
    }


# -- end to end and scaling ------------------------------------------------------------------


class _PhaseClock:
    """An ingest observer that notes when the first file is planned: before it, discovery and the
    plugin registration (every worker builds the stages: model loading) and the first probe."""

    def __init__(self):
        self.started = time.perf_counter()
        self.first_planned: float | None = None

    def media_found(self, count: int) -> None: ...

    def frames_expected(self, count: int) -> None:
        if self.first_planned is None:
            self.first_planned = time.perf_counter()

    def frames_done(self, count: int) -> None: ...

    def media_finished(self, outcome) -> None: ...


def _ingest_once(videos: list[Path], cluster_settings, client) -> dict:
    from indexer import open_store
    from pipelines.ingest import run_ingest

    with tempfile.TemporaryDirectory(prefix="vestis-bench-") as data_dir:
        settings = cluster_settings.model_copy(update={"data_dir": Path(data_dir)})
        store = open_store(settings)
        try:
            clock = _PhaseClock()
            report = run_ingest([str(v) for v in videos], settings, client, store, observer=clock)
            wall = time.perf_counter() - clock.started
        finally:
            store.close()
    failed = [f"{o.name}: {o.status} {o.reason}" for o in report.outcomes if o.status != "done"]
    if failed:
        raise RuntimeError(f"ingest did not process every video, so its timing means nothing: {failed}")
    return {
        "wall_s": wall,
        "load_1min_after": _load(),
        "setup_s": (clock.first_planned or clock.started) - clock.started,
        "frames": sum(o.frames for o in report.outcomes),
        "persons": sum(o.persons for o in report.outcomes),
        "garments": sum(o.garments for o in report.outcomes),
        "task_s": sum(o.seconds for o in report.outcomes),
    }


def bench_ingest(videos: list[Path], *, worker_counts: list[int], repeats: int, warmup_video: Path | None,
                 device: str = "cpu") -> dict:
    """Per worker count: one LocalCluster (as `vestis ingest --workers N` starts it), a warm-up ingest,
    then `repeats` timed ingests of `videos`, each into a fresh data dir."""
    from pipelines.cluster import connect
    from pipelines.probe import probe_video

    video_seconds = sum(probe_video(v).duration for v in videos)
    by_workers = {}
    for workers in worker_counts:
        # The embedded store whatever the environment says (VESTIS_STORE__ELASTICSEARCH_URL).
        settings = _settings(vision={"device": device}, store={"elasticsearch_url": None},
                             cluster={"workers": workers, "threads_per_worker": THREADS_PER_WORKER,
                                      "gpu": "off" if device == "cpu" else "auto"})
        started = time.perf_counter()
        with connect(settings) as client:
            client.wait_for_workers(workers, timeout=120)
            cluster_start = time.perf_counter() - started
            actual = len(client.scheduler_info(n_workers=-1)["workers"])
            if warmup_video is not None:
                _ingest_once([warmup_video], settings, client)
            runs = [_ingest_once(videos, settings, client) for _ in range(repeats)]
        wall = statistics.median(r["wall_s"] for r in runs)
        steady = statistics.median(r["wall_s"] - r["setup_s"] for r in runs)
        by_workers[workers] = {
            "workers": actual, "threads_per_worker": THREADS_PER_WORKER, "cluster_start_s": cluster_start,
            "wall_s": wall, "runs_wall_s": [round(r["wall_s"], 3) for r in runs],
            # other work on a shared machine shows here first: a run with a high load is slow for that
            "runs_load_1min_after": [r["load_1min_after"] for r in runs],
            "setup_s": statistics.median(r["setup_s"] for r in runs), "after_setup_s": steady,
            "video_s_per_wall_s": video_seconds / wall,
            "video_s_per_wall_s_after_setup": video_seconds / steady,
            "video_s_per_wall_s_with_cluster_start": video_seconds / (wall + cluster_start),
            "sampled_frames_per_s": runs[0]["frames"] / wall,
            "frames": runs[0]["frames"], "persons": runs[0]["persons"], "garments": runs[0]["garments"],
            "task_s": statistics.median(r["task_s"] for r in runs),
        }
    return {"videos": [v.name for v in videos], "video_s": video_seconds, "by_workers": by_workers}


def _ingest_parameters(settings, repeats: int, warmup_video: Path | None, device: str) -> dict:
    return {
        "stages": settings.vision.stages, "batch_size": settings.vision.batch_size, "device": device,
        "fps": settings.sampling.fps, "shot_threshold": settings.sampling.shot_threshold,
        "max_side": settings.sampling.max_side, "segment_seconds": settings.sampling.segment_seconds,
        "threads_per_worker": THREADS_PER_WORKER, "torch_threads_per_worker": THREADS_PER_WORKER,
        "repeats": repeats, "statistic": "median",
        "warmup": f"one ingest of {warmup_video.name} on each cluster first" if warmup_video else "none",
        "store": "embedded, fresh temporary data dir per run",
        "wall": "run_ingest call: discovery, stage building on every worker (model loading), probing, "
                "decode + stages + store writes; cluster start is reported apart",
        "setup": "run_ingest start to the first file planned (model loading on the workers, first probe)",
    }


# -- the report ------------------------------------------------------------------------------


def _shared_videos(data: Path) -> list[Path]:
    videos = sorted((data / "videos").glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"no videos in {data / 'videos'}: the benchmarks need the shared data")
    return videos


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _log(message: str) -> None:
    sys.stderr.write(f"[pipeline_bench] {message}\n")
    sys.stderr.flush()


def _section(report: dict, names: tuple[str, ...], build: Callable[[], tuple[dict, ...]]) -> None:
    """Run one part of the benchmark; a part that raises is recorded as its error and the others still
    run (a 15-minute run should not lose its decode figures to a broken ingest)."""
    _log(f"{' + '.join(names)} ...")
    load_before, started = _load(), time.perf_counter()
    try:
        parts = build()
    except Exception as exc:  # noqa: BLE001 - any failure becomes the section's one-line error
        traceback.print_exc()
        parts = tuple({"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]} for _ in names)
    elapsed = time.perf_counter() - started
    for name, part in zip(names, parts):
        # 1-minute load average around the part: on a shared machine it says how far to trust it.
        report[name] = {**part, "load_average_1min": [load_before, _load()], "section_wall_s": elapsed}
    _log(f"{' + '.join(names)} done in {elapsed:.0f} s")


def run(quick: bool = False, *, threads: int = THREADS_PER_WORKER, device: str = "cpu",
        data: Path = SHARED_DATA) -> dict:
    """The pipeline speed report. quick: one short video, 8 images at batch 1 and 8, one repeat (~1 min)."""
    started = time.perf_counter()
    videos = _shared_videos(data)
    by_name = {v.name: v for v in videos}
    repeats = 1 if quick else 5
    stage_repeats = 1 if quick else 3
    ingest_repeats = 1 if quick else 3
    report: dict = {
        "benchmark": "pipeline", "quick": quick,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(threads),
    }
    shortest_first = sorted(videos, key=lambda v: v.stat().st_size)
    short_video = by_name.get(QUICK_VIDEO, shortest_first[0])
    decode_videos = [short_video] if quick else videos
    _section(report, ("decode",), lambda: (bench_decode(decode_videos, repeats=repeats),))

    def stages() -> tuple[dict]:
        count = QUICK_IMAGES if quick else FULL_IMAGES
        image_sets = {"ccp_photos": load_photos(data / "ccp" / "images", count)}
        if not quick and STAGE_VIDEO in by_name:
            image_sets[f"video_frames ({STAGE_VIDEO}, 1 fps samples)"] = load_video_frames(by_name[STAGE_VIDEO], count)
        return (bench_stages(image_sets, batch_sizes=QUICK_BATCH_SIZES if quick else FULL_BATCH_SIZES,
                             repeats=stage_repeats, threads=threads, device=device),)

    _section(report, ("stages",), stages)

    def ingest() -> tuple[dict, dict]:
        ingest_videos = [short_video] if quick else videos
        warmup_video = by_name.get(WARMUP_VIDEO)
        # As pipelines.cluster.connect sizes a LocalCluster without GPUs: one single-threaded worker per core.
        default_workers = max(1, (os.cpu_count() or 1) // THREADS_PER_WORKER)
        counts = sorted({1, 2, default_workers})
        measured = bench_ingest(ingest_videos, worker_counts=counts, repeats=ingest_repeats,
                                warmup_video=warmup_video, device=device)
        parameters = {**_ingest_parameters(_settings(), ingest_repeats, warmup_video, device),
                      "videos": measured["videos"], "video_s": measured["video_s"]}
        end_to_end = {
            "parameters": {**parameters, "workers": default_workers,
                           "workers_note": "the default LocalCluster size on this machine"},
            "units": {"*_s": "seconds", "video_s_per_wall_s*": "seconds of video per wall-clock second",
                      "sampled_frames_per_s": "frames per second"},
            **measured["by_workers"][default_workers],
        }
        base = measured["by_workers"][1]
        scaling = {
            "parameters": {**parameters, "note": f"{os.cpu_count()} logical CPUs on this machine; ffmpeg and the "
                                                 "store writes share them with the workers"
                                                 + ("; quick: one short video is one segment task, so a second "
                                                    "worker has nothing to do" if quick else "")},
            "units": {"*_s": "seconds", "speedup": "wall(1 worker) / wall(N workers)", "efficiency": "speedup / N"},
            "runs": [
                {**r, "speedup": base["wall_s"] / r["wall_s"],
                 "speedup_after_setup": base["after_setup_s"] / r["after_setup_s"],
                 "efficiency": base["wall_s"] / r["wall_s"] / n}
                for n, r in sorted(measured["by_workers"].items())
            ],
        }
        return end_to_end, scaling

    _section(report, ("end_to_end", "scaling"), ingest)
    report["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    # Parts that raised (their error is in the part): a caller should treat a non-empty list as a failure.
    report["failed"] = [name for name in ("decode", "stages", "end_to_end", "scaling") if "error" in report[name]]
    report["duration_s"] = time.perf_counter() - started
    return report


def _f(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _load_note(section: dict) -> str:
    load = section.get("load_average_1min")
    return f" Load average (1 min) {load[0]} before, {load[1]} after." if load and None not in load else ""


def _decode_lines(decode: dict) -> list[str]:
    lines = ["| video | frames | ffmpeg decode only | ffmpeg + rgb24 | pipeline 1 fps | ratio | pipeline full rate "
             "| ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v in decode["videos"]:
        one, full = v["pipeline_1fps"], v["pipeline_full_rate"]
        lines.append(
            f"| {v['video']} ({v['width']}x{v['height']}, {v['duration_s']:.0f} s) | {v['source_frames']} | "
            f"{_f(v['ffmpeg_decode_only']['frames_per_s'], 0)} | {_f(v['ffmpeg_decode_rgb24']['frames_per_s'], 0)} | "
            f"{_f(one['source_frames_per_s'], 0)} | {_f(one['ratio_to_ffmpeg_decode_only'], 2)} | "
            f"{_f(full['source_frames_per_s'], 0)} | {_f(full['ratio_to_ffmpeg_decode_rgb24'], 2)} |")
    return lines + ["", "Ratios: pipeline / ffmpeg decode only (1 fps) and pipeline / ffmpeg + rgb24 (full rate); "
                    "at 1 fps the pipeline converts only the sampled frames to RGB." + _load_note(decode)]


def _stage_lines(stages: dict) -> list[str]:
    lines = ["| stage | input | batch | images/s | persons/s | ms/image |", "|---|---|---:|---:|---:|---:|"]
    order = {name: i for i, name in reversed(list(enumerate(r["stage"] for r in stages["results"])))}
    inputs = {name: i for i, name in reversed(list(enumerate(r["input"] for r in stages["results"])))}
    for r in sorted(stages["results"], key=lambda r: (order[r["stage"]], inputs[r["input"]], r["batch_size"])):
        lines.append(f"| {r['stage']} | {r['input']} | {r['batch_size']} | {_f(r['images_per_s'], 2)} | "
                     f"{_f(r.get('persons_per_s'), 2)} | {_f(r['ms_per_image'], 0)} |")
    return lines + (["", _load_note(stages).strip()] if _load_note(stages) else [])


def _end_to_end_lines(e2e: dict) -> list[str]:
    p = e2e["parameters"]
    return [f"{len(p['videos'])} video(s), {p['video_s']:.0f} s of video, {e2e['workers']} workers x "
            f"{e2e['threads_per_worker']} thread, stages {', '.join(p['stages'])}, {p['fps']:g} fps sampling: "
            f"{e2e['frames']} frames, {e2e['persons']} persons, {e2e['garments']} garments.", "",
            "| wall s | video-s per wall-s | after setup | with cluster start | frames/s | setup s |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {_f(e2e['wall_s'])} | {_f(e2e['video_s_per_wall_s'], 2)} | "
            f"{_f(e2e['video_s_per_wall_s_after_setup'], 2)} | {_f(e2e['video_s_per_wall_s_with_cluster_start'], 2)}"
            f" | {_f(e2e['sampled_frames_per_s'], 2)} | {_f(e2e['setup_s'])} |", "",
            "Setup: the run's start to the first file planned (stages built on every worker, first probe)."
            + _load_note(e2e)]


def _scaling_lines(scaling: dict) -> list[str]:
    lines = ["| workers | wall s | video-s per wall-s | speedup | speedup after setup | efficiency |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in scaling["runs"]:
        lines.append(f"| {r['workers']} | {_f(r['wall_s'])} | {_f(r['video_s_per_wall_s'], 2)} | "
                     f"{_f(r['speedup'], 2)} | {_f(r['speedup_after_setup'], 2)} | {_f(r['efficiency'], 2)} |")
    return lines + ["", f"Note: {scaling['parameters']['note']}."]


def summary_markdown(report: dict) -> str:
    """Short markdown tables of the report (sections missing from the report are left out)."""
    lines = ["## Pipeline speed" + (" (quick run)" if report.get("quick") else ""), ""]
    machine = report.get("machine")
    if machine:
        cpu = machine.get("cpu", {})
        lines += [
            f"Machine: {cpu.get('model')} ({machine.get('logical_cpus')} logical CPUs, {machine.get('memory_gib')} "
            f"GiB), GPU: {machine.get('gpu') or 'none'}; torch {machine.get('torch')}, {machine.get('torch_threads')} "
            f"thread(s) in the stage bench and 1 per worker; {machine.get('ffmpeg_version') or 'ffmpeg'}"
            f"{'; commit ' + machine['git_commit'] if machine.get('git_commit') else ''}.", ""]
    sections = [
        ("decode", lambda d: f"Decode (source frames/s, median of {d['parameters']['repeats']})", _decode_lines),
        ("stages", lambda d: f"Vision stages ({d['parameters']['device']}, {d['parameters']['torch_threads']} torch "
                             f"thread(s), median of {d['parameters']['repeats']})", _stage_lines),
        ("end_to_end", lambda d: f"End to end (`run_ingest`, median of {d['parameters']['repeats']})",
         _end_to_end_lines),
        ("scaling", lambda d: "Scaling (the same ingest on a LocalCluster of N single-threaded worker processes)",
         _scaling_lines),
    ]
    for key, title, body in sections:
        section = report.get(key)
        if not section:
            continue
        if "error" in section:
            lines += [f"### {key}: failed", "", f"`{section['error']}`", ""]
            continue
        lines += [f"### {title(section)}", "", *body(section), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke check: one short video, fewer images and repeats")
    parser.add_argument("--out", type=Path, help="write the JSON report here (default: print it)")
    parser.add_argument("--threads", type=int, default=THREADS_PER_WORKER, help="torch threads for the stage bench")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder")
    args = parser.parse_args(argv)
    report = run(args.quick, threads=args.threads, data=args.data)
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    sys.stderr.write(summary_markdown(report) + "\n")
    if report["failed"]:  # a broken part is an error; a slow one never is
        sys.exit(f"failed: {', '.join(report['failed'])}")


if __name__ == "__main__":
    main()
