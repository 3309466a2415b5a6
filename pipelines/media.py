"""What a media file is to the pipeline: its kind, fingerprint and probed properties."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from indexer.store import media_name

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".mts", ".3gp", ".ogv"}
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

MediaKind = Literal["video", "image"]

_CHUNK = 1 << 20


class MediaError(Exception):
    """A media file cannot be processed; the message is the one-line reason shown to the user."""


def media_kind(path: Path) -> MediaKind | None:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def undecodable_name(path: str) -> str:
    """Why a path (as os.fsdecode gives it) cannot be indexed under its name, or "" when it can:
    bytes that are not UTF-8 come back as lone surrogates, which no UTF-8 text can hold."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return (f"file name is not valid UTF-8 ({printable_path(os.path.basename(path))}): rename it to index "
                "the file")
    return ""


def printable_path(path: str) -> str:
    """A path as UTF-8 text, its undecodable bytes written as \\xNN (a path that is text stays as it is)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def fingerprint(path: Path) -> str:
    """Content id of a file: its size and three 1 MiB chunks (start, middle, end).

    Cheap on multi-GB archives, stable across renames and copies, and different after any
    re-encode, so it keys both resume and frame ids.
    """
    try:
        size = os.path.getsize(path)
        digest = hashlib.blake2b(str(size).encode(), digest_size=8)
        with open(path, "rb") as handle:
            for offset in sorted({0, max(0, size // 2 - _CHUNK // 2), max(0, size - _CHUNK)}):
                handle.seek(offset)
                digest.update(handle.read(_CHUNK))
    except OSError as exc:
        if os.path.islink(path) and not os.path.exists(path):
            # "No such file or directory" about a file the user can see listed would puzzle them.
            raise MediaError(f"broken symlink: its target {os.readlink(path)!r} does not exist") from None
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    if size == 0:
        raise MediaError("empty file (0 bytes)")
    return digest.hexdigest()


def file_state(path: Path) -> tuple[int, int]:
    """(size, modification time in ns) of a file now; (0, 0) where it cannot be read (the fingerprint
    that follows says why)."""
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


def check_unchanged(info: "MediaInfo") -> None:
    """MediaError when the file is no longer what was probed: replaced (deleted and re-created, or
    written over) while the ingest read it. Its frames would mix two files under one media id."""
    now = file_state(Path(info.path))
    if now != info.state or fingerprint(Path(info.path)) != info.media_id:
        raise MediaError("file changed while it was being read (replaced or written to): its frames were "
                         "discarded; run `vestis ingest` again once it is complete")


def frame_id(media_id: str, timestamp: float) -> str:
    """Stable id of a sampled frame, so re-runs overwrite instead of duplicating."""
    return f"{media_id}-{round(timestamp * 1000):09d}"


@dataclass
class MediaInfo:
    path: str
    kind: MediaKind
    media_id: str
    size_bytes: int
    duration: float = 0.0
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    start_time: float = 0.0
    codec: str = ""
    state: tuple[int, int] = (0, 0)  # file_state when probed: check_unchanged compares against it
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return media_name(self.path)
