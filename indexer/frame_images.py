"""Sampled frames kept as JPEG files beside the store, for thumbnails and the review page."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


class FrameImageStore:
    def __init__(self, data_dir: Path | str, max_side: int = 640):
        self.root = Path(data_dir).expanduser() / "frames"
        self.max_side = max_side

    def path_for(self, media_id: str, frame_id: str) -> Path:
        return self.root / media_id / f"{frame_id}.jpg"

    def prune(self, media_id: str, keep: set[str]) -> int:
        """Delete the media's JPEGs of frames not in `keep` (those of a failed or replaced run: the
        rows are gone, the pictures must go too). Returns how many were deleted."""
        folder = self.root / media_id
        if not folder.is_dir():
            return 0
        deleted = 0
        for picture in folder.glob("*.jpg"):
            if picture.stem not in keep:
                picture.unlink(missing_ok=True)
                deleted += 1
        if not keep:
            try:
                folder.rmdir()
            except OSError:
                pass  # something else is in there (a partial write of a worker still running): leave it
        return deleted

    def save(self, media_id: str, frame_id: str, image: np.ndarray) -> Path:
        target = self.path_for(media_id, frame_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image)
        picture.thumbnail((self.max_side, self.max_side))
        partial = target.with_suffix(f".{os.getpid()}.part")
        picture.save(partial, format="JPEG", quality=85)
        partial.replace(target)  # readers never see a half-written JPEG
        return target
