"""The worker tasks without a cluster (issue 19, finding 1): a file replaced while it is read fails its
media instead of leaving frames of two files under one media id with the old duration."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import imageio_ffmpeg
import pytest
from PIL import Image

import pipelines.tasks as tasks
from configs import Settings
from indexer.frame_images import FrameImageStore
from pipelines.probe import probe_media
from pipelines.segments import Segment


def encode(target: Path, seconds: float, colour: str = "testsrc2") -> Path:
    source = f"{colour}=size=160x120:rate=10:duration={seconds}"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", source,
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(target)], check=True)
    return target


class RecordingStore:
    def __init__(self):
        self.written: list = []

    def write_frames(self, run_id, labels):
        self.written.extend(labels)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data", vision={"stages": ["pass_through"], "batch_size": 1})
    stub = SimpleNamespace(settings=settings, stages=[], images=FrameImageStore(settings.data_dir),
                           store=RecordingStore())
    monkeypatch.setattr(tasks, "_plugin", lambda: stub)
    return stub


def test_a_video_unchanged_while_read_is_done(tmp_path, plugin):
    info = probe_media(encode(tmp_path / "clip.mp4", 2), "video")
    result = tasks.process_segment(info, Segment(None, None), "run")
    assert result.error is None and result.frames == 2


@pytest.mark.parametrize("how", ["deleted and re-created", "written over in place"])
def test_a_video_replaced_while_read_fails(tmp_path, plugin, how):
    path = encode(tmp_path / "clip.mp4", 2)
    info = probe_media(path, "video")  # the inspect task: 2 s, its fingerprint is the media id
    longer = encode(tmp_path / "longer.mp4", 8, "smptebars")
    if how == "deleted and re-created":
        path.unlink()
        shutil.copyfile(longer, path)
    else:
        with open(path, "r+b") as handle:
            handle.write(longer.read_bytes())
    result = tasks.process_segment(info, Segment(None, None), "run")
    assert result.error and "file changed while it was being read" in result.error


def test_a_photo_replaced_while_read_fails(tmp_path, plugin):
    path = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (10, 20, 30)).save(path)
    info = probe_media(path, "image")
    Image.new("RGB", (64, 64), (200, 20, 30)).save(path)
    os.utime(path, ns=(info.state[1], info.state[1]))  # even with the old modification time: the content differs
    [result] = tasks.process_images([(info, "run")])
    assert result.error and "file changed while it was being read" in result.error
