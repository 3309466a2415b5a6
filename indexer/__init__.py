"""Labels in, queries out: the backend-neutral store interface and its backends (no torch here)."""

from __future__ import annotations

from configs import Settings
from indexer.store import LabelStore, MediaRecord, MediaStatus, StoreUnavailable


EMBEDDED_STORE_FILE = "vestis.sqlite3"  # under data_dir


class NoStore(StoreUnavailable):
    """A read asked for an embedded store where there is none (a mistyped data dir, most often)."""


def open_store(settings: Settings, *, create: bool = True) -> LabelStore:
    """The embedded on-disk store unless an Elasticsearch URL is configured.

    `create=False` (reads): NoStore when data_dir holds no embedded store, instead of making an empty one.
    Raises StoreUnavailable, naming the setting, when Elasticsearch cannot be reached.
    """
    store = settings.store
    if not create and not store.elasticsearch_url and not (settings.data_dir / EMBEDDED_STORE_FILE).is_file():
        raise NoStore(f"no Vestis store in {settings.data_dir} (no {EMBEDDED_STORE_FILE}): check --data-dir "
                      f"(or data_dir in the settings), or run `vestis ingest` into it first")
    if store.elasticsearch_url:
        from indexer.elasticsearch import ElasticsearchStore

        api_key = store.elasticsearch_api_key.get_secret_value() if store.elasticsearch_api_key else None
        return ElasticsearchStore.connect(store.elasticsearch_url, store.index_prefix, api_key=api_key)
    from indexer.embedded import EmbeddedStore

    return EmbeddedStore(settings.data_dir)


__all__ = ["EMBEDDED_STORE_FILE", "LabelStore", "MediaRecord", "MediaStatus", "NoStore", "StoreUnavailable",
           "open_store"]
