"""Probing (issue 19, findings 2, 3 and 12): a file cut off, a picture whose data ends early and files
named as the other kind fail with a reason that says so, instead of being indexed short, black or
as a one-frame video."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from pipelines.media import MediaError
from pipelines.probe import probe_media

REPO_ROOT = Path(__file__).resolve().parents[2]


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def video(target: Path, seconds: float, codec: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast",
                                                                  "-pix_fmt", "yuv420p")) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=10:duration={seconds}", *codec, str(target))
    return target


def png_with_rows(target: Path, width: int, height: int, rows: int) -> Path:
    """A PNG whose header says width x height but whose image data holds only `rows` rows."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    data = zlib.compress(b"".join(b"\0" + bytes(range(256)) * (width * 3 // 256) + bytes(width * 3 % 256)
                                  for _ in range(rows)))
    target.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                       + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return target


def test_an_avi_cut_off_fails_with_declared_and_decoded_lengths(tmp_path):
    whole = video(tmp_path / "whole.avi", 40, ("-c:v", "mjpeg", "-q:v", "5"))
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 20])
    assert probe_media(whole, "video").duration == pytest.approx(40, abs=0.2)
    with pytest.raises(MediaError, match=r"truncated file: its data ends at \d+\.\d s of the 40\.0 s \(400 frames\)"):
        probe_media(cut, "video")


@pytest.mark.parametrize("name, codec", [
    ("h264.mp4", ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")),
    ("mjpeg.avi", ("-c:v", "mjpeg")),
    ("ffv1.mkv", ("-c:v", "ffv1")),
    ("mpeg2.ts", ("-c:v", "mpeg2video")),
])
def test_whole_files_of_every_container_pass_the_length_check(tmp_path, name, codec):
    info = probe_media(video(tmp_path / name, 6, codec), "video")
    assert info.duration == pytest.approx(6, abs=0.3)


def test_a_png_whose_data_ends_early_fails(tmp_path):
    with pytest.raises(MediaError, match="image data ends before the 13000x13000 pixels its header declares"):
        probe_media(png_with_rows(tmp_path / "tall.png", 13000, 13000, 10), "image")
    assert probe_media(png_with_rows(tmp_path / "whole.png", 300, 20, 20), "image").width == 300


def test_a_video_named_as_a_photo_says_it_is_a_video(tmp_path):
    clip = video(tmp_path / "clip.mp4", 1)
    shutil.copyfile(clip, tmp_path / "clip.jpg")
    with pytest.raises(MediaError, match=r"the file is a video \(mov\) named as an image"):
        probe_media(tmp_path / "clip.jpg", "image")


def test_a_photo_named_as_a_video_is_not_a_one_frame_video(tmp_path):
    Image.new("RGB", (64, 48), (1, 2, 3)).save(tmp_path / "photo.png")
    shutil.copyfile(tmp_path / "photo.png", tmp_path / "photo.mp4")
    with pytest.raises(MediaError, match=r"not a video: the file is a picture \(PNG\) named as a video"):
        probe_media(tmp_path / "photo.mp4", "video")


def test_no_decompression_bomb_warning_reaches_the_console(tmp_path):
    big = png_with_rows(tmp_path / "big.png", 11000, 11000, 11000 // 100)  # 121 Mpixels: PIL warns
    code = ("import sys; from pathlib import Path; from pipelines.probe import probe_media; "
            "from pipelines.sampling import load_image\n"
            "try: probe_media(Path(sys.argv[1]), 'image')\nexcept Exception as e: print(e)\n"
            "load_image(sys.argv[1], 64)")
    done = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=300)
    assert "ends before" in done.stdout
    assert "DecompressionBombWarning" not in done.stderr and done.returncode == 0, done.stderr
