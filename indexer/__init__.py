"""Labels in, queries out: the backend-neutral store interface and its backends (no torch here)."""

from __future__ import annotations

from configs import Settings
from indexer.store import LabelStore, MediaRecord, MediaStatus


def open_store(settings: Settings) -> LabelStore:
    """The embedded on-disk store unless an Elasticsearch URL is configured."""
    if settings.store.elasticsearch_url:
        raise NotImplementedError(
            "store.elasticsearch_url is set, but the Elasticsearch backend is not built yet; "
            "unset it to use the embedded store"
        )
    from indexer.embedded import EmbeddedStore

    return EmbeddedStore(settings.data_dir)


__all__ = ["LabelStore", "MediaRecord", "MediaStatus", "open_store"]
