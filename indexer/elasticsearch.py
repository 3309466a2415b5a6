"""The Elasticsearch backend: the LabelStore protocol on three indices, through the official client.

Layout. Each of `media`, `frames` and `moments` is an alias over a versioned index
(`<prefix>-moments-s1-0001`), shaped by a composable index template of the same name, so a mapping
change or a rebuild creates the next index and moves the alias in one atomic `update_aliases`;
readers never see a half-built index. Persons and garments are `nested`, so "red" and "dress" must
hold on the same garment; vocabulary fields are keywords; `caption` is text for full-text tools.

Runs without transactions. Elasticsearch writes one document atomically, not several, so the media
document is the switch: frames and moments are written under their run id (ids `<run>:<frame>`,
`<run>:<moment>`: a retried bulk overwrites, never duplicates), then the media document's
`visible_run_id` is flipped with `if_seq_no`/`if_primary_term` (a run begun meanwhile makes the flip
fail instead of being overwritten), then the other runs' documents are deleted. Every read keeps only
documents of a media's visible run, so a crash between those steps shows the old run or the new one,
never both and never half; the next `begin_run` deletes what the crash left.

Search ranks in the cluster: one query scores every candidate with the reference's score in log space
(indexer/cluster_scoring.py), and the hits come best first through `search_after` on a unique sort (no
point-in-time: not every server has it); the walk scores them with the reference
(indexer.search.rank_by_bounds, as the embedded store does), so both backends return the same pages
for the same labels (see `search_counted` and docs/search.md).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, ObjectApiResponse
from elasticsearch import BadRequestError, ConflictError, Elasticsearch, NotFoundError
from elasticsearch.helpers import BulkIndexError, streaming_bulk

from indexer.moments import Moment, build_moments
from indexer.review import (
    AuditEntry,
    EditConflict,
    InvalidEdit,
    QueueItem,
    QueuePage,
    QueueRequest,
    ReviewedFrame,
    label_values,
    lowest_confidence,
    review_status,
)
from indexer import cluster_scoring, cluster_vectors
from indexer.search import (
    MAX_BATCH,
    TIGHT_SLACK,
    BoundList,
    BoundSearch,
    SearchPage,
    SearchRequest,
    decode_cursor,
    rank_by_bounds,
    rank_documents,
    scoring_view,
    usable,
)
from indexer.similar import Neighbour, SimilarRequest, moment_vectors, rank_similar
from indexer.store import MediaRecord, MediaStatus, StoreInconsistent, StoreUnavailable, media_name
from labels import FrameLabels
from labels.vocabulary import GARMENT_LABEL_FIELDS

# Bump when a mapping below changes: the next `reindex()` moves every alias to indices of this shape.
# 2: moments carry `bounds` (search's bound lists); 3: `scoring` instead (search ranks in the cluster by a
# bound of the score); 4: `scoring` holds the labels too (the cluster computes the score itself).
# A change to indexer/cluster_scoring.py's fields needs a bump too.
SCHEMA_VERSION = 4

PAGE = 2000  # documents per search_after page
# How far above the last hit's score (in log space, where Lucene's float32 rounds to ~2e-6) a ranked
# walk resumes: the hits within it are read again, none is skipped (search_counted).
RESUME_SLACK = 2 * TIGHT_SLACK
BULK_CHUNK = 500
ATTEMPTS = 5  # whole-request tries when the cluster cannot be reached
STARTUP_ATTEMPTS = 2
BACKOFF_S = 0.5  # first wait between tries; doubles each time, capped at MAX_BACKOFF_S
MAX_BACKOFF_S = 8.0

T = TypeVar("T")


# --- mappings -----------------------------------------------------------------------------------

_KEYWORD = {"type": "keyword"}
_LABEL = {
    "properties": {
        "value": _KEYWORD,
        "confidence": {"type": "float"},
        "model": _KEYWORD,
        "model_version": _KEYWORD,
    }
}


def _garments(extra: dict | None = None) -> dict:
    return {"type": "nested", "properties": {**{f: _LABEL for f in GARMENT_LABEL_FIELDS}, **(extra or {})}}


# Boxes, masks and frame lists stay in _source without being indexed (`dynamic: false`): they are
# read back, never queried.
MAPPINGS: dict[str, dict] = {
    "media": {
        "dynamic": "strict",
        "properties": {
            "media_id": _KEYWORD, "path": _KEYWORD, "kind": _KEYWORD, "status": _KEYWORD,
            "pipeline_version": _KEYWORD, "reason": {"type": "text"}, "duration": {"type": "double"},
            "width": {"type": "integer"}, "height": {"type": "integer"}, "frames": {"type": "integer"},
            "persons": {"type": "integer"}, "garments": {"type": "integer"}, "seconds": {"type": "double"},
            "run_id": _KEYWORD, "visible_run_id": _KEYWORD, "updated_at": {"type": "double"},
            "moments_run_id": _KEYWORD,  # the run the moments were built from (see rebuild_moments)
        },
    },
    "frames": {
        "dynamic": False,
        "properties": {
            "run_id": _KEYWORD, "frame_id": _KEYWORD, "media_id": _KEYWORD, "timestamp": {"type": "double"},
            "reason": _KEYWORD, "width": {"type": "integer"}, "height": {"type": "integer"},
            "persons": {
                "type": "nested",
                "properties": {"detection": _LABEL, "garments": _garments(), "face": {"properties": {"expression": _LABEL}}},
            },
        },
    },
    "moments": {
        "dynamic": False,
        "properties": {
            "run_id": _KEYWORD, "moment_id": _KEYWORD, "media_id": _KEYWORD, "build_order": {"type": "integer"},
            "media_name": {"type": "keyword", "fields": {"text": {"type": "text"}}},
            "caption": {"type": "text"},
            "start": {"type": "double"}, "end": {"type": "double"}, "best_timestamp": {"type": "double"},
            "best_frame_id": _KEYWORD, "review_status": _KEYWORD,
            "scoring": cluster_scoring.mapping(),
            "summary": {"type": "object", "enabled": False},  # the scoring view: what search reads
            "persons": {
                "type": "nested",
                "properties": {
                    "track_index": {"type": "integer"}, "detection": _LABEL, "expression": _LABEL,
                    "garments": _garments({"frames": {"type": "integer"}}),
                },
            },
        },
    },
    # The human version of each reviewed frame (indexer/review.py), id = frame id; reads put it over
    # the machine's frame. Its seq_no/primary_term is the version edits are checked against.
    "reviews": {
        "dynamic": False,
        "properties": {
            "frame_id": _KEYWORD, "media_id": _KEYWORD, "status": _KEYWORD, "reviewer": _KEYWORD,
            "updated_at": {"type": "double"}, "labels": {"type": "object", "enabled": False},
        },
    },
    "audit": {
        "dynamic": False,
        "properties": {
            "entry_id": {"type": "long"}, "frame_id": _KEYWORD, "media_id": _KEYWORD, "reviewer": _KEYWORD,
            "at": {"type": "double"}, "action": _KEYWORD,
        },
    },
}

# Fields the moment document has besides the Moment itself; dropped before ranking and validation.
_MOMENT_EXTRAS = ("run_id", "build_order", "media_name", "caption", "bounds", "scoring", "summary", "vector_space",
                  cluster_vectors.FIELD)
# Of those, what reads of whole moments leave in the cluster (the ranking's fields, large ones among them).
_RANKING_ONLY = ["media_name", "caption", "bounds", "scoring", "summary", cluster_vectors.FIELD]


def _caption(moment: Moment) -> str:
    """The labels as words: `red striped dress long; happy` for full-text tools (Kibana, highlight)."""
    parts = []
    for person in moment.persons:
        for g in person.garments:
            words = [label.value for label in (g.color, g.secondary_color, g.pattern) if label is not None]
            words.append(g.category.value)
            if g.sleeve is not None:
                words.append(f"{g.sleeve.value} sleeve")
            parts.append(" ".join(words))
        if person.expression is not None:
            parts.append(person.expression.value)
    return "; ".join(parts)


# --- candidate query ----------------------------------------------------------------------------


def candidate_query(request: SearchRequest) -> dict:
    """The bool query for the moments the request's filters (media, time) allow."""
    filters: list[dict] = []
    if request.media_ids is not None:
        filters.append({"terms": {"media_id": request.media_ids}})
    if request.start is not None:
        filters.append({"range": {"end": {"gte": request.start}}})
    if request.end is not None:
        filters.append({"range": {"start": {"lte": request.end}}})
    if request.review_status is not None:
        statuses: dict[str, Any] = {"terms": {"review_status": [status.value for status in request.review_status]}}
        if "unreviewed" in request.review_status:  # a moment written before reviews has no status
            statuses = {"bool": {"should": [statuses, {"bool": {"must_not": [{"exists": {"field": "review_status"}}]}}],
                                 "minimum_should_match": 1}}
        filters.append(statuses)
    return {"bool": {"filter": filters}}


