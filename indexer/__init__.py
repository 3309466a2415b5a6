"""Labels in, queries out: the backend-neutral store interface and its backends (no torch here)."""

from __future__ import annotations

from configs import Settings
from indexer.store import LabelStore, MediaRecord, MediaStatus, StoreUnavailable


def open_store(settings: Settings) -> LabelStore:
    """The embedded on-disk store unless an Elasticsearch URL is configured.

    Raises StoreUnavailable, naming the setting, when Elasticsearch cannot be reached.
    """
    store = settings.store
    if store.elasticsearch_url:
        from indexer.elasticsearch import ElasticsearchStore

        api_key = store.elasticsearch_api_key.get_secret_value() if store.elasticsearch_api_key else None
        return ElasticsearchStore.connect(store.elasticsearch_url, store.index_prefix, api_key=api_key)
    from indexer.embedded import EmbeddedStore

    return EmbeddedStore(settings.data_dir)


__all__ = ["LabelStore", "MediaRecord", "MediaStatus", "StoreUnavailable", "open_store"]
