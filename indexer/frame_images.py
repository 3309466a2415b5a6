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

    def save(self, media_id: str, frame_id: str, image: np.ndarray) -> Path:
        target = self.path_for(media_id, frame_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image)
        picture.thumbnail((self.max_side, self.max_side))
        partial = target.with_suffix(f".{os.getpid()}.part")
        picture.save(partial, format="JPEG", quality=85)
        partial.replace(target)  # readers never see a half-written JPEG
        return target
