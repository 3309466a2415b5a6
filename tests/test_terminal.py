"""No control character from a file name, reason or label reaches the terminal raw (issue 19, finding 6):
`vestis ingest`'s table, `vestis status` and `vestis search` print them escaped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.testing import CliRunner

from configs import load_settings
from indexer import open_store
from pipelines.ingest import FileOutcome
from vestis.progress import outcome_table
from vestis.terminal import escape_controls

# retitles the terminal, clears the screen, rewrites the line, reverses the text, an undecodable byte
HOSTILE = "clip\x1b]0;pwned\x07\x1b[2J\rover\u202egpj.mp4\udcff"
SHOWN = "clip\\x1b]0;pwned\\x07\\x1b[2J\\rover\\u202egpj.mp4\\xff".replace("\\r", "\\x0d")


def test_escape_controls_writes_each_unsafe_character_as_its_escape():
    assert escape_controls(HOSTILE) == SHOWN
    assert escape_controls("ünïcode 映像 (1) ✓.mp4") == "ünïcode 映像 (1) ✓.mp4"  # printable text is kept


def _printed(renderable) -> str:
    console = Console(width=400, color_system=None, force_terminal=False, record=True)
    console.print(renderable)
    return console.export_text()


def _assert_safe(output: str) -> None:
    assert not any(ord(c) < 0x20 and c != "\n" for c in output), repr(output)
    assert "\u202e" not in output and "\x1b" not in output
    assert "\\x1b]0;pwned" in output


def test_ingest_table_escapes_names_and_reasons():
    table = outcome_table([FileOutcome(f"/media/{HOSTILE}", "failed", reason=f"cannot read {HOSTILE}")])
    _assert_safe(_printed(table))


def test_status_and_search_print_escaped_names(tmp_path, monkeypatch, plain_cli):
    import search_api.results as results
    import vestis.cli as cli

    console = Console(width=400, color_system=None, force_terminal=False, record=True)
    monkeypatch.setattr(cli, "console", console)
    settings = load_settings(None, [{"data_dir": str(tmp_path)}])
    store = open_store(settings)
    stored = HOSTILE.replace("\udcff", "")  # the store holds valid Unicode (test_discover: such names fail)
    store.record_failure(f"{tmp_path}/{stored}", "video", f"not a readable video: {stored}")
    store.close()
    result = CliRunner().invoke(cli.app, ["status", "--data-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0
    _assert_safe(console.export_text())

    moment = SimpleNamespace(start=1.0, end=2.0, score=0.5, play_url=f"/media/x/stream#{HOSTILE}")
    answer = SimpleNamespace(understood_as=f"[bold]{HOSTILE} garment", notice=HOSTILE, total=1, total_exact=True,
                             next_cursor=None, videos=[SimpleNamespace(name=HOSTILE, moments=[moment])])
    monkeypatch.setattr(results, "search_moments", lambda *a, **k: answer)
    monkeypatch.setattr(results, "describe_matches", lambda m: HOSTILE)
    result = CliRunner().invoke(cli.app, ["search", "red", "--data-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    output = console.export_text()
    _assert_safe(output)
    assert "[bold]" in output  # markup in data is shown, not interpreted
    assert output.count("\\x1b]0;pwned") >= 5  # interpretation, notice, name, matches, play url
