"""HTTP load test (issue #7): the real app under uvicorn on loopback, N concurrent clients for a fixed
time, mixed searches, thumbnails and annotated frames; requests/s, errors and latency p50/p95/p99.

    .venv/bin/python bench/load_test.py [--quick] [--duration 30] [--clients 8] [--frames 20000]
        [--seed N] [--only thumbnail|search|frame] [--out FILE]

A benchmark, not a test: nothing is asserted about speed; an error is any answer but 200 (every
request sent is a valid one) or a failed connection, and is counted and sampled in the report.

Store. bench/index_bench.py's generator (`generate`, the same seed gives the same frames): `frames`
synthetic frame documents (default 20,000: about 54 videos, 5.5 hours at 1 fps), written through the
LabelStore API into an embedded store in a temporary data folder, as the ingest does. Every frame gets
the same small stored JPEG (640x360, what ingest keeps), so the image endpoints decode, draw and
encode real pictures. Building it is timed apart (`store.build_s`) and not part of the load.

Server. `python bench/load_test.py --serve DATA_DIR` in a child process: create_app over that store
with the exact-words query parser (no text model: the same answers everywhere, and no model to load),
served by uvicorn (one process, FastAPI's thread pool for the endpoints) on a free 127.0.0.1 port. It
has its own process, so the clients' Python does not share its interpreter lock; on a small machine
they still share the CPUs, which the report's load average and server CPU time show.

Load. `clients` threads, each with its own keep-alive httpx client, send requests back to back (a
closed loop, no think time) until `duration_s` is over. Each request is drawn (by a per-client
`random.Random(seed + client)`) from the mix: 70% /search (index_bench.QUERIES: narrow, broad, negated,
a media filter, a time window, a confidence floor; a tenth of them ask for page 2 with a cursor),
20% a moment's thumbnail, 10% a best frame with its boxes drawn (/frames/{id}.jpg?overlay=boxes).
Thumbnails and frames are those the searches return, collected in a warm-up pass before timing.
Latency is the wall time from sending a request to having read its whole body, per request; the
percentiles interpolate linearly (index_bench.percentile).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import load_average, number, write_report  # noqa: E402
from bench.index_bench import QUERIES, SEED, QuerySpec, generate, percentile  # noqa: E402

FRAMES = 20_000
DURATION_S = 30.0
CLIENTS = 8
QUICK_FRAMES = 2_000
QUICK_DURATION_S = 3.0
QUICK_CLIENTS = 4
BATCH_SIZE = 500
MIX = (("search", 0.70), ("thumbnail", 0.20), ("frame", 0.10))
PAGE_2_SHARE = 0.1      # of searches: page 2 of the query, with the cursor of page 1
FILTER_MEDIA = 10       # the media-filter query searches this many media
SERVER_START_S = 120.0  # importing the app (torch) and opening the store
REQUEST_TIMEOUT_S = 30.0
ERROR_SAMPLES = 10


def _log(message: str) -> None:
    print(f"[load_test {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)



# --- the store ---------------------------------------------------------------------------------------


def _frame_jpeg(seed: int) -> bytes:
    """A 640x360 picture with some texture (a flat grey JPEG would be unrealistically small)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    gradient = np.linspace(60, 200, 640, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 18, size=(360, 640, 3)).astype(np.float32)
    pixels = np.clip(gradient + noise, 0, 255).astype(np.uint8)
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def build_store(data_dir: Path, frames: int, seed: int = SEED) -> dict:
    """Index `frames` synthetic frames into an embedded store in `data_dir`, a JPEG per frame; what was built."""
    from configs import Settings
    from indexer import open_store
    from indexer.frame_images import FrameImageStore

    started = time.perf_counter()
    store = open_store(Settings(data_dir=data_dir))
    images = FrameImageStore(data_dir)
    jpeg = _frame_jpeg(seed)
    videos = persons = 0
    media_ids: list[str] = []
    try:
        for video in generate(frames, seed):
            run_id = f"load-{video.media_id}"
            store.begin_run(video.record(run_id))
            for offset in range(0, len(video.frames), BATCH_SIZE):
                store.write_frames(run_id, video.frames[offset: offset + BATCH_SIZE])
            counted = sum(len(f.persons) for f in video.frames)
            store.finish_run(video.media_id, run_id, len(video.frames), counted,
                             sum(f.garment_count for f in video.frames), 0.0)
            (images.root / video.media_id).mkdir(parents=True, exist_ok=True)
            for frame in video.frames:
                images.path_for(video.media_id, frame.frame_id).write_bytes(jpeg)
            videos += 1
            persons += counted
            media_ids.append(video.media_id)
        moments = sum(len(store.moments_of(m)) for m in media_ids)
    finally:
        store.close()
    return {"frames": frames, "videos": videos, "persons": persons, "moments": moments, "media_ids": media_ids,
            "jpeg_bytes": len(jpeg), "build_s": round(time.perf_counter() - started, 1)}


