"""Media identity: fingerprints that key resume and frame ids, and the frame id format."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from pipelines.media import MediaError, fingerprint, frame_id, media_kind
from pipelines.probe import probe_media

MiB = 1 << 20


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([value[0] ^ 0xFF]))


def test_fingerprint_is_stable_across_copies_and_renames(shared_videos, tmp_path):
    original = shared_videos / "bikes.mp4"
    expected = fingerprint(original)
    assert re.fullmatch(r"[0-9a-f]{16}", expected)
    copy = tmp_path / "copy of bikes.mp4"
    shutil.copyfile(original, copy)
    assert fingerprint(copy) == expected
    renamed = tmp_path / "sub" / "renamed.MOV"
    renamed.parent.mkdir()
    copy.rename(renamed)
    assert fingerprint(renamed) == expected
    assert fingerprint(renamed) == expected  # repeatable
    assert fingerprint(shared_videos / "carphone_pristine.mp4") != expected


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_fingerprint_changes_with_content_large_file(tmp_path, where):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 * MiB + 123))
    before = fingerprint(big)
    size = big.stat().st_size
    offset = {"start": 10, "middle": size // 2, "end": size - 10}[where]
    _flip_byte(big, offset)
    assert fingerprint(big) != before


def test_fingerprint_changes_with_content_real_video(shared_videos, tmp_path):
    copy = tmp_path / "bikes.mp4"
    shutil.copyfile(shared_videos / "bikes.mp4", copy)
    before = fingerprint(copy)
    _flip_byte(copy, copy.stat().st_size // 3)  # small file: every byte is read
    assert fingerprint(copy) != before
    _flip_byte(copy, copy.stat().st_size // 3)  # restored content, restored id
    assert fingerprint(copy) == before
    with open(copy, "ab") as handle:
        handle.write(b"\0")
    assert fingerprint(copy) != before


def test_fingerprint_of_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        fingerprint(empty)
    with pytest.raises(MediaError, match="cannot read file"):
        fingerprint(tmp_path / "missing.mp4")


def test_frame_id_format():
    assert frame_id("0123456789abcdef", 0.0) == "0123456789abcdef-000000000"
    assert frame_id("0123456789abcdef", 12.04) == "0123456789abcdef-000012040"
    assert frame_id("m", 1.0333333333) == "m-000001033"
    assert frame_id("m", 139.3) == "m-000139300"
    assert frame_id("m", 3600 * 30.0) == "m-108000000"  # 30 hours still sorts by time
    # stable: same input, same id; distinct frames at 30 fps get distinct ids
    assert frame_id("m", 2.5) == frame_id("m", 2.5)
    ids = [frame_id("m", i * 1001 / 30000) for i in range(300)]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)


def test_media_kind():
    assert media_kind(Path("a/B.MP4")) == "video"
    assert media_kind(Path("x.mkv")) == "video"
    assert media_kind(Path("photo.JPEG")) == "image"
    assert media_kind(Path("notes.txt")) is None
    assert media_kind(Path("no_extension")) is None


def test_probe_real_media(shared_videos, shared_data):
    info = probe_media(shared_videos / "carphone_pristine.mp4", "video")
    assert (info.width, info.height) == (176, 144)
    assert info.frame_rate == pytest.approx(30000 / 1001)
    assert info.duration == pytest.approx(4.004, abs=0.05)
    assert info.media_id == fingerprint(shared_videos / "carphone_pristine.mp4")
    photo = sorted((shared_data / "ccp" / "images").glob("*.jpg"))[0]
    image = probe_media(photo, "image")
    assert image.kind == "image" and image.width > 0 and image.height > 0 and image.codec == "jpeg"


def test_probe_errors_are_one_line(tmp_path, garbage_video_bytes):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(garbage_video_bytes)
    with pytest.raises(MediaError, match="not a readable video") as info:
        probe_media(bad, "video")
    assert "\n" not in str(info.value)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        probe_media(empty, "image")
