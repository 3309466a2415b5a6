"""Read a media file's properties in-process with PyAV (no ffprobe binary needed)."""

from __future__ import annotations

import os
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from pipelines.media import MediaError, MediaInfo, fingerprint

# Frames larger than this are refused up front: decoding one would take gigabytes of memory.
MAX_PIXELS = 16384 * 16384


def probe_video(path: Path) -> MediaInfo:
    media_id = fingerprint(path)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
                raise MediaError(f"no video stream (streams: {kinds})")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if ctx is None:  # PyAV gives no codec context where ffmpeg has no decoder (unknown fourcc)
                raise MediaError("unsupported video codec: this ffmpeg has no decoder for it")
            width, height = ctx.width, ctx.height
            if width <= 0 or height <= 0:
                raise MediaError("video stream has no frame size (truncated or unsupported)")
            if width * height > MAX_PIXELS:
                raise MediaError(f"frame size {width}x{height} exceeds the supported maximum")
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            return MediaInfo(
                path=str(path),
                kind="video",
                media_id=media_id,
                size_bytes=os.path.getsize(path),
                duration=duration,
                width=width,
                height=height,
                frame_rate=rate,
                start_time=start,
                codec=ctx.name,
            )
    except MediaError:
        raise
    except av.FFmpegError as exc:
        raise MediaError(_unopenable_reason(path, exc)) from None
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None


def _unopenable_reason(path: Path, exc: av.FFmpegError) -> str:
    """Why ffmpeg cannot open a file at all, in words: ffmpeg says "Invalid data found" alike for a
    text file renamed .mp4 and for a cut-off recording."""
    detail = exc.strerror or type(exc).__name__
    if not isinstance(exc, av.InvalidDataError):
        return f"not a readable video: {detail}"
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp":
        # An MP4/MOV that starts right but cannot be opened lacks its index (the moov box), which
        # is written last: the file was cut off or its recording never finished.
        return f"not a readable video: truncated or unfinished MP4/MOV (no index found): {detail}"
    return f"not a readable video: not a known video format, or a damaged one: {detail}"


def probe_image(path: Path) -> MediaInfo:
    media_id = fingerprint(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            fmt = image.format or ""
    except UnidentifiedImageError:
        # PIL's message repeats the whole path; the reason is shown beside the path already.
        raise MediaError("not a readable image: not a known image format") from None
    except Image.DecompressionBombError as exc:  # PIL refuses (raises) above ~179 Mpixels
        raise MediaError(f"image too large: {exc}") from None
    except (OSError, ValueError) as exc:
        raise MediaError(f"not a readable image: {exc}") from None
    if width * height > MAX_PIXELS:
        raise MediaError(f"image size {width}x{height} exceeds the supported maximum")
    return MediaInfo(
        path=str(path), kind="image", media_id=media_id, size_bytes=os.path.getsize(path),
        width=width, height=height, codec=fmt.lower(),
    )


def probe_media(path: Path, kind: str) -> MediaInfo:
    return probe_video(path) if kind == "video" else probe_image(path)
