"""`vestis ingest` end to end, as a user runs it: real Dask workers, CPU per video-second, worker memory.

    .venv/bin/python bench/ingest_bench.py [VIDEOS ...] [--repeats 1] [--out FILE] [-- --set k=v ...]

Each run is the `vestis ingest` command in a subprocess (a fresh LocalCluster, the embedded store in a
fresh temporary data dir, default settings unless `--set` says otherwise). While it runs, its process
tree is sampled every 0.2 s (psutil): CPU seconds of the client, the Dask nannies, the workers and
ffmpeg, and the largest resident memory of any worker. Figures per run:

- wall_s: the whole command, cluster start and model loading included;
- work_s: from the first frame decoded (the first ffmpeg started) to the command's end, which is
  what the progress bar shows;
- video_s_per_wall_s (whole command and over the work), cpu_s_per_video_s (user + sys of the whole
  tree, exact: the children's rusage once the command ended), the CPU by process kind (sampled, so
  a short-lived ffmpeg may lose its last 0.2 s), and the peak worker RSS.

Speed depends on what else runs: the load average before and after each run is in the report.
Benchmarks never assert on speed.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_average, number, write_report  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VIDEOS = REPO_ROOT.parent / "shared" / "data" / "videos"
SAMPLE_SECONDS = 0.2


def _kind(process: psutil.Process, root_pid: int) -> str:
    """client (the vestis command), worker, nanny (a worker's parent), ffmpeg or other."""
    try:
        if process.pid == root_pid:
            return "client"
        name = process.name()
        if "ffmpeg" in name or "ffprobe" in name:
            return "ffmpeg"
        children = process.children()
        if any("python" in child.name() for child in children):
            return "nanny"
        return "worker" if "python" in name else "other"
    except psutil.Error:
        return "other"


class _TreeSampler(threading.Thread):
    """Samples a process tree until stopped: last CPU times per process, peak RSS per kind."""

    def __init__(self, root: psutil.Process):
        super().__init__(daemon=True)
        self.root = root
        self.cpu: dict[int, tuple[str, float]] = {}
        self.peak_rss: dict[str, int] = {}
        self.first_ffmpeg: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            for process in tree:
                kind = _kind(process, self.root.pid)
                try:
                    times = process.cpu_times()
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                self.cpu[process.pid] = (kind, times.user + times.system)
                self.peak_rss[kind] = max(self.peak_rss.get(kind, 0), rss)
                if kind == "ffmpeg" and self.first_ffmpeg is None:
                    self.first_ffmpeg = time.perf_counter()
            self.done.wait(SAMPLE_SECONDS)


def _video_seconds(videos: list[str]) -> float:
    from pipelines.probe import probe_video

    paths = [p for v in videos for p in (sorted(Path(v).glob("*.mp4")) if Path(v).is_dir() else [Path(v)])]
    return sum(probe_video(p).duration for p in paths)


def ingest_once(videos: list[str], extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="vestis-ingest-bench-") as data_dir:
        command = [str(Path(sys.executable).with_name("vestis")), "ingest", *videos, "--data-dir", data_dir, *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = load_average()
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = _TreeSampler(psutil.Process(process.pid))
        sampler.start()
        _, stderr = process.communicate()
        wall = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {stderr[-2000:]}")
    by_kind: dict[str, float] = {}
    for kind, seconds in sampler.cpu.values():
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds
    return {
        "wall_s": wall,
        "work_s": wall - ((sampler.first_ffmpeg or started) - started),
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "cpu_s_by_kind_sampled": {k: round(v, 2) for k, v in sorted(by_kind.items())},
        "peak_rss_mib": {k: round(v / 2**20) for k, v in sorted(sampler.peak_rss.items())},
        "load_average_before": load_before, "load_average_after": load_average(),
    }


def run(videos: list[str], repeats: int, extra: list[str]) -> dict:
    video_s = _video_seconds(videos)
    runs = [ingest_once(videos, extra) for _ in range(repeats)]
    for r in runs:
        r["video_s_per_wall_s"] = video_s / r["wall_s"]
        r["video_s_per_wall_s_over_work"] = video_s / r["work_s"]
        r["cpu_s_per_video_s"] = r["cpu_s"] / video_s
    return {"benchmark": "ingest", "command": ["vestis", "ingest", *videos, *extra], "video_s": video_s,
            "cpus": os.cpu_count(), "runs": runs}


def summary_markdown(report: dict) -> str:
    lines = [f"`{' '.join(report['command'])}`: {report['video_s']:.0f} s of video, {report['cpus']} CPUs", "",
             "| run | wall s | work s | video-s per wall-s (whole / work) | CPU s per video-s | CPU s: client / nanny / worker / ffmpeg | peak worker RSS MiB | load before → after |",
             "|---:|---:|---:|---:|---:|---|---:|---|"]
    for k, r in enumerate(report["runs"], start=1):
        cpu = r["cpu_s_by_kind_sampled"]
        lines.append(
            f"| {k} | {number(r['wall_s'])} | {number(r['work_s'])} | {r['video_s_per_wall_s']:.2f} / "
            f"{r['video_s_per_wall_s_over_work']:.2f} | {r['cpu_s_per_video_s']:.2f} | "
            + " / ".join(number(cpu.get(kind)) for kind in ("client", "nanny", "worker", "ffmpeg"))
            + f" | {r['peak_rss_mib'].get('worker', '-')} | {r['load_average_before'][0]} → {r['load_average_after'][0]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", default=[str(DEFAULT_VIDEOS)])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here (else: JSON on stdout)")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    report = run(args.videos, args.repeats, extra)
    write_report(report, args.out, summary_markdown(report))


if __name__ == "__main__":
    main()
