"""Decode a video segment with ffmpeg and keep fixed-rate plus shot-change frames.

One ffmpeg process per segment does the decoding, selection and scaling; each kept frame comes
with its exact presentation timestamp (read from ffmpeg's showinfo filter, so variable frame
rates are honoured) and ffmpeg applies rotation metadata before the filters run.
"""

from __future__ import annotations

import math
import queue
import re
import shutil
import subprocess
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import ffmpeg
import numpy as np
from PIL import Image, ImageOps

from pipelines.media import MediaError

# Decoding starts this long before a segment so that the shot-change score of its first
# frames compares against real previous frames, exactly as in a whole-file decode.
WARMUP_SECONDS = 1.0

_SHOWINFO = re.compile(r"\bn:\s*\d+\s+pts:\s*(-?\d+)\s+pts_time:(-?[\d.e+-]+).*?\bs:(\d+)x(\d+)")
_TIME_BASE = re.compile(r"config in time_base:\s*(\d+)/(\d+)")
# What ffmpeg's demuxers log when a file's data ends before its own index or header says (a cut-off
# download or an unfinished recording). ffmpeg then still exits 0 with the frames it could read.
_TRUNCATED = re.compile(r"\b(?:partial file|File ended prematurely)\b")
# PIL warns on the console about images of ~89-179 Mpixels; pipelines/probe.py bounds the size itself
# (a warnings filter for the process: catch_warnings is not thread-safe, and workers decode on threads).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
_LOG_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")  # "[in#0/mov,mp4,... @ 0x55d0] "


@dataclass
class SampledFrame:
    image: np.ndarray  # HxWx3 RGB uint8
    pts_time: float    # presentation time as stored in the file (seconds)
    reason: str        # "rate" (fixed-rate sample) or "shot" (shot change between rate samples)


@lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """The system's ffmpeg if there is one, else the binary shipped in the imageio-ffmpeg wheel."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _bucket(t: float, fps: float) -> int:
    # Same expression as in the select filter, evaluated in double precision.
    return math.floor(t * fps)


def selection_expression(fps: float, shot_threshold: float, start: float | None, end: float | None) -> str:
    keep = f"isnan(prev_selected_t)+gt(floor(t*{fps!r}),floor(prev_selected_t*{fps!r}))+gt(scene,{shot_threshold!r})"
    gates = []
    if start is not None:
        gates.append(f"gte(t,{start!r})")
    if end is not None:
        gates.append(f"lt(t,{end!r})")
    return "*".join(gates + [f"({keep})"]) if gates else keep


def _scale_expressions(max_side: int) -> tuple[str, str]:
    # Shrink so the long side is at most max_side; never enlarge.
    w = f"if(gte(iw,ih),min(iw,{max_side}),-2)"
    h = f"if(gte(iw,ih),-2,min(ih,{max_side}))"
    return w, h


def sample_frames(
    path: Path | str,
    *,
    fps: float,
    shot_threshold: float,
    max_side: int,
    start: float | None = None,
    end: float | None = None,
) -> Iterator[SampledFrame]:
    """Yield the sampled frames of [start, end) (whole file when both are None), in order."""
    input_kwargs: dict = {"copyts": None}
    if start is not None and start > 0:
        decode_from = max(0.0, start - WARMUP_SECONDS)
        input_kwargs["ss"] = f"{decode_from:.6f}"
        if end is not None:
            input_kwargs["t"] = f"{end - decode_from + WARMUP_SECONDS:.6f}"
    elif end is not None:
        input_kwargs["t"] = f"{end + WARMUP_SECONDS:.6f}"
    scale_w, scale_h = _scale_expressions(max_side)
    stream = (
        ffmpeg.input(str(path), **input_kwargs)
        .filter("select", selection_expression(fps, shot_threshold, start, end))
        .filter("scale", scale_w, scale_h)
        .filter("showinfo")
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
        .global_args("-nostdin", "-hide_banner", "-loglevel", "info")
    )
    process = subprocess.Popen(
        ffmpeg.compile(stream, cmd=ffmpeg_binary()), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None  # both are pipes
    stdout, stderr = process.stdout, process.stderr
    # stderr is drained on a thread: a corrupt file can log faster than we read frames.
    infos: queue.Queue = queue.Queue()
    tail: list[str] = []
    truncated: list[str] = []

    def drain_stderr() -> None:
        time_base: tuple[int, int] | None = None
        for raw in stderr:
            line = raw.decode("utf-8", "replace")
            match = _SHOWINFO.search(line)
            if match:
                # pts * (num / den) in double precision is how ffmpeg computed the `t` it selected
                # on; the printed pts_time is rounded to 6 decimals and can land in another bucket.
                pts_time = int(match.group(1)) * (time_base[0] / time_base[1]) if time_base else float(match.group(2))
                infos.put((pts_time, int(match.group(3)), int(match.group(4))))
            elif (base := _TIME_BASE.search(line)) is not None:
                time_base = (int(base.group(1)), int(base.group(2)))
            elif _TRUNCATED.search(line):
                truncated.append(_LOG_PREFIX.sub("", line.strip()))
            else:
                tail.append(line.strip())
                del tail[:-20]
        infos.put(None)

    reader = threading.Thread(target=drain_stderr, daemon=True)
    reader.start()
    previous_bucket: int | None = None
    try:
        while True:
            info = infos.get()
            if info is None:
                break
            pts_time, width, height = info
            size = width * height * 3
            data = stdout.read(size)
            if len(data) != size:
                break
            bucket = _bucket(pts_time, fps)
            reason = "rate" if bucket != previous_bucket else "shot"
            previous_bucket = bucket
            yield SampledFrame(np.frombuffer(data, np.uint8).reshape(height, width, 3), pts_time, reason)
    finally:
        if process.poll() is None:
            process.kill()
        stdout.close()
        returncode = process.wait()
        reader.join(timeout=5)
    if returncode not in (0, -9):
        errors = [line for line in tail if line and not line.startswith(("Stream", "Input", "Output", "["))]
        reason = (errors or tail or ["unknown error"])[-1]
        raise MediaError(f"ffmpeg could not decode the video: {reason}")
    if truncated:
        # Not a short video: indexing what was readable would silently hide the rest of it.
        raise MediaError(f"truncated file: its data ends before the end its header announces ({truncated[0]})")


def load_image(path: Path | str, max_side: int) -> np.ndarray:
    """An image as RGB uint8, EXIF rotation applied, shrunk so its long side is at most max_side."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.thumbnail((max_side, max_side))
            return np.asarray(image.convert("RGB"))
    except Image.DecompressionBombError as exc:  # not an OSError: it would fail the whole batch
        raise MediaError(f"image too large: {exc}") from None
    except (OSError, ValueError) as exc:
        raise MediaError(f"not a readable image: {exc}") from None