# --- ranking in the cluster -----------------------------------------------------------------------


class _TooDeep(Exception):
    """A ranked walk cannot move on: a whole batch scored within RESUME_SLACK of where it resumed."""


# --- the store ----------------------------------------------------------------------------------


class ElasticsearchStore:
    """LabelStore on Elasticsearch. Pass a ready client (tests, custom TLS/auth) or use `connect`."""

    def __init__(self, client: Elasticsearch, index_prefix: str = "vestis", *, attempts: int = ATTEMPTS,
                 backoff_s: float = BACKOFF_S):
        self.client = client
        self.prefix = index_prefix
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.aliases = {kind: f"{index_prefix}-{kind}" for kind in MAPPINGS}
        self._alias_names = frozenset(self.aliases.values())
        # A wrong URL should fail at start within a second, not after the whole backoff.
        self._retry(self._ensure_layout, attempts=min(attempts, STARTUP_ATTEMPTS))

    @classmethod
    def connect(cls, url: str, index_prefix: str = "vestis", *, api_key: str | None = None,
                request_timeout: float = 30.0, **kwargs) -> ElasticsearchStore:
        """A store on a new client for `url`; StoreUnavailable naming the setting when it cannot be reached."""
        try:
            # max_retries=0: _retry already retries with backoff; the client's own 3 retries of a 30 s
            # timeout on top made a hung server cost minutes per write before anyone heard of it.
            client = Elasticsearch(url, api_key=api_key, request_timeout=request_timeout, max_retries=0)
        except ValueError as exc:  # the client's own check of the URL's shape
            raise StoreUnavailable(f"store.elasticsearch_url {url!r} is not a usable URL: {exc}") from None
        try:
            return cls(client, index_prefix, **kwargs)
        except StoreUnavailable as exc:
            client.close()
            raise StoreUnavailable(f"store.elasticsearch_url {url}: {exc}") from None

    # -- plumbing ------------------------------------------------------------------------------
    def _retry(self, work: Callable[[], T], attempts: int | None = None) -> T:
        """`work` again after a growing pause while the cluster cannot be reached; every write here is
        idempotent (explicit ids, deletes by run), so repeating one is safe."""
        attempts = attempts or self.attempts
        delay = self.backoff_s
        for attempt in range(1, attempts + 1):
            try:
                return work()
            except NotFoundError as exc:
                if exc.error == "index_not_found_exception":  # not a missing document: a missing alias
                    raise StoreUnavailable(self._lost_alias(self._missing_index(exc))) from exc
                raise
            except (TransportConnectionError, ConnectionTimeout) as exc:
                if attempt == attempts:
                    # The transport's own words ("Connection error") name no server: say which one.
                    raise StoreUnavailable(
                        f"Elasticsearch unreachable after {attempt} tries at {self._where()}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        raise AssertionError("unreachable")

    def _where(self) -> str:
        """The cluster's URL(s) as the client knows them (credentials are not part of base_url)."""
        try:
            return ", ".join(node.base_url for node in self.client.transport.node_pool.all()) or "?"
        except AttributeError:  # a client double without a transport
            return "?"

    @staticmethod
    def _lost_alias(alias: str) -> str:
        return (f"Elasticsearch has no index alias {alias!r} any more (did the cluster restart empty?); the next "
                "`vestis ingest` recreates the indices and redoes what was not finished")

    def _missing_index(self, exc: NotFoundError) -> str:
        body: dict = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error")
        index = error.get("index") if isinstance(error, dict) else None
        return str(index or f"{self.prefix}-*")

    def _write(self, **kwargs: Any) -> ObjectApiResponse[Any]:
        """One document into an alias (require_alias: see `_bulk`), retried like every call here."""
        return self._retry(lambda: self.client.index(require_alias=True, **kwargs))

    def _index_name(self, kind: str, generation: int) -> str:
        return f"{self.prefix}-{kind}-s{SCHEMA_VERSION}-{generation:04d}"

    def _current_index(self, kind: str) -> str | None:
        try:
            return next(iter(self.client.indices.get_alias(name=self.aliases[kind])))
        except NotFoundError:
            return None

    def _mapping(self, kind: str) -> dict:
        """The kind's mapping; the moments' with garment vectors for kNN where the cluster has it."""
        if kind == "moments" and self._knn_cluster:
            return {**MAPPINGS[kind], "properties": {**MAPPINGS[kind]["properties"], **cluster_vectors.mapping()}}
        return MAPPINGS[kind]

    def _put_template(self, kind: str) -> None:
        self.client.indices.put_index_template(
            name=self.aliases[kind],
            index_patterns=[f"{self.aliases[kind]}-*"],
            template={"settings": {"number_of_shards": 1}, "mappings": self._mapping(kind)},
            meta={"vestis_schema": SCHEMA_VERSION},
        )

    def _create_index(self, kind: str, generation: int, with_alias: bool) -> str:
        name = self._index_name(kind, generation)
        aliases: dict[str, Any] | None = {self.aliases[kind]: {}} if with_alias else None
        try:
            self.client.indices.create(index=name, aliases=aliases)
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
            # Another worker created it a moment ago; the alias, if asked for, comes with it.
        return name

    def outdated(self) -> tuple[str, ...]:
        """The kinds whose alias is on an index of an older schema (they keep serving until `reindex`)."""
        marker = f"-s{SCHEMA_VERSION}-"
        return tuple(kind for kind in MAPPINGS if marker not in (self._current_index(kind) or marker))

    def _ensure_layout(self) -> None:
        """Templates always (they are idempotent), indices only where an alias is missing. An alias on
        an index of an older schema is left serving until `reindex()` moves it. A plain index under an
        alias's name is repaired (`_repair_plain_index`)."""
        self._knn_cluster = cluster_vectors.supports_knn(self.client.info().body)
        for kind in MAPPINGS:
            self._put_template(kind)
            if self._current_index(kind) is None:
                if self.client.indices.exists(index=self.aliases[kind]):
                    self._repair_plain_index(kind)
                else:
                    self._create_index(kind, 1, with_alias=True)

    def _repair_plain_index(self, kind: str) -> None:
        """An index, not an alias, named `<prefix>-<kind>`: Elasticsearch made it when a write reached a
        cluster that had restarted empty (before writes required the alias). Its documents move to a
        versioned index, and one atomic `update_aliases` deletes it and puts the alias in its place;
        where the copy is refused, a StoreInconsistent names the command that clears it."""
        plain = self.aliases[kind]
        name = self._create_index(kind, 1, with_alias=False)
        try:
            self.client.reindex(source={"index": plain}, dest={"index": name}, refresh=True,
                                wait_for_completion=True)
            self.client.indices.update_aliases(actions=[{"remove_index": {"index": plain}},
                                                        {"add": {"index": name, "alias": plain}}])
        except (BadRequestError, NotFoundError) as exc:
            failures = exc.body.get("failures") if isinstance(exc.body, dict) else None
            why = (failures[0].get("cause") or {}).get("reason") if failures else None
            raise StoreInconsistent(
                f"Elasticsearch holds a plain index named {plain!r} where Vestis's alias belongs, and it could "
                f"not be moved aside: {why or exc.error}; delete it with curl -X DELETE "
                f"'<store.elasticsearch_url>/{plain}' and run the command again") from None

    def _bulk(self, actions: Iterable[dict], refresh: bool = False) -> None:
        actions = list(actions)
        if not actions:
            return

        # Writes to an alias must find the alias: a cluster that restarted empty would otherwise create a
        # plain index under its name, which blocks the alias for good.
        to_alias: dict[str, Any] = (
            {"require_alias": True} if all(a.get("_index") in self._alias_names for a in actions) else {})

        def send() -> None:
            try:
                for _ in streaming_bulk(self.client, actions, chunk_size=BULK_CHUNK, max_retries=self.attempts,
                                        initial_backoff=self.backoff_s, max_backoff=MAX_BACKOFF_S,
                                        refresh=refresh, **to_alias):
                    pass
            except BulkIndexError as exc:
                first = exc.errors[0] if exc.errors else {}
                if "alias" in str(first) and "index_not_found" in str(first):
                    raise StoreUnavailable(self._lost_alias(str(actions[0].get("_index")))) from exc
                raise StoreUnavailable(f"Elasticsearch refused {len(exc.errors)} documents, e.g. {first}") from exc

        self._retry(send)

    def _scan(self, kind: str, query: dict, sort: list[dict], source: Any = True) -> Iterator[dict]:
        """Every hit of `query` through search_after on `sort` (which must end in a unique key)."""
        after = None
        while True:
            kwargs: dict[str, Any] = {"index": self.aliases[kind], "query": query, "sort": sort, "size": PAGE,
                                      "_source": source, "track_total_hits": False}
            if after is not None:
                kwargs["search_after"] = after
            hits = self._retry(lambda: self.client.search(**kwargs))["hits"]["hits"]
            yield from hits
            if len(hits) < PAGE:
                return
            after = hits[-1]["sort"]

    def _delete(self, kind: str, query: dict) -> None:
        self._retry(lambda: self.client.delete_by_query(
            index=self.aliases[kind], query=query, refresh=True, conflicts="proceed"))

    def _refresh(self, *kinds: str) -> None:
        self._retry(lambda: self.client.indices.refresh(index=",".join(self.aliases[k] for k in kinds)))

    # -- media ---------------------------------------------------------------------------------
    @staticmethod
    def _media_doc(record: MediaRecord, moments_run_id: str = "") -> dict:
        doc = {name: getattr(record, name) for name in MediaRecord.__dataclass_fields__}
        doc["status"] = record.status.value
        doc["moments_run_id"] = moments_run_id
        return doc

    @staticmethod
    def _record(source: dict) -> MediaRecord:
        values = {k: v for k, v in source.items() if k in MediaRecord.__dataclass_fields__}
        values["status"] = MediaStatus(values["status"])
        return MediaRecord(**values)

    def _get_media_hit(self, media_id: str) -> ObjectApiResponse[Any] | None:
        try:
            return self._retry(lambda: self.client.get(index=self.aliases["media"], id=media_id))
        except NotFoundError:
            return None

    def get_media(self, media_id: str) -> MediaRecord | None:
        hit = self._get_media_hit(media_id)
        return self._record(hit["_source"]) if hit else None

    def _media_sources(self, media_ids: Iterable[str]) -> dict[str, dict]:
        ids = sorted(set(media_ids))
        found: dict[str, dict] = {}
        for i in range(0, len(ids), PAGE):
            chunk = ids[i:i + PAGE]
            response = self._retry(lambda: self.client.mget(index=self.aliases["media"], ids=chunk))
            found.update({d["_id"]: d["_source"] for d in response["docs"] if d.get("found")})
        return found

    def list_media(self) -> list[MediaRecord]:
        self._refresh("media")
        hits = self._scan("media", {"match_all": {}}, [{"path": "asc"}, {"media_id": "asc"}])
        return [self._record(h["_source"]) for h in hits]

    def _put_media(self, doc: dict, expected: ObjectApiResponse[Any] | None = None) -> None:
        """Write the media document; with `expected` (a previous GET) only if nobody changed it since."""
        kwargs: dict[str, Any] = {"index": self.aliases["media"], "id": doc["media_id"], "document": doc,
                                  "refresh": True}
        if expected is not None:
            kwargs.update(if_seq_no=expected["_seq_no"], if_primary_term=expected["_primary_term"])
        self._write(**kwargs)

    def record_failure(self, path: str, kind: str, reason: str, media_id: str | None = None) -> None:
        from indexer.embedded import path_media_id  # one id scheme for both backends

        media_id = media_id or path_media_id(path)
        hit = self._get_media_hit(media_id)
        if hit is not None:
            doc = {**hit["_source"], "status": MediaStatus.FAILED.value, "reason": reason, "updated_at": time.time()}
        else:
            doc = self._media_doc(MediaRecord(media_id=media_id, path=path, kind=kind, status=MediaStatus.FAILED,
                                              reason=reason, updated_at=time.time()))
        self._put_media(doc)

    def _not_visible(self, media_id: str, visible_run_id: str) -> dict:
        return {"bool": {"filter": [{"term": {"media_id": media_id}}],
                         "must_not": [{"term": {"run_id": visible_run_id}}]}}

    def begin_run(self, record: MediaRecord) -> None:
        hit = self._get_media_hit(record.media_id)
        previous = hit["_source"] if hit else {}
        record.status = MediaStatus.PENDING
        record.reason = ""
        record.visible_run_id = previous.get("visible_run_id", "")
        record.updated_at = time.time()
        # What unfinished runs (a crash) left is invisible already; clear it now.
        self._refresh("frames", "moments")
        for kind in ("frames", "moments"):
            self._delete(kind, self._not_visible(record.media_id, record.visible_run_id))
        self._put_media(self._media_doc(record, previous.get("moments_run_id", "")))

    # -- frames --------------------------------------------------------------------------------
    def write_frames(self, run_id: str, frames: list[FrameLabels]) -> None:
        self._bulk({"_index": self.aliases["frames"], "_id": f"{run_id}:{f.frame_id}",
                    "_source": {"run_id": run_id, **f.model_dump(mode="json")}} for f in frames)

    def _run_frames(self, media_id: str, run_id: str) -> list[FrameLabels]:
        """The run's frames, each in its human version where a reviewer edited it: a re-ingest never
        puts machine labels back over human ones."""
        query = {"bool": {"filter": [{"term": {"media_id": media_id}}, {"term": {"run_id": run_id}}]}}
        hits = self._scan("frames", query, [{"timestamp": "asc"}, {"frame_id": "asc"}], source={"excludes": ["run_id"]})
        human = self._reviews_of(media_id)
        return [human.get(h["_source"]["frame_id"]) or FrameLabels.model_validate(h["_source"]) for h in hits]

    def _reviews_of(self, media_id: str) -> dict[str, FrameLabels]:
        self._refresh("reviews")
        hits = self._scan("reviews", {"term": {"media_id": media_id}}, [{"frame_id": "asc"}], source=["labels"])
        return {h["_id"]: FrameLabels.model_validate(h["_source"]["labels"]) for h in hits}

    def frames_of(self, media_id: str) -> list[FrameLabels]:
        record = self.get_media(media_id)
        if record is None or not record.visible_run_id:
            return []
        return self._run_frames(media_id, record.visible_run_id)

    def frame_ids_of(self, media_id: str) -> set[str]:
        record = self.get_media(media_id)
        if record is None or not record.visible_run_id:
            return set()
        self._refresh("frames")
        query = {"bool": {"filter": [{"term": {"media_id": media_id}}, {"term": {"run_id": record.visible_run_id}}]}}
        return {h["_source"]["frame_id"] for h in self._scan("frames", query, [{"frame_id": "asc"}], source=["frame_id"])}

    def _moment_actions(self, index: str, run_id: str, moments: list[Moment], media_name: str) -> Iterator[dict]:
        for order, m in enumerate(moments):
            view = scoring_view(m)
            vectors = cluster_vectors.vector_fields(m) if self._knn_cluster else {}
            yield {"_index": index, "_id": f"{run_id}:{m.moment_id}",
                   "_source": {**m.model_dump(mode="json"), "run_id": run_id, "build_order": order,
                               "media_name": media_name, "caption": _caption(m),
                               "scoring": cluster_scoring.scoring_fields(view), "summary": view, **vectors}}

    def finish_run(self, media_id: str, run_id: str, frames: int, persons: int, garments: int, seconds: float) -> None:
        hit = self._get_media_hit(media_id)
        if hit is None or hit["_source"]["run_id"] != run_id:
            raise RuntimeError(f"media {media_id} has no pending run {run_id}")
        source = hit["_source"]
        self._refresh("frames")
        moments = build_moments(self._run_frames(media_id, run_id))
        name = media_name(source["path"])
        self._bulk(self._moment_actions(self.aliases["moments"], run_id, moments, name), refresh=True)
        doc = {**source, "status": MediaStatus.DONE.value, "reason": "", "frames": frames, "persons": persons,
               "garments": garments, "seconds": seconds, "visible_run_id": run_id, "moments_run_id": run_id,
               "updated_at": time.time()}
        try:
            self._put_media(doc, expected=hit)  # the switch: from here on this run is what readers see
        except ConflictError:
            raise RuntimeError(f"media {media_id} has no pending run {run_id} (a newer run began)") from None
        for kind in ("frames", "moments"):
            self._delete(kind, self._not_visible(media_id, run_id))
        self._drop_stale_records(source["path"], media_id)

    def _drop_stale_records(self, path: str, media_id: str) -> None:
        """The file at this path changed content: its older records, frames and moments are no longer true."""
        self._refresh("media")
        query = {"bool": {"filter": [{"term": {"path": path}}], "must_not": [{"term": {"media_id": media_id}}]}}
        stale = [h["_id"] for h in self._scan("media", query, [{"media_id": "asc"}], source=False)]
        if not stale:
            return
        for kind in ("frames", "moments", "media"):
            self._delete(kind, {"terms": {"media_id": stale}})

    def fail_run(self, media_id: str, run_id: str, reason: str) -> None:
        self._refresh("frames", "moments")
        run = {"bool": {"filter": [{"term": {"media_id": media_id}}, {"term": {"run_id": run_id}}]}}
        for kind in ("frames", "moments"):
            self._delete(kind, run)
        hit = self._get_media_hit(media_id)
        if hit is not None:
            self._put_media({**hit["_source"], "status": MediaStatus.FAILED.value, "reason": reason,
                             "updated_at": time.time()})

    # -- moments -------------------------------------------------------------------------------
    def _visible(self, hits: Iterable[dict]) -> Iterator[tuple[dict, dict]]:
        """(moment source without the extras, its media source) for hits of a media's visible run only."""
        hits = list(hits)
        media = self._media_sources(h["_source"]["media_id"] for h in hits)
        for h in hits:
            source = h["_source"]
            owner = media.get(source["media_id"])
            if owner is not None and owner.get("visible_run_id") == source["run_id"]:
                yield {k: v for k, v in source.items() if k not in _MOMENT_EXTRAS}, owner

    def moment(self, moment_id: str) -> Moment | None:
        hits = self._scan("moments", {"term": {"moment_id": moment_id}}, [{"run_id": "asc"}],
                          source={"excludes": _RANKING_ONLY})
        for doc, _ in self._visible(hits):
            return Moment.model_validate(doc)
        return None

    def moments_of(self, media_id: str) -> list[Moment]:
        record = self.get_media(media_id)
        if record is None or not record.visible_run_id:
            return []
        query = {"bool": {"filter": [{"term": {"media_id": media_id}}, {"term": {"run_id": record.visible_run_id}}]}}
        hits = self._scan("moments", query, [{"start": "asc"}, {"build_order": "asc"}],
                          source={"excludes": list(_MOMENT_EXTRAS)})
        return [Moment.model_validate(h["_source"]) for h in hits]

    def rebuild_moments(self, media_ids: list[str] | None = None, *, only_missing: bool = False) -> int:
        """Rebuild moments from the visible frames. All of them (the default) go into a new moments
        index that replaces the current one by an alias swap, so searches never see a half-built set;
        `media_ids` or `only_missing` rebuild those media in place."""
        if media_ids is None and not only_missing:
            outdated = self.outdated()  # a schema change: those indices move to the new shape too
            return self.reindex(kinds=tuple(k for k in MAPPINGS if k in outdated or k == "moments"))
        self._refresh("media")
        wanted = set(media_ids) if media_ids is not None else None
        rebuilt = 0
        for hit in self._scan("media", {"exists": {"field": "visible_run_id"}}, [{"media_id": "asc"}]):
            source = hit["_source"]
            run_id = source.get("visible_run_id", "")
            if not run_id or (wanted is not None and source["media_id"] not in wanted):
                continue
            if only_missing and source.get("moments_run_id") == run_id:
                continue
            self._rebuild_in(self.aliases["moments"], source)
            rebuilt += 1
        return rebuilt

    def _rebuild_in(self, index: str, media: dict) -> None:
        media_id, run_id = media["media_id"], media["visible_run_id"]
        moments = build_moments(self._run_frames(media_id, run_id))
        self._bulk(self._moment_actions(index, run_id, moments, media_name(media["path"])), refresh=True)
        keep = [f"{run_id}:{m.moment_id}" for m in moments]
        self._retry(lambda: self.client.delete_by_query(
            index=index, refresh=True, conflicts="proceed",
            query={"bool": {"filter": [{"term": {"media_id": media_id}}], "must_not": [{"ids": {"values": keep}}]}}))

    def reindex(self, kinds: tuple[str, ...] = tuple(MAPPINGS)) -> int:
        """Move each alias to a fresh index of the current schema: media and frames are copied with
        `_reindex`, moments rebuilt from the visible frames; then one atomic alias swap, then the old
        indices go. Returns how many media had their moments rebuilt. Run it with no ingest writing:
        writes that land in an old index during the copy are lost with it."""
        self._refresh(*kinds)
        new: dict[str, str] = {}
        for kind in kinds:
            old = self._current_index(kind)
            generation = int(old.rsplit("-", 1)[1]) + 1 if old else 1
            self._put_template(kind)
            name = self._create_index(kind, generation, with_alias=False)
            if kind != "moments" and old:
                self._retry(lambda: self.client.reindex(
                    source={"index": old}, dest={"index": name}, refresh=True, wait_for_completion=True))
            new[kind] = name
        rebuilt = 0
        if "moments" in new:
            for hit in self._scan("media", {"match_all": {}}, [{"media_id": "asc"}]):
                if hit["_source"].get("visible_run_id"):
                    self._rebuild_in(new["moments"], hit["_source"])
                    rebuilt += 1
        actions = []
        for kind, name in new.items():
            old = self._current_index(kind)
            if old:
                actions.append({"remove": {"index": old, "alias": self.aliases[kind]}})
            actions.append({"add": {"index": name, "alias": self.aliases[kind]}})
        olds = [self._current_index(kind) for kind in new]
        self._retry(lambda: self.client.indices.update_aliases(actions=actions))
        for old in olds:
            if old:
                self._retry(lambda: self.client.indices.delete(index=old))
        return rebuilt

    # -- search --------------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> SearchPage:
        return self.search_counted(request).page

    def search_counted(self, request: SearchRequest) -> BoundSearch:
        """The page, and how many moment documents were read from the cluster to find it.

        The cluster ranks: one query (indexer/cluster_scoring.py) scores every candidate with the
        reference's score in log space and returns them best first with search_after, in batches of a
        page and two, then doubling; the walk (indexer.search.rank_by_bounds) scores those with the
        reference and stops once the page's last hit beats every score not yet read. The cluster's score
        being the score (float32 rounding aside), that is the page, one more, and the moments tied with
        the last within TIGHT_SLACK, whatever the query; a later page starts at its cursor's score. The
        total is exact when the ranking was read to its end from the top; otherwise the hits met
        (total_exact False)."""
        if request.cursor:
            decode_cursor(request.cursor, request)  # refuse a bad cursor before any work
        if (request.media_ids is not None and not request.media_ids) or not usable(request.query):
            return BoundSearch(SearchPage(hits=[], total=0), read=0)
        filters = candidate_query(request)["bool"]["filter"]
        if not self._moments_scored_in_cluster():  # a moments index from before its fields (until `vestis reindex`)
            return self._scan_search(request, filters)

        body, clauses, scale = cluster_scoring.score_body(request)
        if scale <= 0:  # a term mapped by meaning with similarity 0: every score is 0
            return BoundSearch(SearchPage(hits=[], total=0), read=0)
        offset = cluster_scoring.OFFSET * clauses
        read = [0]  # hits taken from the ranking so far
        # Where the next batch resumes: search_after on (_score, moment_id, run_id) with a score a hair
        # above the last hit's, and no ids, so the batch starts with every hit tied with (or within
        # RESUME_SLACK of) the last one, read again. osmem reports float32 scores but compares unrounded
        # ones, so resuming from the hit's own sort values skips or repeats its ties there; a real
        # cluster could resume from the hit itself and would read its ties once.
        resume: list[Any] = []
        cursor = decode_cursor(request.cursor, request) if request.cursor else None
        if cursor is not None:
            # every hit above the cursor's score is an earlier page's: start at the cursor's score
            resume[:] = [offset + math.log(-cursor[0] / scale) + RESUME_SLACK, "", ""]

        def bound(score: float) -> float:
            """The score of a hit scored `score` by the cluster, rounded up (Lucene scores in float32)."""
            return math.exp(score - offset) * scale * (1 + TIGHT_SLACK)

        def fetch(size: int) -> tuple[list[tuple[float, str, Any, None]], bool, float | None]:
            kwargs: dict[str, Any] = {
                "index": self.aliases["moments"], "size": size, "track_total_hits": False,
                "query": {"bool": {"filter": filters, "must": [body]}},
                "sort": [{"_score": "desc"}, {"moment_id": "asc"}, {"run_id": "asc"}],
                "_source": ["summary", "run_id", "media_id"]}
            if request.threshold > 0:  # below it (in log space, with the slack): not returned at all
                kwargs["min_score"] = offset + math.log(request.threshold / scale) - 2 * TIGHT_SLACK
            if resume:
                kwargs["search_after"] = list(resume)
            hits = self._retry(lambda: self.client.search(**kwargs))["hits"]["hits"]
            read[0] += len(hits)
            if hits:
                last = float(hits[-1]["sort"][0])
                if resume and len(hits) == size and last + RESUME_SLACK >= resume[0]:
                    # a whole batch tied with where it began: the next, larger one starts there again
                    if size >= MAX_BATCH:
                        raise _TooDeep()
                else:
                    resume[:] = [last + RESUME_SLACK, "", ""]
            rows = [(bound(float(h["sort"][0])), h["_source"]["summary"]["moment_id"], self._scoring_doc(h), None)
                    for h in self._visible_hits(hits)]
            return rows, len(hits) == size, bound(float(hits[-1]["sort"][0])) if hits else None

        try:
            # the page, one more (the next cursor), one for a tie; and the cursor's own hit, read again
            first = request.limit + 2 + (1 if resume else 0)
            found = rank_by_bounds([BoundList(fetch, 1.0, first=first)], request, self._moments)
        except _TooDeep:  # more moments tied than a batch holds (thousands): read them all
            return self._scan_search(request, filters)
        found.read = read[0]
        if cursor is not None and found.page.total_exact:
            # the walk started at the cursor: the earlier pages' hits were not met, the total is a lower bound
            found.page = found.page.model_copy(update={"total_exact": False})
        return found

    def _scan_search(self, request: SearchRequest, filters: list[dict]) -> BoundSearch:
        """Every candidate read and scored here (exact, slow)."""
        hits = list(self._scan("moments", {"bool": {"filter": filters}}, [{"moment_id": "asc"}, {"run_id": "asc"}],
                               source={"excludes": [f for f in _RANKING_ONLY if f != "summary"]}))
        docs = (self._scoring_doc(h) for h in self._visible_hits(hits))
        return BoundSearch(rank_documents(docs, request, self._full), read=len(hits))

    def _moments(self, ids: list[str]) -> dict[str, Moment]:
        """The whole moments of a page's hits, in one request."""
        if not ids:
            return {}
        kwargs: dict[str, Any] = {"index": self.aliases["moments"], "query": {"terms": {"moment_id": ids}},
                                  "size": 4 * len(ids), "track_total_hits": False,
                                  "_source": {"excludes": _RANKING_ONLY}}
        hits = self._retry(lambda: self.client.search(**kwargs))["hits"]["hits"]
        return {doc["moment_id"]: Moment.model_validate(doc) for doc, _ in self._visible(hits)}

    def _visible_hits(self, hits: list[dict]) -> list[dict]:
        """The hits of each media's visible run (older runs' documents wait for their deletion)."""
        media = self._media_sources(h["_source"]["media_id"] for h in hits)
        return [h for h in hits if media.get(h["_source"]["media_id"], {}).get("visible_run_id") == h["_source"]["run_id"]]

    @staticmethod
    def _scoring_doc(hit: dict) -> dict:
        source = hit["_source"]
        if "summary" in source:
            return source["summary"]
        return {k: v for k, v in source.items() if k not in _MOMENT_EXTRAS}  # a moment from before summaries

    def _moments_scored_in_cluster(self) -> bool:
        """Whether the moments index is of schema 4 or later (its moments carry `summary` and the
        `scoring` fields the cluster computes the score from)."""
        index = self._current_index("moments") or ""
        match = re.search(r"-s(\d+)-\d+$", index)
        return match is not None and int(match.group(1)) >= 4

    def _full(self, view: Mapping[str, Any]) -> dict:
        """The whole moment of a page hit (the lists read the scoring views only)."""
        moment = self.moment(view["moment_id"])
        assert moment is not None  # a hit of a visible run a moment ago
        return moment.model_dump()

    # -- similar (indexer/similar.py) --------------------------------------------------------------
    def similar(self, request: SimilarRequest) -> SearchPage:
        """The moments nearest to a garment: the cluster's own kNN (indexer/cluster_vectors.py) on
        Elasticsearch 8.11 and later, whose moments carry their garment vectors; elsewhere (OpenSearch,
        the osmem stand-in, which have no `dense_vector`) an exact scan of every visible moment's
        embeddings, linear in the moments (docs/similar-search.md). Either way the similarities are
        computed here from the stored embeddings and ranked by indexer.similar.rank_similar."""
        if self._knn_cluster and self._moments_have_vectors():
            return self._similar_knn(request)
        hits = self._scan("moments", {"exists": {"field": "moment_id"}}, [{"moment_id": "asc"}, {"run_id": "asc"}],
                          source={"excludes": _RANKING_ONLY})
        return self._rank_similar(hits, request)

    def _similar_knn(self, request: SimilarRequest) -> SearchPage:
        """The pool of moments the cluster finds nearest (`knn` on the nested garment vectors, under the
        request's media, time and review filters), ranked here. The total is a lower bound when the pool
        came back full."""
        k = request.pool(cluster_vectors.MAX_CANDIDATES)
        filters = candidate_query(request.filters)["bool"]["filter"]
        kwargs: dict[str, Any] = {"index": self.aliases["moments"], "size": k, "track_total_hits": False,
                                  "knn": cluster_vectors.knn_body(request.embedding, k, filters),
                                  "_source": {"excludes": _RANKING_ONLY}}
        hits = self._retry(lambda: self.client.search(**kwargs))["hits"]["hits"]
        page = self._rank_similar(hits, request)
        return page.model_copy(update={"total_exact": False}) if len(hits) >= k else page

    def _rank_similar(self, hits: Iterable[dict], request: SimilarRequest) -> SearchPage:
        """The page from these moment documents: each visible one's garments of the query's space, compared
        with the query here."""
        e = request.embedding
        query = e.unit()
        docs: dict[str, tuple[Moment, str]] = {}
        neighbours: list[Neighbour] = []
        for doc, media in self._visible(hits):
            moment = Moment.model_validate(doc)
            found = [(p, g, v) for p, g, v in moment_vectors(moment) if v.same_space(e)]
            if not found:
                continue
            docs[moment.moment_id] = (moment, media_name(media["path"]))
            neighbours += [Neighbour(moment.moment_id, p, g, float(v.unit() @ query)) for p, g, v in found]
        return rank_similar(neighbours, request, lambda ids: {i: docs[i] for i in ids if i in docs})

    def _moments_have_vectors(self) -> bool:
        """Whether the moments index's mapping has the garment vectors (an index made before, or on a
        cluster without kNN, is scanned until `vestis reindex`)."""
        index = self._current_index("moments")
        if index is None:
            return False
        mapping = self.client.indices.get_mapping(index=index)[index]["mappings"]
        return cluster_vectors.FIELD in mapping.get("properties", {})

    # -- review --------------------------------------------------------------------------------
    @staticmethod
    def _version(hit: ObjectApiResponse[Any] | None) -> str:
        return f"{hit['_seq_no']}.{hit['_primary_term']}" if hit else "0"

    def _visible_frame(self, frame_id: str) -> FrameLabels | None:
        """The machine version of a frame of its media's visible run."""
        self._refresh("frames")
        hits = list(self._scan("frames", {"term": {"frame_id": frame_id}}, [{"run_id": "asc"}]))
        media = self._media_sources(h["_source"]["media_id"] for h in hits)
        for h in hits:
            owner = media.get(h["_source"]["media_id"])
            if owner is not None and owner.get("visible_run_id") == h["_source"]["run_id"]:
                return FrameLabels.model_validate({k: v for k, v in h["_source"].items() if k != "run_id"})
        return None

    def _review_hit(self, frame_id: str) -> ObjectApiResponse[Any] | None:
        try:
            return self._retry(lambda: self.client.get(index=self.aliases["reviews"], id=frame_id))
        except NotFoundError:
            return None

    def reviewed_frame(self, frame_id: str) -> ReviewedFrame | None:
        machine = self._visible_frame(frame_id)
        if machine is None:
            return None
        hit = self._review_hit(frame_id)
        labels = FrameLabels.model_validate(hit["_source"]["labels"]) if hit else machine
        return ReviewedFrame(labels=labels, version=self._version(hit), status=review_status(labels))

    def save_review(self, frame_id: str, labels: FrameLabels, expected_version: str, entry: AuditEntry) -> ReviewedFrame:
        """The review document is the switch (one document: atomic, checked by seq_no); the audit entry
        and the moments follow. A crash in between leaves the edit in place with its moments rebuilt by
        the next edit or run of that media, and the audit entry missing."""
        if self._visible_frame(frame_id) is None:
            raise InvalidEdit(f"no visible frame {frame_id!r}")
        status = review_status(labels)
        doc = {"frame_id": frame_id, "media_id": labels.media_id, "status": status.value, "reviewer": entry.reviewer,
               "updated_at": entry.at, "labels": labels.model_dump(mode="json")}
        kwargs: dict[str, Any] = {"index": self.aliases["reviews"], "id": frame_id, "document": doc, "refresh": True}
        if expected_version == "0":
            kwargs["op_type"] = "create"
        else:
            try:
                seq_no, term = (int(part) for part in expected_version.split("."))
            except ValueError:
                raise EditConflict(frame_id, expected_version, self._version(self._review_hit(frame_id))) from None
            kwargs.update(if_seq_no=seq_no, if_primary_term=term)
        try:
            written = self._write(**kwargs)
        except ConflictError:
            raise EditConflict(frame_id, expected_version, self._version(self._review_hit(frame_id))) from None
        entry_id = time.time_ns() // 1000  # increasing (per clock), unique enough with the frame id in _id
        stored = entry.model_copy(update={"entry_id": entry_id})
        self._write(
            index=self.aliases["audit"], id=f"{frame_id}:{entry_id}", refresh=True,
            document={"entry_id": entry_id, "frame_id": frame_id, "media_id": entry.media_id,
                      "reviewer": entry.reviewer, "at": entry.at, "action": entry.action,
                      "entry": stored.model_dump(mode="json")})
        media = self._get_media_hit(labels.media_id)
        if media is not None and media["_source"].get("visible_run_id"):
            self._rebuild_in(self.aliases["moments"], media["_source"])
        return ReviewedFrame(labels=labels, version=self._version(written), status=status)

    def audit_log(self, *, frame_id: str | None = None, media_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        filters = [{"term": {name: value}} for name, value in (("frame_id", frame_id), ("media_id", media_id))
                   if value is not None]
        self._refresh("audit")
        response = self._retry(lambda: self.client.search(
            index=self.aliases["audit"], query={"bool": {"filter": filters}}, size=limit,
            sort=[{"entry_id": "desc"}, {"frame_id": "desc"}], source={"includes": ["entry"]}))
        return [AuditEntry.model_validate(h["_source"]["entry"]) for h in response["hits"]["hits"]]

    def _visible_frames(self, media_ids: list[str] | None) -> Iterator[FrameLabels]:
        """Every visible frame (of these media), human versions over machine ones."""
        self._refresh("media", "frames")
        query = {"terms": {"media_id": media_ids}} if media_ids is not None else {"match_all": {}}
        for hit in self._scan("media", query, [{"media_id": "asc"}]):
            source = hit["_source"]
            if source.get("visible_run_id"):
                yield from self._run_frames(source["media_id"], source["visible_run_id"])

    def review_queue(self, request: QueueRequest) -> QueuePage:
        """Computed over the visible frames of the media asked for (all by default): fine for the
        archives one team reviews, but a full read on a large index."""
        items = []
        for frame in self._visible_frames(request.media_ids):
            lowest = lowest_confidence(frame)
            values = label_values(frame)
            if request.label and request.label not in values:
                continue
            if not request.min_confidence <= (1.0 if lowest is None else lowest) <= request.max_confidence:
                continue
            status = review_status(frame)
            if request.status is not None and status != request.status:
                continue
            items.append(QueueItem(frame_id=frame.frame_id, media_id=frame.media_id, timestamp=frame.timestamp,
                                   status=status, lowest_confidence=lowest, labels=values))
        if request.sort == "confidence":
            items.sort(key=lambda i: (1.0 if i.lowest_confidence is None else i.lowest_confidence, i.media_id, i.timestamp))
        else:
            items.sort(key=lambda i: (i.media_id, i.timestamp))
        return QueuePage(items=items[request.offset:request.offset + request.limit], total=len(items))

    def reviewed_frames(self) -> list[FrameLabels]:
        self._refresh("reviews")
        hits = list(self._scan("reviews", {"match_all": {}}, [{"frame_id": "asc"}], source=["labels"]))
        found = []
        for hit in hits:
            frame = FrameLabels.model_validate(hit["_source"]["labels"])
            if self._visible_frame(frame.frame_id) is not None:
                found.append(frame)
        return sorted(found, key=lambda f: (f.media_id, f.timestamp))

    def close(self) -> None:
        self.client.close()
