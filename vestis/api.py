"""Vestis from Python, for people who script: the same ingest, store and search as the CLI, with the
same settings (defaults < YAML file < environment < `overrides`), returning objects instead of tables.

    import vestis

    report = vestis.ingest(["~/archive/videos"], data_dir="vestis-data")
    answer = vestis.search("red striped dress", data_dir="vestis-data", limit=5)
    with vestis.open_store(data_dir="vestis-data") as store:
        print([m.path for m in store.list_media()])

`overrides` takes dotted setting names: `{"sampling.fps": 2, "cluster.workers": 1}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configs import Settings, load_settings, nested_override
from indexer import LabelStore
from indexer.review import ReviewStatus
from search_api.results import SearchResponse

if TYPE_CHECKING:  # Dask and the vision stages load only when ingest runs
    from pipelines.ingest import IngestObserver, IngestReport


def settings_for(data_dir: str | Path | None = None, *, config: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings as the CLI builds them; ConfigError names a bad or unknown setting."""
    changes = [nested_override(key, value) for key, value in (overrides or {}).items()]
    if data_dir is not None:
        changes.append(nested_override("data_dir", str(Path(data_dir).expanduser())))
    return load_settings(config, changes)


@contextmanager
def open_store(data_dir: str | Path | None = None, *, config: str | Path | None = None,
               overrides: Mapping[str, Any] | None = None, create: bool = False,
               settings: Settings | None = None) -> Iterator[LabelStore]:
    """The configured store (embedded in `data_dir`, or Elasticsearch), closed on leaving the block.
    `create=False` (the default) raises indexer.NoStore where `data_dir` holds no store."""
    from indexer import open_store as open_configured

    store = open_configured(settings or settings_for(data_dir, config=config, overrides=overrides), create=create)
    try:
        yield store
    finally:
        store.close()


def ingest(paths: str | Path | Sequence[str | Path], data_dir: str | Path | None = None, *,
           config: str | Path | None = None, overrides: Mapping[str, Any] | None = None, force: bool = False,
           observer: IngestObserver | None = None, settings: Settings | None = None) -> IngestReport:
    """Sample, label and index these files, folders or globs on a Dask cluster (a local one unless
    `cluster.scheduler` names one), as `vestis ingest` does; the report lists each file's outcome."""
    from pipelines.cluster import connect
    from pipelines.ingest import run_ingest
    from vision.registry import stages_version

    settings = settings or settings_for(data_dir, config=config, overrides=overrides)
    stages_version(settings.vision.stages, settings)  # unknown stages fail before a cluster starts
    arguments = [str(paths)] if isinstance(paths, (str, Path)) else [str(p) for p in paths]
    with open_store(settings=settings, create=True) as store, connect(settings) as client:
        return run_ingest(arguments, settings, client, store, force=force, observer=observer)


def search(query: str = "", data_dir: str | Path | None = None, *, config: str | Path | None = None,
           overrides: Mapping[str, Any] | None = None, media: Sequence[str] | None = None,
           start: float | None = None, end: float | None = None, min_confidence: float = 0.0,
           review: Sequence[ReviewStatus | str] | None = None, limit: int = 20, cursor: str | None = None,
           settings: Settings | None = None) -> SearchResponse:
    """Moments matching `query`, best first, grouped by video: the answer /search and `vestis search` give.
    `next_cursor` of the answer fetches the next page."""
    from search_api.results import ParserChoice, search_moments

    settings = settings or settings_for(data_dir, config=config, overrides=overrides)
    with open_store(settings=settings) as store:
        return search_moments(store, ParserChoice(settings), query, media_ids=list(media) if media else None,
                              start=start, end=end, min_confidence=min_confidence,
                              review=[ReviewStatus(r) for r in review] if review else None, limit=limit,
                              cursor=cursor)
