"""Expand the user's PATH arguments (files, folders, globs) into the media files to ingest."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.media import MediaKind, media_kind


@dataclass(frozen=True)
class FoundMedia:
    path: Path
    kind: MediaKind


@dataclass
class Discovery:
    media: list[FoundMedia]
    problems: list[tuple[str, str]]  # (argument or path, reason)


def _walk(folder: Path, problems: list[tuple[str, str]]):
    # followlinks with a set of visited real folders: links are followed, loops are not.
    seen: set[tuple[int, int]] = set()

    def on_error(err: OSError) -> None:
        problems.append((str(err.filename), f"cannot list folder: {err.strerror}"))

    for root, dirs, files in os.walk(folder, followlinks=True, onerror=on_error):
        try:
            st = os.stat(root)
        except OSError as exc:
            problems.append((root, f"cannot read folder: {exc.strerror}"))
            dirs[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            # A link back to an ancestor is a loop worth reporting; a second way into a folder
            # already walked (a sibling link) just has nothing new in it.
            real, parent = os.path.realpath(root), os.path.realpath(os.path.dirname(root))
            if parent == real or parent.startswith(real.rstrip(os.sep) + os.sep):
                problems.append((root, "symlink loop: folder links back to one of its parents"))
            dirs[:] = []
            continue
        seen.add(key)
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def discover_media(arguments: list[str]) -> Discovery:
    media: dict[Path, FoundMedia] = {}
    problems: list[tuple[str, str]] = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            candidates = list(_walk(path, problems))
        elif path.exists() or path.is_symlink():
            candidates = [path]
        elif glob.has_magic(argument):
            candidates = [Path(p) for p in sorted(glob.glob(os.path.expanduser(argument), recursive=True))]
            if not candidates:
                problems.append((argument, "glob matches no file"))
        else:
            problems.append((argument, "no such file or folder"))
            continue
        explicit = path.is_file() or path.is_symlink()
        for candidate in candidates:
            if candidate.is_dir():
                candidates.extend(_walk(candidate, problems))
                continue
            kind = media_kind(candidate)
            if kind is None:
                if explicit:
                    problems.append((str(candidate), f"not a supported video or image type ({candidate.suffix or 'no extension'})"))
                continue
            resolved = candidate.absolute()
            media.setdefault(resolved, FoundMedia(resolved, kind))
    return Discovery(media=list(media.values()), problems=problems)
