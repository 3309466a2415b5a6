"""Read a media file's properties in-process with PyAV (no ffprobe binary needed)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from pipelines.media import MediaError, MediaInfo, file_state, fingerprint

# Frames larger than this are refused up front: decoding one would take gigabytes of memory.
MAX_PIXELS = 16384 * 16384
# A video whose data ends this much before the end its header declares is truncated, not short:
# containers round their durations, and an audio track may outlast the video by a little.
END_TOLERANCE_SECONDS = 1.0
END_TOLERANCE_SHARE = 0.02
# ffmpeg demuxers that read a single picture: a photo named as a video would become a one-frame video.
_IMAGE_DEMUXERS = ("image2", "_pipe")
# PIL warns on the console between ~89 and ~179 Mpixels; MAX_PIXELS is checked here instead (a filter
# for the process, as in pipelines/sampling.py: catch_warnings is not thread-safe).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def probe_video(path: Path) -> MediaInfo:
    state = file_state(path)
    media_id = fingerprint(path)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            demuxer = container.format.name
            if _is_image_demuxer(demuxer):
                kind = demuxer.removesuffix("_pipe").split(",")[0].upper()
                raise MediaError(f"not a video: the file is a picture ({kind}) named as a video; give it its "
                                 "image extension")
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
            _check_data_reaches_the_declared_end(container, stream, start, duration, rate)
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
                state=state,
            )
    except MediaError:
        raise
    except av.FFmpegError as exc:
        raise MediaError(_unopenable_reason(path, exc)) from None
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None


def _is_image_demuxer(name: str) -> bool:
    # image2 picks a demuxer by the file's extension alone: any file named .jpg "opens" with it
    return name.startswith(_IMAGE_DEMUXERS[0]) or name.endswith(_IMAGE_DEMUXERS[1])


def _check_data_reaches_the_declared_end(container, stream, start: float, duration: float, rate: float) -> None:
    """MediaError when the packets end well before the end the header declares: a cut-off file that
    ffmpeg reads without a word (AVI, TS) would otherwise be indexed as a short one.

    The declared length is the longer of the stream's duration and its declared frame count at its
    rate (an AVI cut off keeps its header's frame count; ffmpeg takes the duration from what it finds).
    Only packets are read (no decoding): from a seek to near the declared end, or from the start where
    the container cannot seek.
    """
    declared_frames = int(stream.frames or 0)
    declared = max(duration, declared_frames / rate if declared_frames and rate > 0 else 0.0)
    if declared <= 0 or stream.time_base is None:
        return
    tolerance = max(END_TOLERANCE_SECONDS, END_TOLERANCE_SHARE * declared)
    base = float(stream.time_base)
    try:
        container.seek(int((start + max(0.0, declared - tolerance)) / base), stream=stream, backward=True)
    except av.FFmpegError:
        container.seek(0)
    last_end = start
    for packet in container.demux(stream):
        if packet.pts is not None:
            last_end = max(last_end, (packet.pts + (packet.duration or 0)) * base)
    decoded = last_end - start
    if decoded < declared - tolerance:
        counted = f" ({declared_frames} frames)" if declared_frames else ""
        raise MediaError(f"truncated file: its data ends at {decoded:.1f} s of the {declared:.1f} s{counted} its "
                         "header declares")


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
    state = file_state(path)
    media_id = fingerprint(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            fmt = image.format or ""
    except UnidentifiedImageError:
        # PIL's message repeats the whole path; the reason is shown beside the path already.
        raise MediaError(f"not a readable image: {_what_it_is_instead(path)}") from None
    except Image.DecompressionBombError as exc:  # PIL refuses (raises) above ~179 Mpixels
        raise MediaError(f"image too large: {exc}") from None
    except (OSError, ValueError) as exc:
        raise MediaError(f"not a readable image: {exc}") from None
    if width * height > MAX_PIXELS:
        raise MediaError(f"image size {width}x{height} exceeds the supported maximum")
    if fmt == "PNG":
        _check_png_is_whole(path, width, height)
    return MediaInfo(
        path=str(path), kind="image", media_id=media_id, size_bytes=os.path.getsize(path),
        width=width, height=height, codec=fmt.lower(), state=state,
    )


def _what_it_is_instead(path: Path) -> str:
    """Why PIL cannot read a file named as an image: a video under a photo's name says so."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if container.streams.video and not _is_image_demuxer(container.format.name):
                return (f"the file is a video ({container.format.name.split(',')[0]}) named as an image; give it "
                        "its video extension")
    except (av.FFmpegError, OSError):
        pass
    return "not a known image format"


def _check_png_is_whole(path: Path, width: int, height: int) -> None:
    """PIL fills the rows of a PNG whose image data ends early with black and says nothing;
    ffmpeg's PNG decoder checks the data against the size in the header, so it decodes it once."""
    try:
        with av.open(str(path)) as container:
            frames = [(frame.width, frame.height) for frame in container.decode(video=0)]
    except av.FFmpegError as exc:
        raise MediaError(f"not a readable image: its image data ends before the {width}x{height} pixels its "
                         f"header declares ({exc.strerror or type(exc).__name__})") from None
    if frames[:1] != [(width, height)]:
        raise MediaError(f"not a readable image: its image data does not decode to the {width}x{height} pixels "
                         "its header declares")


def probe_media(path: Path, kind: str) -> MediaInfo:
    return probe_video(path) if kind == "video" else probe_image(path)
