"""Discovery: the user's PATH arguments (files, folders, globs) become media files and problems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.discover import discover_media


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def found(discovery) -> dict[str, str]:
    return {str(m.path): m.kind for m in discovery.media}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    touch(root / "a.mp4")
    touch(root / "notes.txt")
    touch(root / "deep" / "deeper" / "b.MOV")
    touch(root / "deep" / "photo.jpg")
    touch(root / "deep" / "readme.md")
    touch(root / "vidéo ünïcode 映像.mkv")
    touch(root / "with space" / "holiday photo (1).JPEG")
    return root


def test_folder_is_walked_recursively(tree):
    discovery = discover_media([str(tree)])
    assert found(discovery) == {
        str(tree / "a.mp4"): "video",
        str(tree / "deep" / "deeper" / "b.MOV"): "video",
        str(tree / "deep" / "photo.jpg"): "image",
        str(tree / "vidéo ünïcode 映像.mkv"): "video",
        str(tree / "with space" / "holiday photo (1).JPEG"): "image",
    }
    assert discovery.problems == []  # unsupported files inside folders are skipped silently
    assert all(m.path.is_absolute() for m in discovery.media)


def test_relative_arguments_become_absolute(tree, monkeypatch):
    monkeypatch.chdir(tree)
    discovery = discover_media(["a.mp4", "deep"])
    assert set(found(discovery)) == {
        str(tree / "a.mp4"), str(tree / "deep" / "deeper" / "b.MOV"), str(tree / "deep" / "photo.jpg"),
    }


def test_globs(tree):
    assert set(found(discover_media([str(tree / "*.mp4")]))) == {str(tree / "a.mp4")}
    recursive = discover_media([str(tree / "**" / "*.jpg")])
    assert set(found(recursive)) == {str(tree / "deep" / "photo.jpg")}
    unicode_glob = discover_media([str(tree / "vidéo*")])
    assert set(found(unicode_glob)) == {str(tree / "vidéo ünïcode 映像.mkv")}
    spaced = discover_media([str(tree / "with space" / "*")])
    assert set(found(spaced)) == {str(tree / "with space" / "holiday photo (1).JPEG")}
    # a glob matching a folder walks it
    assert str(tree / "deep" / "deeper" / "b.MOV") in found(discover_media([str(tree / "dee?")]))
    nothing = discover_media([str(tree / "*.webm")])
    assert nothing.media == [] and nothing.problems == [(str(tree / "*.webm"), "glob matches no file")]


def test_explicit_unsupported_file_is_reported(tree):
    discovery = discover_media([str(tree / "notes.txt"), str(tree / "a.mp4")])
    assert set(found(discovery)) == {str(tree / "a.mp4")}
    assert len(discovery.problems) == 1
    where, reason = discovery.problems[0]
    assert where == str(tree / "notes.txt") and "not a supported" in reason and ".txt" in reason


def test_missing_path_is_reported(tmp_path):
    missing = str(tmp_path / "nowhere" / "clip.mp4")
    discovery = discover_media([missing])
    assert discovery.media == []
    assert discovery.problems == [(missing, "no such file or folder")]


def test_duplicates_are_listed_once(tree):
    discovery = discover_media([str(tree), str(tree / "a.mp4"), str(tree / "*.mp4")])
    paths = [str(m.path) for m in discovery.media]
    assert len(paths) == len(set(paths)) == 5


@pytest.mark.timeout(30)
def test_symlink_loop_does_not_hang_and_is_reported(tree):
    os.symlink(tree, tree / "deep" / "deeper" / "back-to-top")
    os.symlink(tree / "deep", tree / "deep" / "self")
    discovery = discover_media([str(tree)])
    # every real file once, nothing found again through the loops
    assert len(discovery.media) == 5
    assert set(found(discovery)) == set(found(discover_media([str(tree)])))
    loops = [where for where, reason in discovery.problems if "symlink loop" in reason]
    assert str(tree / "deep" / "deeper" / "back-to-top") in loops
    assert str(tree / "deep" / "self") in loops


def test_second_link_to_a_walked_folder_is_no_problem(tree):
    os.symlink(tree / "deep", tree / "also-deep")
    discovery = discover_media([str(tree)])
    assert len(discovery.media) == 5
    assert discovery.problems == []


def test_symlinked_file_and_folder_are_followed(tree, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    touch(elsewhere / "linked.webm")
    os.symlink(elsewhere, tree / "link-to-elsewhere")
    os.symlink(elsewhere / "linked.webm", tree / "clip-link.webm")
    discovery = discover_media([str(tree)])
    assert str(tree / "link-to-elsewhere" / "linked.webm") in found(discovery)
    assert str(tree / "clip-link.webm") in found(discovery)
    assert discovery.problems == []


def test_unreadable_folder_is_reported(tree):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    locked = tree / "locked"
    touch(locked / "hidden.mp4")
    locked.chmod(0)
    try:
        discovery = discover_media([str(tree)])
    finally:
        locked.chmod(0o755)
    assert str(locked / "hidden.mp4") not in found(discovery)
    assert any(where == str(locked) and "cannot list folder" in reason for where, reason in discovery.problems)


def test_a_name_that_is_not_utf8_is_a_problem_not_a_crash(tree):
    """Issue 19, finding 9: such a name crashed the ingest (UnicodeEncodeError) on every run."""
    bad = os.path.join(os.fsencode(tree), b"caf\xe9 \xff.mp4")
    with open(bad, "wb") as handle:
        handle.write(b"x")
    discovery = discover_media([str(tree)])
    name = os.fsdecode(bad)
    assert name not in found(discovery)
    assert str(tree / "a.mp4") in found(discovery)  # the rest is found as before
    [(where, reason)] = [p for p in discovery.problems if p[0] == name]
    assert "file name is not valid UTF-8 (caf\\xe9 \\xff.mp4)" in reason and "rename" in reason
    reason.encode("utf-8")  # the reason itself is text the store can hold


def _discover_unprivileged(folder: Path) -> dict:
    """discover_media in a child process that chmod really stops (as root: without the read-bypass
    capabilities, as tests/pipelines/test_bad_input.py runs its ingest)."""
    import json
    import subprocess
    import sys

    from tests.pipelines.test_bad_input import REPO_ROOT, unprivileged_prefix

    probe = folder.parent / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    prefix = unprivileged_prefix(probe)
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod does not stop root")
    code = ("import json, sys; from pipelines.discover import discover_media; d = discover_media(sys.argv[1:]); "
            "print(json.dumps({'media': [str(m.path) for m in d.media], 'problems': d.problems}))")
    done = subprocess.run([*prefix, sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def test_a_folder_that_can_be_listed_but_not_entered_is_a_problem(tree):
    """Issue 19, finding 10: read but no search permission crashed discovery with a PermissionError."""
    closed = tree / "listed only"
    touch(closed / "inside.mp4")
    touch(closed / "inner" / "deeper.mp4")
    closed.chmod(0o444)
    try:
        result = _discover_unprivileged(tree)
    finally:
        closed.chmod(0o755)
    assert str(tree / "a.mp4") in result["media"]
    assert not [m for m in result["media"] if "listed only" in m]
    assert [str(closed), "cannot enter folder: Permission denied (its files are listed but cannot be opened)"] \
        in result["problems"]