# --- the server --------------------------------------------------------------------------------------


def serve(data_dir: Path) -> None:
    """The child process: the app over `data_dir` on a free loopback port, which it prints first, served
    as `vestis serve` serves it (search_api/server.py: its bounds on slow clients)."""
    import uvicorn

    from configs import Settings
    from search_api.app import create_app
    from search_api.server import server_config
    from indexer.query_parser import QueryParser

    settings = Settings(data_dir=data_dir)
    app = create_app(settings, parser=QueryParser())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    config = server_config(app, settings, log_level="warning", access_log=False, lifespan="on",
                           timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


@dataclass
class Server:
    process: subprocess.Popen
    url: str

    def cpu_s(self) -> float | None:
        """The server process's user + system CPU seconds so far (Linux /proc; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(data_dir: Path, timeout: float = SERVER_START_S) -> Server:
    import httpx

    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(data_dir)],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # the port, once the app is built
        if not line:
            raise RuntimeError(f"the server exited while starting (status {process.wait(timeout=15)})")
        url = f"http://127.0.0.1:{json.loads(line)['port']}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/media", timeout=5).status_code == 200:
                    return Server(process, url)
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"the server exited while starting (status {process.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer in {timeout:.0f} s")
            time.sleep(0.1)
    except BaseException:
        Server(process, "").stop()
        raise


# --- the load ----------------------------------------------------------------------------------------


def _search_params(spec: QuerySpec, media_ids: list[str]) -> list[tuple[str, str]]:
    params = [("q", spec.text), ("limit", str(spec.limit))]
    if spec.media:
        step = max(1, len(media_ids) // spec.media)
        params.append(("media", ",".join(media_ids[::step][: spec.media])))
    if spec.start is not None:
        params.append(("start", str(spec.start)))
    if spec.end is not None:
        params.append(("end", str(spec.end)))
    if spec.min_confidence:
        params.append(("min_confidence", str(spec.min_confidence)))
    return params


@dataclass
class Workload:
    """What the clients draw from: the searches (page 1 and page 2) and the image URLs they returned."""

    searches: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # (name, params)
    pages_2: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    thumbnails: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)


def prepare(url: str, media_ids: list[str], specs=QUERIES) -> Workload:
    """Run every query once (this warms the server up too) and keep its page-2 cursor and image URLs."""
    import httpx

    work = Workload()
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        for spec in specs:
            params = _search_params(spec, media_ids)
            response = client.get("/search", params=params)
            response.raise_for_status()
            answer = response.json()
            work.searches.append((spec.name, params))
            if answer["next_cursor"]:
                work.pages_2.append((spec.name, [*params, ("cursor", answer["next_cursor"])]))
            for video in answer["videos"]:
                for moment in video["moments"]:
                    work.thumbnails.append(moment["thumbnail_url"])
                    work.frames.append(moment["frame_url"])
    work.thumbnails = sorted(set(work.thumbnails))
    work.frames = sorted(set(work.frames))
    if not work.thumbnails:
        raise RuntimeError("the warm-up searches found no moments: nothing to ask images of")
    return work


@dataclass
class _Sample:
    kind: str
    seconds: float
    ok: bool
    query: str | None = None  # the search's QuerySpec name


def _client(url: str, work: Workload, seed: int, until: float, samples: list[_Sample], errors: list[str],
            lock: threading.Lock, mix: tuple[tuple[str, float], ...] = MIX) -> None:
    import httpx

    rng = random.Random(seed)
    kinds, weights = zip(*mix)
    mine: list[_Sample] = []
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        while time.perf_counter() < until:
            kind = rng.choices(kinds, weights)[0]
            params = query = None
            if kind == "search":
                if work.pages_2 and rng.random() < PAGE_2_SHARE:
                    kind, (query, params) = "search page 2", rng.choice(work.pages_2)
                else:
                    query, params = rng.choice(work.searches)
                path = "/search"
            elif kind == "thumbnail":
                path = rng.choice(work.thumbnails)
            else:
                path = rng.choice(work.frames)
            started = time.perf_counter()
            try:
                response = client.get(path, params=params)
                ok = response.status_code == 200
                problem = None if ok else f"{kind} {path}: {response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                ok, problem = False, f"{kind} {path}: {type(exc).__name__}: {exc}"
            mine.append(_Sample(kind, time.perf_counter() - started, ok, query))
            if problem:
                with lock:
                    if len(errors) < ERROR_SAMPLES:
                        errors.append(problem)
    with lock:
        samples.extend(mine)


def _latency(seconds: list[float]) -> dict:
    values = sorted(s * 1000.0 for s in seconds)
    if not values:
        return {"requests": 0}
    return {"requests": len(values), "p50_ms": round(percentile(values, 50), 2),
            "p95_ms": round(percentile(values, 95), 2), "p99_ms": round(percentile(values, 99), 2),
            "max_ms": round(values[-1], 2), "mean_ms": round(sum(values) / len(values), 2)}


def load(url: str, work: Workload, *, clients: int, duration_s: float, seed: int,
         server_cpu: Callable[[], float | None] = lambda: None, mix: tuple[tuple[str, float], ...] = MIX) -> dict:
    """`clients` closed-loop clients for `duration_s` against `url`; the figures."""
    samples: list[_Sample] = []
    errors: list[str] = []
    lock = threading.Lock()
    cpu_before = server_cpu()
    started = time.perf_counter()
    until = started + duration_s
    threads = [threading.Thread(target=_client, args=(url, work, seed + i, until, samples, errors, lock, mix),
                                name=f"load-client-{i}", daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + 2 * REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - started  # to the last answer: requests in flight at `until` finish
    cpu_after = server_cpu()
    failed = sum(not s.ok for s in samples)
    by_kind = {}
    for kind, _ in (*MIX[:1], ("search page 2", 0), *MIX[1:]):
        mine = [s for s in samples if s.kind == kind]
        by_kind[kind] = {**_latency([s.seconds for s in mine]), "errors": sum(not s.ok for s in mine)}
    by_query = {}
    for name in sorted({s.query for s in samples if s.kind == "search"}):
        mine = [s for s in samples if s.kind == "search" and s.query == name]
        by_query[name] = {**_latency([s.seconds for s in mine]), "errors": sum(not s.ok for s in mine)}
    server_cpu_s = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
    return {
        "elapsed_s": round(elapsed, 2),
        "requests": len(samples),
        "errors": failed,
        "error_samples": errors,
        "requests_per_s": round(len(samples) / elapsed, 1) if elapsed else None,
        "latency": _latency([s.seconds for s in samples]),
        "by_kind": by_kind,
        "by_query": by_query,  # page-1 searches, by index_bench.QUERIES name
        "server_cpu_s": server_cpu_s,
        "server_cpu_ms_per_request": round(1000 * server_cpu_s / len(samples), 2)
        if server_cpu_s is not None and samples else None,
        "unfinished_clients": sum(t.is_alive() for t in threads),
    }


def run(quick: bool = False, *, frames: int | None = None, duration_s: float | None = None,
        clients: int | None = None, seed: int = SEED, workdir: Path | str | None = None,
        log: Callable[[str], None] | None = _log, only: str | None = None) -> dict:
    """Build the store, start the server, warm up, load it; the report.

    quick: 2,000 frames, 4 clients for 3 s (checks that it works). workdir: where the data folder goes
    (default: a temporary folder, removed after). only: one kind of request of MIX instead of the mix
    ("thumbnail": a result grid's thumbnails across every video the searches return).
    """
    log = log or (lambda message: None)
    frames = (QUICK_FRAMES if quick else FRAMES) if frames is None else frames
    duration_s = (QUICK_DURATION_S if quick else DURATION_S) if duration_s is None else duration_s
    clients = (QUICK_CLIENTS if quick else CLIENTS) if clients is None else clients
    if frames <= 0 or duration_s <= 0 or clients <= 0:
        raise ValueError("frames, duration_s and clients must be positive")
    mix = MIX if only is None else ((only, 1.0),)
    if only is not None and only not in dict(MIX):
        raise ValueError(f"only: one of {', '.join(dict(MIX))}")
    report: dict = {
        "benchmark": "load",
        "quick": quick,
        "config": {
            "frames": frames, "seed": seed, "clients": clients, "duration_s": duration_s,
            "mix": dict(mix), "page_2_share_of_searches": PAGE_2_SHARE,
            "queries": [q.name for q in QUERIES],
            "server": "uvicorn, one process, on 127.0.0.1; create_app with the exact-words parser; embedded store",
            "clients_are": "threads in the benchmark's process, one keep-alive httpx client each, closed loop",
            "data": "bench/index_bench.py generate(): synthetic videos at 1 fps, 0-3 people, 1-4 garments each",
        },
        "machine": {"python": platform.python_version(), "logical_cpus": os.cpu_count(),
                    "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
        "load_average": {"start": load_average()},
    }
    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix="vestis-load-")) if temporary else Path(workdir)
    data_dir = root / "data"
    try:
        log(f"building a store of {frames:,} frames in {data_dir}")
        built = build_store(data_dir, frames, seed)
        media_ids = built.pop("media_ids")
        report["store"] = built
        log(f"built in {built['build_s']} s: {built['videos']} videos, {built['moments']:,} moments; "
            "starting the server")
        server = start_server(data_dir)
        try:
            work = prepare(server.url, media_ids)
            report["workload"] = {"searches": len(work.searches), "pages_2": len(work.pages_2),
                                  "thumbnails": len(work.thumbnails), "frames": len(work.frames)}
            log(f"{clients} clients for {duration_s:g} s against {server.url}")
            report["results"] = load(server.url, work, clients=clients, duration_s=duration_s, seed=seed,
                                     server_cpu=server.cpu_s, mix=mix)
        finally:
            server.stop()
        results = report["results"]
        log(f"{results['requests']:,} requests, {results['errors']} errors, {results['requests_per_s']} req/s, "
            f"p50 {results['latency'].get('p50_ms')} ms, p99 {results['latency'].get('p99_ms')} ms")
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    report["load_average"]["end"] = load_average()
    return report


# --- the summary -------------------------------------------------------------------------------------



def summary_markdown(report: dict) -> str:
    config, store, results = report["config"], report["store"], report["results"]
    lines = [
        "## HTTP load",
        "",
        f"The app under uvicorn on loopback over an embedded store of {number(store['frames'])} synthetic frames "
        f"({store['videos']} videos, {number(store['moments'])} moments); {config['clients']} concurrent clients "
        f"(closed loop, keep-alive) for {config['duration_s']:g} s: "
        + ("70% searches (a tenth of them page 2), 20% thumbnails, 10% frames with boxes drawn"
           if config["mix"] == dict(MIX) else ", ".join(f"{share:.0%} {kind}s" for kind, share in config["mix"].items()))
        + ". Latency: sending to the last byte of the answer."
        + (" **Quick run: small store, a few seconds.**" if report.get("quick") else ""),
        "",
        f"**{number(results['requests'])} requests, {results['errors']} errors, {number(results['requests_per_s'])} "
        f"requests/s**; server CPU {number(results['server_cpu_ms_per_request'])} ms per request.",
        "",
        "| requests | count | errors | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("all", {**results["latency"], "errors": results["errors"]}), *results["by_kind"].items()]
    for name, r in rows:
        if r.get("requests"):
            lines.append(f"| {name} | {number(r['requests'])} | {r['errors']} | {number(r['p50_ms'])} | {number(r['p95_ms'])} "
                         f"| {number(r['p99_ms'])} | {number(r['max_ms'])} |")
    if results["error_samples"]:
        lines += ["", "Errors (first few):", *[f"- `{e}`" for e in results["error_samples"]]]
    load = report.get("load_average")
    if load and load.get("start") and load.get("end"):
        lines += ["", f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load['start'])}, "
                      f"at end {', '.join(f'{x:.2f}' for x in load['end'])}; the clients and the server share "
                      f"the machine's {report['machine']['usable_cpus']} usable CPUs."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 frames, 4 clients, 3 s: checks that it works")
    parser.add_argument("--frames", type=int, default=None, help=f"store size (default {FRAMES:,})")
    parser.add_argument("--duration", type=float, default=None, help=f"seconds of load (default {DURATION_S:g})")
    parser.add_argument("--clients", type=int, default=None, help=f"concurrent clients (default {CLIENTS})")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--only", choices=[kind for kind, _ in MIX], default=None,
                        help="one kind of request instead of the mix (thumbnail: across every video)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the data folder goes (kept)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here (default: stdout)")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)  # the server child
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    report = run(quick=args.quick, frames=args.frames, duration_s=args.duration, clients=args.clients,
                 seed=args.seed, workdir=args.workdir, only=args.only)
    report["command"] = " ".join(["python", "bench/load_test.py", *(argv if argv is not None else sys.argv[1:])])
    write_report(report, args.out, summary_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
