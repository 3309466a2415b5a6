"""Expand the user's PATH arguments (files, folders, globs) into the media files to ingest."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.media import MediaKind, media_kind, undecodable_name


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
        if files and not _enterable(root, files[0]):
            # Listed (read permission) but not entered (no search permission): its names are known,
            # none of its files can be opened. One problem for the folder, not one per file.
            problems.append((root, "cannot enter folder: Permission denied (its files are listed but cannot be "
                                   "opened)"))
            dirs[:] = []
            continue
        for name in sorted(files):
            yield Path(root) / name


def _enterable(folder: str, name: str) -> bool:
    try:
        os.lstat(os.path.join(folder, name))
    except PermissionError:
        return False
    except OSError:
        pass
    return True


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # in a folder that cannot be entered: the file's problem is reported where it is opened
        return False


def discover_media(arguments: list[str]) -> Discovery:
    media: dict[Path, FoundMedia] = {}
    problems: list[tuple[str, str]] = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if _is_dir(path):
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
            if _is_dir(candidate):
                candidates.extend(_walk(candidate, problems))
                continue
            kind = media_kind(candidate)
            if kind is not None and (bad := undecodable_name(str(candidate))):
                # The store, the API's JSON and the pages hold names as Unicode text: this one cannot be
                # shown or served as it is. Reported under its name with the bytes escaped.
                problems.append((str(candidate), bad))
                continue
            if kind is None:
                if explicit:
                    problems.append((str(candidate), f"not a supported video or image type ({candidate.suffix or 'no extension'})"))
                continue
            resolved = candidate.absolute()
            media.setdefault(resolved, FoundMedia(resolved, kind))
    return Discovery(media=list(media.values()), problems=problems)
