"""Rich progress bars and tables for the CLI (the pipeline itself knows nothing of rich)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from indexer import MediaRecord
from pipelines.ingest import FileOutcome
from vestis.terminal import safe

STATUS_STYLE = {"done": "green", "skipped": "cyan", "failed": "bold red", "pending": "yellow"}


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        if task.fields.get("show_rate") is None:
            return Text("")
        elapsed = task.elapsed or 0.0
        speed = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{speed:6.1f} frames/s", style="magenta")


class RichIngestProgress:
    """Media and frame bars for `vestis ingest`."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("[bold]{task.description:<7}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), console=console, transient=False,
        )
        self.media = self.progress.add_task("media", total=None)
        self.frames = self.progress.add_task("frames", total=0, show_rate=True)
        self._expected = 0
        self._done = 0

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def media_found(self, count: int) -> None:
        self.progress.update(self.media, total=count)

    def frames_expected(self, count: int) -> None:
        self._expected += count
        self.progress.update(self.frames, total=max(self._expected, self._done))

    def frames_done(self, count: int) -> None:
        self._done += count
        self.progress.update(self.frames, advance=count, total=max(self._expected, self._done))

    def media_finished(self, outcome: FileOutcome) -> None:
        self.progress.advance(self.media)


def outcome_table(outcomes: list[FileOutcome]) -> Table:
    table = Table(title="Ingest results")
    for column in ("file", "status", "frames", "persons", "garments", "seconds", "reason"):
        table.add_column(column, justify="right" if column in {"frames", "persons", "garments", "seconds"} else "left")
    for o in outcomes:
        table.add_row(
            safe(o.name), safe(o.status, STATUS_STYLE.get(o.status, "")), str(o.frames), str(o.persons),
            str(o.garments), f"{o.seconds:.1f}", safe(o.reason),
        )
    return table


def status_table(records: list[MediaRecord]) -> Table:
    table = Table(title="Indexed media")
    for column in ("file", "kind", "status", "frames", "persons", "garments", "pipeline", "reason"):
        numeric = column in {"frames", "persons", "garments"}
        table.add_column(column, justify="right" if numeric else "left", overflow="fold",
                         min_width=24 if column == "file" else None)
    for r in records:
        table.add_row(
            safe(r.path), safe(r.kind), safe(r.status.value, STATUS_STYLE.get(r.status.value, "")), str(r.frames),
            str(r.persons), str(r.garments), safe(r.pipeline_version), safe(r.reason),
        )
    return table
