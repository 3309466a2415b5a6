"""The `vestis` command: exit codes, the per-file table, status listing, and setting errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vestis.cli as cli

runner = CliRunner()
VESTIS = Path(sys.executable).with_name("vestis")


pytestmark = pytest.mark.usefixtures("plain_cli")


def invoke(*args: str):
    result = runner.invoke(cli.app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def row(output: str, name: str) -> str:
    lines = [line for line in output.splitlines() if name in line]
    assert lines, f"no row for {name} in:\n{output}"
    return lines[0]


@pytest.fixture
def good_folder(tmp_path, shared_videos, shared_data) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(shared_videos / "carphone_pristine.mp4", folder / "carphone.mp4")
    shutil.copyfile(sorted((shared_data / "ccp" / "images").glob("*.jpg"))[0], folder / "photo.jpg")
    return folder


@pytest.mark.slow
def test_ingest_good_files_exits_0_then_status(good_folder, tmp_path):
    data = str(tmp_path / "data")
    code, out = invoke("ingest", str(good_folder), "--data-dir", data, "--workers", "1")
    assert code == 0, out
    assert "Ingest results" in out
    assert "done" in row(out, "carphone.mp4") and " 4 " in row(out, "carphone.mp4")
    assert "done" in row(out, "photo.jpg") and " 1 " in row(out, "photo.jpg")
    assert "2 done" in out
    assert (tmp_path / "data" / "vestis.sqlite3").exists()

    code, out = invoke("ingest", str(good_folder), "--data-dir", data, "--workers", "1")
    assert code == 0, out
    assert "skipped" in row(out, "carphone.mp4") and "2 skipped" in out

    code, out = invoke("status", "--data-dir", data)
    assert code == 0, out
    assert "done" in row(out, "carphone.mp4") and "done" in row(out, "photo.jpg")
    assert "2 done" in out


@pytest.mark.slow
def test_ingest_with_a_corrupt_file_exits_1_and_status_lists_reasons(good_folder, tmp_path, garbage_video_bytes):
    (good_folder / "corrupt.mp4").write_bytes(garbage_video_bytes)
    (good_folder / "empty.mov").write_bytes(b"")
    data = str(tmp_path / "data")
    code, out = invoke("ingest", str(good_folder), "--data-dir", data, "--workers", "1", "--set", "sampling.fps=2")
    assert code == 1, out
    assert "failed" in row(out, "corrupt.mp4") and "not a readable video" in row(out, "corrupt.mp4")
    assert "empty file (0 bytes)" in row(out, "empty.mov")
    assert "done" in row(out, "carphone.mp4") and " 8 " in row(out, "carphone.mp4")  # fps=2 took effect
    assert "2 done, 2 failed" in out

    code, out = invoke("status", "--data-dir", data)
    assert code == 0, out
    assert "not a readable video" in row(out, "corrupt.mp4") and "failed" in row(out, "corrupt.mp4")
    assert "empty file (0 bytes)" in row(out, "empty.mov")
    assert "2 done, 2 failed" in out

    code, out = invoke("status", "--data-dir", data, "--failed")
    assert code == 0, out
    assert "corrupt.mp4" in out and "empty.mov" in out
    assert "carphone.mp4" not in out and "photo.jpg" not in out


@pytest.mark.slow
def test_ingest_requiring_a_gpu_fails_fast_with_exit_2(good_folder, tmp_path):
    code, out = invoke("ingest", str(good_folder), "--data-dir", str(tmp_path / "data"), "--workers", "1",
                       "--gpu", "require")
    assert code == 2, out
    assert "GPU" in out and "cluster.gpu=require" in out


@pytest.mark.slow
def test_unknown_stage_exits_2(good_folder, tmp_path):
    code, out = invoke("ingest", str(good_folder), "--data-dir", str(tmp_path / "data"), "--workers", "1",
                       "--stage", "no_such_stage")
    assert code == 2, out
    assert "no_such_stage" in out


@pytest.mark.slow
def test_missing_path_exits_1(tmp_path):
    code, out = invoke("ingest", str(tmp_path / "nothing-here"), "--data-dir", str(tmp_path / "data"),
                       "--workers", "1")
    assert code == 1, out
    assert "no such file or folder" in out


@pytest.mark.parametrize("command", ["ingest", "status"])
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "sampling.fps=abc"], "sampling.fps"),
        (["--set", "sampling.fpz=2"], "sampling.fpz"),
        (["--set", "sampling.fps"], "sampling.fps"),
        (["--set", "vision.stages=[unclosed"], "vision.stages"),
        (["--set", "cluster.gpu=sometimes"], "cluster.gpu"),
        (["--set", "store.elasticsearch_url=http://127.0.0.1:9"], "store.elasticsearch_url http://127.0.0.1:9"),
        (["--set", "store.index_prefix=Vestis"], "store.index_prefix"),
        (["--set", "store.elasticsearch_url=not-a-url"], "store.elasticsearch_url 'not-a-url' is not a usable URL"),
    ],
)
def test_bad_settings_exit_2_naming_the_setting(tmp_path, command, args, named):
    extra = [str(tmp_path)] if command == "ingest" else []
    code, out = invoke(command, *extra, "--data-dir", str(tmp_path / "data"), *args)
    assert code == 2, out
    assert "error:" in out and named in out
    assert "Traceback" not in out
    assert not (tmp_path / "data").exists()  # nothing was started


def test_bad_flag_values_exit_2(tmp_path):
    code, out = invoke("ingest", str(tmp_path), "--data-dir", str(tmp_path / "d"), "--gpu", "maybe")
    assert code == 2 and "cluster.gpu" in out
    code, out = invoke("ingest", str(tmp_path), "--data-dir", str(tmp_path / "d"), "--workers", "0")
    assert code == 2 and "cluster.workers" in out
    code, out = invoke("ingest", str(tmp_path), "--data-dir", str(tmp_path / "d"), "--fps", "0")
    assert code == 2 and "sampling.fps" in out


def test_config_file_and_environment(tmp_path, monkeypatch):
    config = tmp_path / "vestis.yaml"
    config.write_text("sampling:\n  fps: abc\n")
    code, out = invoke("status", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert code == 2 and "sampling.fps" in out
    monkeypatch.setenv("VESTIS_SAMPLING__MAX_SIDE", "3")
    code, out = invoke("status", "--data-dir", str(tmp_path / "d"))
    assert code == 2 and "sampling.max_side" in out


@pytest.mark.parametrize("command", [["status"], ["status", "--failed"], ["search", "dress"], ["reindex"],
                                     ["export", "--reviewed", "--out", "x.json"], ["serve"]])
def test_reading_commands_refuse_a_data_dir_with_no_store(tmp_path, command):
    code, out = invoke(*command, "--data-dir", str(tmp_path / "typo"))
    assert code == 2, out
    assert "no Vestis store in" in out and "typo" in out and "--data-dir" in out
    assert not (tmp_path / "typo").exists()  # nothing made where the user mistyped


def test_status_on_an_empty_store_and_failed_with_nothing_failed(tmp_path):
    from indexer import MediaRecord, MediaStatus
    from indexer.embedded import EmbeddedStore

    EmbeddedStore(tmp_path / "data").close()
    code, out = invoke("status", "--data-dir", str(tmp_path / "data"))
    assert code == 0 and "nothing ingested yet" in out, out
    code, out = invoke("status", "--data-dir", str(tmp_path / "data"), "--failed")
    assert code == 0 and "nothing ingested yet" in out, out
    store = EmbeddedStore(tmp_path / "data")
    store.begin_run(MediaRecord(media_id="m", path="/v/m.mp4", kind="video", status=MediaStatus.PENDING,
                                pipeline_version="v1", run_id="r"))
    store.finish_run("m", "r", 1, 0, 0, 0.1)
    store.close()
    code, out = invoke("status", "--data-dir", str(tmp_path / "data"), "--failed")
    assert code == 0, out
    assert "no failed files (1 file(s) in the store, none failed)" in out and "nothing ingested" not in out


def test_ingest_checks_paths_and_stages_before_starting_a_cluster(tmp_path, monkeypatch):
    import pipelines.cluster

    def no_cluster(*_, **__):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(pipelines.cluster, "connect", no_cluster)
    code, out = invoke("ingest", str(tmp_path / "nothing-here"), "--data-dir", str(tmp_path / "data"))
    assert code == 1 and "no such file or folder" in out and "nothing to ingest" in out, out
    code, out = invoke("ingest", str(tmp_path), "--data-dir", str(tmp_path / "data"), "--stage", "garmets")
    assert code == 2 and "garmets" in out and "known stages" in out, out
    assert not (tmp_path / "data").exists()


def test_a_mistyped_setting_gets_a_suggestion(tmp_path):
    code, out = invoke("status", "--data-dir", str(tmp_path), "--set", "sampling.fpz=2")
    assert code == 2 and "did you mean sampling.fps?" in out, out
    code, out = invoke("status", "--data-dir", str(tmp_path), "--set", "clustr.workers=2")
    assert code == 2 and "did you mean cluster?" in out, out


def test_version_and_help_read_cleanly():
    from configs import package_version

    code, out = invoke("--version")
    assert code == 0 and out.strip() == f"vestis {package_version()}"
    for command in (["--help"], ["ingest", "--help"], ["status", "--help"], ["search", "--help"],
                    ["export", "--help"], ["serve", "--help"]):
        code, out = invoke(*command)
        assert code == 0, out
        options = out.split("Options:")[1]  # (typer prints an argument's type beside its name)
        assert "<bool>" not in options and "<list[str]>" not in options and "<path>" not in options, out
    assert "--data-dir DIR" in invoke("status", "--help")[1]


def test_installed_entry_point(tmp_path):
    if not VESTIS.exists():
        pytest.skip(f"{VESTIS} is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VESTIS_")}
    env["COLUMNS"] = "200"
    done = subprocess.run([str(VESTIS), "status", "--data-dir", str(tmp_path / "d")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no Vestis store in" in done.stdout
    bad = subprocess.run([str(VESTIS), "ingest", str(tmp_path), "--set", "sampling.fps=abc"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert "sampling.fps" in bad.stdout + bad.stderr


def test_the_dashboard_link_says_when_bokeh_is_missing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bokeh" else real(name, *a))
    with cli.console.capture() as captured:
        cli.console.print("Dask dashboard: http://x/status" + cli._dashboard_note())
    assert "needs bokeh: pip install 'vestis[dashboard]'" in captured.get()  # printed, not eaten as markup
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert cli._dashboard_note() == ""


def _default_sigint() -> None:
    """In the child before it runs: SIGINT handled as a terminal's foreground command has it. A test
    run started in the background (`cmd &` without job control) ignores SIGINT, and the child would
    inherit that (Python keeps an ignored SIGINT ignored; ffmpeg catches it anyway)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_ends_with_one_line_and_a_summary_and_leaves_nothing_pending(tmp_path):
    """Issue 19, finding 12: Ctrl-C printed two worker tracebacks, no summary, and left records `pending`.
    The terminal sends SIGINT to the whole foreground process group: the workers get it too."""
    import signal
    import sqlite3
    import time

    import imageio_ffmpeg

    media = tmp_path / "media"
    media.mkdir()
    for i, source in enumerate(["testsrc2", "smptebars", "rgbtestsrc"]):
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                        f"{source}=size=320x240:rate=25", "-t", "90", "-c:v", "libx264", "-preset", "ultrafast",
                        "-pix_fmt", "yuv420p", str(media / f"clip{i}.mp4")], check=True)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VESTIS_")}
    env.update(COLUMNS="200", PYTHONPATH=str(Path(cli.__file__).parents[1]))
    child = subprocess.Popen([sys.executable, "-m", "vestis.cli", "ingest", str(media), "--data-dir", str(data),
                              "--workers", "2", "--gpu", "off", "--stage", "pass_through", "--set", "sampling.fps=25"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True, preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:  # until a video is being ingested
            try:
                with sqlite3.connect(f"file:{data / 'vestis.sqlite3'}?mode=ro", uri=True) as db:
                    if db.execute("SELECT COUNT(*) FROM media WHERE status = 'pending'").fetchone()[0]:
                        break
            except sqlite3.Error:
                pass
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(child.pid, signal.SIGINT)
        output, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert output.count("interrupted (Ctrl-C)") >= 1 and "stopped: interrupted (Ctrl-C)" in output, output
    assert "Ingest results" in output and "failed" in output.splitlines()[-2], output  # the table and the counts
    with sqlite3.connect(data / "vestis.sqlite3") as db:
        statuses = {row[0] for row in db.execute("SELECT status FROM media")}
    assert "pending" not in statuses, statuses
