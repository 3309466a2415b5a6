"""The embedded store: one SQLite file in WAL mode, no server.

WAL gives one writer at a time with concurrent readers, and every write is a transaction, so a
process killed mid-write leaves the file consistent (the unfinished transaction is rolled back).

Search reads moments, not frames. `finish_run` merges the run's frames into moments
(indexer.moments.build_moments) and swaps the media's moments in the same transaction that makes the
run visible, so moments always describe the visible frames: a failed run never touches them, and a
crash mid-finish leaves the old frames with the old moments. Each moment is one row of `moments`
(the Moment as JSON, its indexer.search.scoring_view, and the columns filters need) and one row per
term its labels make possible in `moment_terms`: the bound indexer.search.moment_bounds gives, indexed
by (term, bound); and per person and garment, P of each such term in `term_probabilities`. A search
walks the bound list of its query's first positive term best first, computes each row's tight bound
(indexer.search.tight_bound) from the probabilities, scores with the reference code only the moments
whose tight bound can still reach the page, and stops once the page's last hit beats every bound not
yet read (`rank_by_bounds`): a page scores about a page of moments. A search limited to a few media
reads their moments, and one with a threshold under BOUND_FLOOR reads every candidate.

Databases from before moments existed keep working: the tables are created if missing, and
`moment_builds` records which run each media's moments were built from, so a done media whose
visible run has no build yet gets its moments built on the first read of moments through a store
object (`rebuild_moments(only_missing=True)`); `rebuild_moments()` rebuilds them all, e.g. after the
merging rules changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from indexer import vector_index
from indexer.moments import Moment, build_moments
from indexer.review import (
    AuditEntry,
    EditConflict,
    InvalidEdit,
    QueueItem,
    QueuePage,
    QueueRequest,
    ReviewedFrame,
    ReviewStatus,
    label_values,
    lowest_confidence,
    review_status,
)
from indexer.search import (
    BOUND_FLOOR,
    BOUNDS_VERSION,
    SALIENCE_KEY,
    BoundList,
    BoundSearch,
    SearchPage,
    SearchRequest,
    bound_is_score,
    decode_cursor,
    driver_keys,
    moment_bounds,
    rank_by_bounds,
    rank_documents,
    GarmentTerms,
    PersonTerms,
    TightQuery,
    scoring_view,
    term_probabilities,
    tight_bound,
    tight_query,
    usable,
)
from indexer.similar import Neighbour, SimilarRequest, moment_vectors, rank_similar
from indexer.store import MediaRecord, MediaStatus, media_name
from labels import FrameLabels

SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    media_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    pipeline_version TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    duration REAL NOT NULL DEFAULT 0,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    frames INTEGER NOT NULL DEFAULT 0,
    persons INTEGER NOT NULL DEFAULT 0,
    garments INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    run_id TEXT NOT NULL DEFAULT '',
    visible_run_id TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS media_path ON media(path);
CREATE TABLE IF NOT EXISTS frames (
    frame_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    media_id TEXT NOT NULL,
    timestamp REAL NOT NULL,
    reason TEXT NOT NULL,
    person_count INTEGER NOT NULL,
    garment_count INTEGER NOT NULL,
    doc TEXT NOT NULL,
    lowest_confidence REAL,           -- of the labels nobody confirmed (NULL: none open); the review queue
    label_values TEXT,                -- ' dress person red ' (NULL in databases from before review: filled on demand)
    PRIMARY KEY (frame_id, run_id)
);
CREATE INDEX IF NOT EXISTS frames_by_media ON frames(media_id, run_id, timestamp);
CREATE TABLE IF NOT EXISTS moments (
    moment_id TEXT PRIMARY KEY,
    media_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    best_frame_id TEXT NOT NULL,
    persons INTEGER NOT NULL,
    detection REAL NOT NULL,          -- the most confident person's detection
    expression TEXT NOT NULL,         -- of the only person ('' when unknown or several persons)
    expression_confidence REAL NOT NULL,
    doc TEXT NOT NULL,                -- the Moment as JSON
    summary TEXT                      -- its indexer.search.scoring_view (NULL in older databases: doc is used)
);
CREATE INDEX IF NOT EXISTS moments_by_media ON moments(media_id, start);
CREATE INDEX IF NOT EXISTS moments_by_start ON moments(start);
CREATE INDEX IF NOT EXISTS moments_by_expression ON moments(expression);
-- Search's bound lists (indexer.search.moment_bounds): per moment and term key ('color_black',
-- 'salience'), an upper bound of the moment's score for a query with that term, read best first.
CREATE TABLE IF NOT EXISTS moment_terms (
    term TEXT NOT NULL,
    score REAL NOT NULL,
    moment_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS moment_terms_by_term ON moment_terms(term, score DESC, moment_id);
CREATE INDEX IF NOT EXISTS moment_terms_by_moment_term ON moment_terms(moment_id, term, score);
-- Search's tight bounds (indexer.search.term_probabilities): per moment, person and garment (-1: the
-- person's own terms, 'salience' and expressions), P(term) and the confidences min_confidence looks
-- at; a search reads those of its terms for each row of its bound list (indexer.search.tight_bound).
-- Clustered by moment (WITHOUT ROWID): a batch's rows are read from a few pages, not one page a row.
CREATE TABLE IF NOT EXISTS term_probabilities (
    moment_id TEXT NOT NULL,
    term TEXT NOT NULL,
    person INTEGER NOT NULL,
    garment INTEGER NOT NULL,
    p REAL NOT NULL,
    confidence REAL NOT NULL,          -- of the label P rests on (a person's 'salience': its detection)
    category_confidence REAL NOT NULL, -- of the garment's category (1 for a person's own terms)
    PRIMARY KEY (moment_id, term, person, garment)
) WITHOUT ROWID;
-- Facts about the database itself ('moment_terms': the bound lists were filled for every moment;
-- 'term_probabilities': the same for the tight bounds).
DROP INDEX IF EXISTS moment_terms_by_moment;  -- replaced by moment_terms_by_moment_term
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
DROP TABLE IF EXISTS moment_garments;  -- what searches narrowed with before the bound lists
-- Which run each media's moments were built from: tells a database from before moments apart
-- from a media whose frames simply show nobody (no moments either).
CREATE TABLE IF NOT EXISTS moment_builds (
    media_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL
);
-- The human version of each reviewed frame (indexer/review.py); reads put it over the machine's.
CREATE TABLE IF NOT EXISTS reviews (
    frame_id TEXT PRIMARY KEY,
    media_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    lowest_confidence REAL,           -- NULL: every label confirmed
    label_values TEXT NOT NULL,       -- ' red dress person ': for the queue's label filter
    reviewer TEXT NOT NULL,
    updated_at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_by_media ON reviews(media_id);
CREATE TABLE IF NOT EXISTS audit (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    frame_id TEXT NOT NULL,
    media_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    at REAL NOT NULL,
    doc TEXT NOT NULL                 -- the AuditEntry as JSON
);
CREATE INDEX IF NOT EXISTS audit_by_frame ON audit(frame_id, entry_id);
CREATE INDEX IF NOT EXISTS audit_by_media ON audit(media_id, entry_id);
"""


# The bound lists' indexes (in SCHEMA too): a fill of every moment's lists drops and rebuilds them.
# store_meta's rows (key order) for bound lists and probabilities of this BOUNDS_VERSION
_LISTS_CURRENT = [("moment_terms", BOUNDS_VERSION), ("term_probabilities", BOUNDS_VERSION)]
_MOMENT_TERMS_INDEXES = {
    "moment_terms_by_term": "CREATE INDEX IF NOT EXISTS moment_terms_by_term ON moment_terms(term, score DESC, moment_id)",
    "moment_terms_by_moment_term": ("CREATE INDEX IF NOT EXISTS moment_terms_by_moment_term "
                                    "ON moment_terms(moment_id, term, score)"),
}

_MEDIA_FIELDS = [
    "media_id", "path", "kind", "status", "pipeline_version", "reason", "duration", "width", "height",
    "frames", "persons", "garments", "seconds", "run_id", "visible_run_id", "updated_at",
]


def _values_text(frame: FrameLabels) -> str:
    return f" {' '.join(label_values(frame))} "


def path_media_id(path: str) -> str:
    """Id for a file whose content could not be read, so its failure can still be listed."""
    return "path-" + hashlib.blake2b(path.encode(), digest_size=8).hexdigest()


MMAP_BYTES = 1 << 34  # at most the file's size is mapped
CACHE_KIB = 256 * 1024


class EmbeddedStore:
    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir).expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "vestis.sqlite3"  # indexer.EMBEDDED_STORE_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=60000")
        # Reads through the OS page cache mapped in, and a larger cache of its own (the default 2 MB is
        # a few hundred pages of a file of gigabytes): searches seek all over the bound lists. Neither
        # changes what is written or when.
        self._db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        with self._lock:
            self._db.executescript(SCHEMA)
            self._db.executescript(vector_index.SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(frames)")}
            for column, kind in (("lowest_confidence", "REAL"), ("label_values", "TEXT")):
                if column not in columns:  # a database from before review
                    self._db.execute(f"ALTER TABLE frames ADD COLUMN {column} {kind}")
            if "summary" not in {row[1] for row in self._db.execute("PRAGMA table_info(moments)")}:
                self._db.execute("ALTER TABLE moments ADD COLUMN summary TEXT")
        if not self._query("SELECT 1 FROM moments LIMIT 1") and self._query(
                "SELECT key, value FROM store_meta WHERE key IN ('moment_terms', 'term_probabilities') "
                "ORDER BY key") != _LISTS_CURRENT:  # (a write only then: opening a store takes no write lock)
            self._write(self._mark_lists_current_if_empty)
        self._moments_checked = False  # see _ensure_moments
        self._vectors = vector_index.GarmentVectorIndex(self.data_dir, self._query)
        self._queue_columns_filled = False  # see _fill_queue_columns

    # -- helpers -------------------------------------------------------------------------------
    def _write(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Run `work` in one write transaction: all of it is committed, or none (also on a crash)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                work(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _run_statements(db: sqlite3.Connection, statements) -> None:
        for sql, params in statements:
            if isinstance(params, list):
                db.executemany(sql, params)
            else:
                db.execute(sql, params)

    def _transaction(self, statements):
        self._write(lambda db: self._run_statements(db, statements))

    def _query(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @staticmethod
    def _record(row: tuple) -> MediaRecord:
        values = dict(zip(_MEDIA_FIELDS, row))
        values["status"] = MediaStatus(values["status"])
        return MediaRecord(**values)

    # -- media ---------------------------------------------------------------------------------
    def get_media(self, media_id: str) -> MediaRecord | None:
        rows = self._query(f"SELECT {', '.join(_MEDIA_FIELDS)} FROM media WHERE media_id = ?", (media_id,))
        return self._record(rows[0]) if rows else None

    def list_media(self) -> list[MediaRecord]:
        rows = self._query(f"SELECT {', '.join(_MEDIA_FIELDS)} FROM media ORDER BY path, media_id")
        return [self._record(r) for r in rows]

    def _upsert_media(self, record: MediaRecord):
        cols = ", ".join(_MEDIA_FIELDS)
        marks = ", ".join("?" for _ in _MEDIA_FIELDS)
        values = tuple(getattr(record, f).value if f == "status" else getattr(record, f) for f in _MEDIA_FIELDS)
        return f"INSERT OR REPLACE INTO media ({cols}) VALUES ({marks})", values

    def record_failure(self, path: str, kind: str, reason: str, media_id: str | None = None) -> None:
        media_id = media_id or path_media_id(path)
        existing = self.get_media(media_id)
        if existing is not None:
            self._transaction([
                ("UPDATE media SET status = ?, reason = ?, updated_at = ? WHERE media_id = ?",
                 (MediaStatus.FAILED.value, reason, time.time(), media_id)),
            ])
            return
        record = MediaRecord(media_id=media_id, path=path, kind=kind, status=MediaStatus.FAILED,
                             reason=reason, updated_at=time.time())
        self._transaction([self._upsert_media(record)])

    def begin_run(self, record: MediaRecord) -> None:
        existing = self.get_media(record.media_id)
        record.status = MediaStatus.PENDING
        record.reason = ""
        record.visible_run_id = existing.visible_run_id if existing else ""
        record.updated_at = time.time()
        self._transaction([
            # Leftovers of runs that never finished (a crash) are invisible; clear them now.
            ("DELETE FROM frames WHERE media_id = ? AND run_id != ?", (record.media_id, record.visible_run_id)),
            self._upsert_media(record),
        ])

    # -- frames --------------------------------------------------------------------------------
    def write_frames(self, run_id: str, frames: list[FrameLabels]) -> None:
        rows = [
            (f.frame_id, run_id, f.media_id, f.timestamp, f.reason, len(f.persons), f.garment_count,
             f.model_dump_json(), lowest_confidence(f), _values_text(f))
            for f in frames
        ]
        self._transaction([(
            "INSERT OR REPLACE INTO frames (frame_id, run_id, media_id, timestamp, reason, person_count, "
            "garment_count, doc, lowest_confidence, label_values) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)])

    def finish_run(self, media_id: str, run_id: str, frames: int, persons: int, garments: int, seconds: float) -> None:
        record = self.get_media(media_id)
        if record is None or record.run_id != run_id:
            raise RuntimeError(f"media {media_id} has no pending run {run_id}")
        # Built before the transaction (it can take a while for a long video, and other writers
        # wait on the lock): an error here leaves everything as it was.
        moments = build_moments(self._run_frames(media_id, run_id))
        stale = self._query("SELECT media_id FROM media WHERE path = ? AND media_id != ?", (record.path, media_id))

        def finish(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT run_id FROM media WHERE media_id = ?", (media_id,)).fetchone()
            if row is None or row[0] != run_id:  # a newer run began while the moments were built
                raise RuntimeError(f"media {media_id} has no pending run {run_id}")
            self._run_statements(db, [
                ("DELETE FROM frames WHERE media_id = ? AND run_id != ?", (media_id, run_id)),
                (("UPDATE media SET status = ?, reason = '', frames = ?, persons = ?, garments = ?, seconds = ?, "
                  "visible_run_id = ?, updated_at = ? WHERE media_id = ?"),
                 (MediaStatus.DONE.value, frames, persons, garments, seconds, run_id, time.time(), media_id)),
            ])
            self._replace_moments(db, media_id, run_id, moments)
            # The file at this path changed content: its older record, frames and moments are no longer true.
            self._run_statements(db, [
                ("DELETE FROM frames WHERE media_id = ?", stale),
                ("DELETE FROM media WHERE media_id = ?", stale),
                *self._drop_moments(stale),
            ])

        self._write(finish)

    def fail_run(self, media_id: str, run_id: str, reason: str) -> None:
        self._transaction([
            ("DELETE FROM frames WHERE media_id = ? AND run_id = ?", (media_id, run_id)),
            ("UPDATE media SET status = ?, reason = ?, updated_at = ? WHERE media_id = ?",
             (MediaStatus.FAILED.value, reason, time.time(), media_id)),
        ])

    def frames_of(self, media_id: str) -> list[FrameLabels]:
        rows = self._query(
            "SELECT COALESCE(r.doc, f.doc) FROM frames f "
            "JOIN media m ON m.media_id = f.media_id AND f.run_id = m.visible_run_id "
            "LEFT JOIN reviews r ON r.frame_id = f.frame_id WHERE f.media_id = ? ORDER BY f.timestamp",
            (media_id,),
        )
        return [FrameLabels.model_validate(json.loads(r[0])) for r in rows]

    def frame_ids_of(self, media_id: str) -> set[str]:
        rows = self._query(
            "SELECT f.frame_id FROM frames f JOIN media m ON m.media_id = f.media_id AND f.run_id = m.visible_run_id "
            "WHERE f.media_id = ?", (media_id,))
        return {r[0] for r in rows}

    # -- moments -------------------------------------------------------------------------------
    def _run_frames(self, media_id: str, run_id: str, db: sqlite3.Connection | None = None) -> list[FrameLabels]:
        """The run's frames, each in its human version where a reviewer edited it: a re-ingest never
        puts machine labels back over human ones. `db`: read inside the caller's transaction."""
        sql = ("SELECT COALESCE(r.doc, f.doc) FROM frames f LEFT JOIN reviews r ON r.frame_id = f.frame_id "
               "WHERE f.media_id = ? AND f.run_id = ? ORDER BY f.timestamp, f.frame_id")
        rows = db.execute(sql, (media_id, run_id)).fetchall() if db is not None else self._query(sql, (media_id, run_id))
        return [FrameLabels.model_validate_json(r[0]) for r in rows]

    @staticmethod
    def _drop_moments(media_ids: list[tuple[str]]) -> list[tuple[str, list[tuple[str]]]]:
        return [
            ("DELETE FROM moment_terms WHERE moment_id IN (SELECT moment_id FROM moments WHERE media_id = ?)",
             media_ids),
            ("DELETE FROM term_probabilities WHERE moment_id IN (SELECT moment_id FROM moments WHERE media_id = ?)",
             media_ids),
            ("DELETE FROM garment_vectors WHERE media_id = ?", media_ids),
            ("DELETE FROM moments WHERE media_id = ?", media_ids),
            ("DELETE FROM moment_builds WHERE media_id = ?", media_ids),
        ]

    def _replace_moments(self, db: sqlite3.Connection, media_id: str, run_id: str, moments: list[Moment]) -> None:
        """Swap the media's moments for these, inside the caller's transaction."""
        moment_rows, term_rows, vector_rows, probability_rows = [], [], [], []
        for m in moments:
            vector_rows += vector_index.vector_rows(m.moment_id, m.media_id, moment_vectors(m))
            detection = max(p.detection.confidence for p in m.persons)
            single = m.persons[0] if len(m.persons) == 1 else None
            expression = single.expression if single is not None else None
            view = scoring_view(m)
            moment_rows.append((
                m.moment_id, m.media_id, run_id, m.start, m.end, m.best_frame_id, len(m.persons), detection,
                expression.value if expression else "", expression.confidence if expression else 0.0,
                m.model_dump_json(), json.dumps(view, separators=(",", ":")),
            ))
            term_rows += [(term, score, m.moment_id) for term, score in moment_bounds(view).items()]
            probability_rows += _probability_rows(m.moment_id, view)
        self._run_statements(db, [
            *self._drop_moments([(media_id,)]),
            (("INSERT INTO moments (moment_id, media_id, run_id, start, \"end\", best_frame_id, persons, detection, "
              "expression, expression_confidence, doc, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
             moment_rows),
            ("INSERT INTO moment_terms (term, score, moment_id) VALUES (?, ?, ?)", term_rows),
            (_INSERT_PROBABILITIES, probability_rows),
            ("INSERT INTO moment_builds (media_id, run_id) VALUES (?, ?)", (media_id, run_id)),
            ("INSERT INTO garment_vectors (moment_id, media_id, person_index, garment_index, model, model_version, "
             "dim, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", vector_rows),
        ])

    def rebuild_moments(self, media_ids: list[str] | None = None, *, only_missing: bool = False) -> int:
        """Rebuild moments from the visible frames (all media, or these); returns how many were rebuilt.

        For databases written before moments existed (`only_missing`: media whose visible run has no
        moments built yet; reads do this by themselves) and after a change to how moments are made.
        """
        rows = self._query(
            "SELECT m.media_id, m.visible_run_id, b.run_id FROM media m "
            "LEFT JOIN moment_builds b ON b.media_id = m.media_id WHERE m.visible_run_id != '' ORDER BY m.media_id"
        )
        wanted = set(media_ids) if media_ids is not None else None
        rebuilt = 0
        for media_id, run_id, built_run in rows:
            if (wanted is not None and media_id not in wanted) or (only_missing and built_run == run_id):
                continue
            self._swap_moments(media_id, run_id, build_moments(self._run_frames(media_id, run_id)))
            rebuilt += 1
        return rebuilt

    def _swap_moments(self, media_id: str, run_id: str, moments: list[Moment]) -> None:
        def swap(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT visible_run_id FROM media WHERE media_id = ?", (media_id,)).fetchone()
            if row is not None and row[0] == run_id:  # else a newer run finished meanwhile, with its own
                self._replace_moments(db, media_id, run_id, moments)

        self._write(swap)

    def _ensure_moments(self) -> None:
        """Build missing moments once per store object: a database from before moments existed; and
        fill the bound lists of moments from before them."""
        if not self._moments_checked:
            self.rebuild_moments(only_missing=True)
            self._fill_moment_terms()
            self._moments_checked = True

    @staticmethod
    def _mark_lists_current_if_empty(db: sqlite3.Connection) -> None:
        """A store with no moments has no stale bound lists: every moment it gets is written with this
        version's. Said so in store_meta, so the first search after an ingest into a new store does not
        fill the lists again from every moment (at 1M frames: minutes, and gigabytes of WAL)."""
        if db.execute("SELECT 1 FROM moments LIMIT 1").fetchone() is None:
            db.executemany("INSERT OR REPLACE INTO store_meta (key, value) VALUES (?, ?)", _LISTS_CURRENT)

    def _fill_moment_terms(self) -> None:
        """Fill the bound lists and tight bounds of moments from before them, or of another BOUNDS_VERSION
        (the bounds are derived from the scoring model: stale ones would hide hits). One pass over the
        stored scoring views (or, in older databases, the documents), parsed, not validated; the
        lists' indexes are dropped and built again after (a sorted build: inserting millions of rows
        into them one by one took most of an hour at 1M frames), the probabilities go in in the order of
        their clustered key. One transaction: a killed fill leaves the store as it was."""
        lists = not self._query("SELECT 1 FROM store_meta WHERE key = 'moment_terms' AND value = ?", (BOUNDS_VERSION,))
        probabilities = not self._query("SELECT 1 FROM store_meta WHERE key = 'term_probabilities' AND value = ?",
                                        (BOUNDS_VERSION,))
        if not (lists or probabilities):
            return

        def fill(db: sqlite3.Connection) -> None:
            if lists:
                for name in _MOMENT_TERMS_INDEXES:
                    db.execute(f"DROP INDEX IF EXISTS {name}")
                db.execute("DELETE FROM moment_terms")
            if probabilities:
                db.execute("DELETE FROM term_probabilities")
            views = db.execute("SELECT moment_id, COALESCE(summary, doc) FROM moments ORDER BY moment_id")
            while chunk := views.fetchmany(1000):
                terms, rows = [], []
                for moment_id, raw in chunk:
                    view = json.loads(raw)
                    if lists:
                        terms += [(term, score, moment_id) for term, score in moment_bounds(view).items()]
                    if probabilities:
                        rows += sorted(_probability_rows(moment_id, view), key=lambda r: (r[3], r[1], r[2]))
                db.executemany("INSERT INTO moment_terms (term, score, moment_id) VALUES (?, ?, ?)", terms)
                db.executemany(_INSERT_PROBABILITIES, rows)
            if lists:
                for sql in _MOMENT_TERMS_INDEXES.values():
                    db.execute(sql)
            for key, filled in (("moment_terms", lists), ("term_probabilities", probabilities)):
                if filled:
                    db.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES (?, ?)", (key, BOUNDS_VERSION))

        self._write(fill)

    def moment(self, moment_id: str) -> Moment | None:
        self._ensure_moments()
        rows = self._query(
            "SELECT m.doc FROM moments m JOIN media md ON md.media_id = m.media_id AND m.run_id = md.visible_run_id "
            "WHERE m.moment_id = ?", (moment_id,)
        )
        return Moment.model_validate_json(rows[0][0]) if rows else None

    def moments_of(self, media_id: str) -> list[Moment]:
        self._ensure_moments()
        rows = self._query(
            "SELECT m.doc FROM moments m JOIN media md ON md.media_id = m.media_id AND m.run_id = md.visible_run_id "
            "WHERE m.media_id = ? ORDER BY m.start, m.rowid", (media_id,)  # rowid: build order within a start
        )
        return [Moment.model_validate_json(r[0]) for r in rows]

    # -- search --------------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> SearchPage:
        return self.search_counted(request).page

    def search_counted(self, request: SearchRequest) -> BoundSearch:
        """The page, and how many moment documents were read to find it."""
        if request.cursor:
            decode_cursor(request.cursor, request)  # refuse a bad cursor before any work
        self._ensure_moments()
        if (request.media_ids is not None and not request.media_ids) or not usable(request.query):
            return BoundSearch(SearchPage(hits=[], total=0), read=0)
        filters, params = _filters(request)

        def full(view: Mapping[str, Any]) -> dict:
            return json.loads(self._query("SELECT doc FROM moments WHERE moment_id = ?", (view["moment_id"],))[0][0])

        few = request.media_ids is not None and self._query(
            f"SELECT COUNT(*) FROM moments m WHERE m.media_id IN ({', '.join('?' * len(request.media_ids))})",
            request.media_ids)[0][0] <= SCAN_AT_MOST
        if few or request.threshold < BOUND_FLOOR:
            # A few media (read them all), or a threshold under what the bound lists keep.
            rows = self._query(f"SELECT COALESCE(m.summary, m.doc) FROM moments m {_VISIBLE} WHERE {filters}", params)
            return BoundSearch(rank_documents((doc for (doc,) in rows), request, full), read=len(rows))

        tight = tight_query(request)
        tight_keys = _tight_keys(tight)

        def tight_bounds(ids: list[str]) -> dict[str, float]:
            """Each moment's tight bound (absent: it cannot match)."""
            rows = self._query(
                f"SELECT moment_id, person, garment, term, p, confidence, category_confidence FROM term_probabilities "
                f"WHERE moment_id IN ({', '.join('?' * len(ids))}) AND term IN ({', '.join('?' * len(tight_keys))})",
                [*ids, *tight_keys]) if ids else []
            return {moment_id: tight_bound(persons, tight) for moment_id, persons in _persons(rows).items()}

        def load(ids: list[str]) -> dict[str, str]:
            return dict(self._query(f"SELECT moment_id, COALESCE(summary, doc) FROM moments WHERE moment_id IN "
                                    f"({', '.join('?' * len(ids))})", ids))

        def bound_list(term: str, similarity: float, others: list[tuple[str, float]]) -> BoundList:
            """The first term's list, best bound first (the index's order); with other terms, only moments
            whose other bounds reach the threshold too (a hit is in every list). Each row comes with the
            moment's tight bound, computed in SQL: the walk reads the views of only those that can
            reach the page."""
            after: list[Any] = []  # the last row's (bound, moment id): the keyset to go on from
            joins = "".join(f" JOIN moment_terms o{i} ON o{i}.moment_id = t.moment_id AND o{i}.term = ? "
                            f"AND o{i}.score >= ?" for i in range(len(others)))
            join_params = [p for key, sim in others for p in (key, request.threshold / sim * (1 - 1e-9))]
            # Without a media or time filter the moments table is not joined (every moment_terms row is
            # a visible moment's).
            moments = "" if filters == "1" else f" JOIN moments m ON m.moment_id = t.moment_id {_VISIBLE}"
            minimum = request.threshold / similarity * (1 - 1e-9)  # rows whose bound reaches the threshold
            confident, confident_params = _confident(tight)
            # Where the bound is the score, a page after a cursor starts at the cursor's score: the rows
            # above it are the earlier pages' (rounding aside: the bound is the score to the last bits).
            top = " AND t.score <= ?" if exact and cursor is not None else ""
            top_params = [-cursor[0] / similarity * (1 + 1e-9)] if top and cursor is not None else []

            def fetch(size: int) -> tuple[list[tuple[float, str, None, float | None]], bool, float | None]:
                resume = "AND (t.score < ? OR (t.score = ? AND t.moment_id > ?))" if after else ""
                sql = (f"SELECT t.score, t.moment_id FROM moment_terms t{joins}{moments} "
                       f"WHERE t.term = ? AND t.score >= ? AND {filters}{confident}{top} {resume} "
                       "ORDER BY t.score DESC, t.moment_id LIMIT ?")
                resume_params = [after[0], after[0], after[1]] if after else []
                keys = self._query(sql, [*join_params, term, minimum, *params, *confident_params, *top_params,
                                         *resume_params, size])
                if keys:
                    after[:] = keys[-1]
                bounds = tight_bounds([moment_id for _, moment_id in keys])
                rows: list[tuple[float, str, None, float | None]] = [
                    (b, moment_id, None, bounds.get(moment_id, 0.0)) for b, moment_id in keys]
                return rows, len(keys) == size, keys[-1][0] if keys else None

            # When the bound is the score, the page and one more are the first rows (ties aside; after a
            # cursor, the cursor's own row too).
            first = request.limit + 2 + (1 if top else 0) if exact else 2 * (request.limit + 1)
            return BoundList(fetch, similarity, first=first, load=load)

        drivers = driver_keys(request.query, request.threshold)
        count = None
        exact = bound_is_score(request)
        cursor = decode_cursor(request.cursor, request) if request.cursor else None
        if exact:
            drivers = drivers[:1]  # the one list whose bound is the score
            [(term, _)] = drivers
            if filters == "1":  # with a media or time filter, counting would join every row: not done

                def count() -> int:
                    # every row of moment_terms is a visible moment's (moments are swapped with the run)
                    return self._query("SELECT COUNT(*) FROM moment_terms t WHERE t.term = ? AND t.score >= ?",
                                       [term, request.threshold])[0][0]

        def moments(ids: list[str]) -> dict[str, Moment]:
            rows = self._query(f"SELECT moment_id, doc FROM moments WHERE moment_id IN ({', '.join('?' * len(ids))})",
                               ids) if ids else []
            return {moment_id: Moment.model_validate_json(doc) for moment_id, doc in rows}

        (term, similarity), *others = drivers
        found = rank_by_bounds([bound_list(term, similarity, others)], request, moments, count)
        if exact and cursor is not None and count is None and found.page.total_exact:
            # the walk started at the cursor: the earlier pages' hits were not met, the total is a lower bound
            found.page = found.page.model_copy(update={"total_exact": False})
        return found

    # -- similar (indexer/similar.py) ------------------------------------------------------------
    def similar(self, request: SimilarRequest) -> SearchPage:
        """Moments whose garments are nearest the request's embedding (vector_index.py's index)."""
        self._ensure_moments()
        e = request.embedding
        space = (e.model, e.model_version, e.dim)
        found = self._vectors.search(space, e.unit(), request.pool(10**9))
        if not found:
            return SearchPage(hits=[], total=0)
        rows = self._query(
            f"SELECT vector_id, moment_id, person_index, garment_index FROM garment_vectors "
            f"WHERE vector_id IN ({', '.join('?' * len(found))})", tuple(i for i, _ in found))
        where = {r[0]: r[1:] for r in rows}
        neighbours = [Neighbour(where[i][0], where[i][1], where[i][2], s) for i, s in found if i in where]
        return rank_similar(neighbours, request, self._moments_by_id)

    def _moments_by_id(self, moment_ids: list[str]) -> dict[str, tuple[Moment, str]]:
        if not moment_ids:
            return {}
        rows = self._query(
            "SELECT m.doc, md.path FROM moments m JOIN media md ON md.media_id = m.media_id "
            f"AND m.run_id = md.visible_run_id WHERE m.moment_id IN ({', '.join('?' * len(moment_ids))})",
            tuple(moment_ids))
        moments = (Moment.model_validate_json(doc) for doc, _ in rows)
        return {m.moment_id: (m, media_name(path)) for m, (_, path) in zip(moments, rows)}

    # -- review --------------------------------------------------------------------------------
    def _visible_frame_row(self, db: sqlite3.Connection, frame_id: str) -> tuple[str, str, str, int] | None:
        """(media id, visible run id, the frame as readers see it, review version) of a visible frame."""
        return db.execute(
            "SELECT f.media_id, f.run_id, COALESCE(r.doc, f.doc), COALESCE(r.version, 0) FROM frames f "
            "JOIN media m ON m.media_id = f.media_id AND f.run_id = m.visible_run_id "
            "LEFT JOIN reviews r ON r.frame_id = f.frame_id WHERE f.frame_id = ?", (frame_id,)
        ).fetchone()

    def reviewed_frame(self, frame_id: str) -> ReviewedFrame | None:
        with self._lock:
            row = self._visible_frame_row(self._db, frame_id)
        if row is None:
            return None
        labels = FrameLabels.model_validate_json(row[2])
        return ReviewedFrame(labels=labels, version=str(row[3]), status=review_status(labels))

    def save_review(self, frame_id: str, labels: FrameLabels, expected_version: str, entry: AuditEntry) -> ReviewedFrame:
        """Store the human version of a frame if it is still at `expected_version` (else EditConflict),
        record `entry` in the audit trail, and rebuild the media's moments, all in one transaction."""
        saved: dict = {}

        def save(db: sqlite3.Connection) -> None:
            row = self._visible_frame_row(db, frame_id)
            if row is None:
                raise KeyError(frame_id)
            media_id, run_id, _, version = row
            if str(version) != expected_version:
                raise EditConflict(frame_id, expected_version, str(version))
            status = review_status(labels)
            db.execute(
                "INSERT OR REPLACE INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (frame_id, media_id, version + 1, status.value, lowest_confidence(labels), _values_text(labels),
                 entry.reviewer, entry.at, labels.model_dump_json()),
            )
            cursor = db.execute("INSERT INTO audit (frame_id, media_id, reviewer, at, doc) VALUES (?, ?, ?, ?, ?)",
                                (frame_id, media_id, entry.reviewer, entry.at, "{}"))
            entry_id = cursor.lastrowid
            db.execute("UPDATE audit SET doc = ? WHERE entry_id = ?",
                       (entry.model_copy(update={"entry_id": entry_id}).model_dump_json(), entry_id))
            self._replace_moments(db, media_id, run_id, build_moments(self._run_frames(media_id, run_id, db)))
            saved.update(version=version + 1, status=status)

        try:
            self._write(save)
        except KeyError:
            raise InvalidEdit(f"no visible frame {frame_id!r}") from None
        return ReviewedFrame(labels=labels, version=str(saved["version"]), status=saved["status"])

    def audit_log(self, *, frame_id: str | None = None, media_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        where: list[str] = []
        params: list[Any] = []
        if frame_id is not None:
            where.append("frame_id = ?")
            params.append(frame_id)
        if media_id is not None:
            where.append("media_id = ?")
            params.append(media_id)
        sql = f"SELECT doc FROM audit {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY entry_id DESC LIMIT ?"
        return [AuditEntry.model_validate_json(r[0]) for r in self._query(sql, (*params, limit))]

    def reviewed_frames(self) -> list[FrameLabels]:
        """The human version of every reviewed frame still visible, by media and time (for export)."""
        rows = self._query(
            "SELECT r.doc FROM reviews r JOIN frames f ON f.frame_id = r.frame_id "
            "JOIN media m ON m.media_id = f.media_id AND f.run_id = m.visible_run_id ORDER BY f.media_id, f.timestamp"
        )
        return [FrameLabels.model_validate_json(r[0]) for r in rows]

    def _fill_queue_columns(self) -> None:
        """Databases from before review: compute the queue columns of frames that lack them, once per
        store object (the check scans the frames table; every frame written since fills them itself)."""
        if self._queue_columns_filled:
            return
        while True:
            rows = self._query("SELECT frame_id, run_id, doc FROM frames WHERE label_values IS NULL LIMIT 2000")
            if not rows:
                self._queue_columns_filled = True
                return
            updates = []
            for frame_id, run_id, doc in rows:
                frame = FrameLabels.model_validate_json(doc)
                updates.append((lowest_confidence(frame), _values_text(frame), frame_id, run_id))
            self._transaction([("UPDATE frames SET lowest_confidence = ?, label_values = ? "
                                "WHERE frame_id = ? AND run_id = ?", updates)])

    def review_queue(self, request: QueueRequest) -> QueuePage:
        self._fill_queue_columns()
        status = "COALESCE(r.status, 'unreviewed')"
        # A frame with nothing left to confirm sorts and filters as fully sure.
        lowest = "COALESCE(CASE WHEN r.frame_id IS NULL THEN f.lowest_confidence ELSE r.lowest_confidence END, 1.0)"
        values = "COALESCE(r.label_values, f.label_values)"
        where = ["1"]
        params: list[Any] = []
        if request.media_ids is not None:
            where.append(f"f.media_id IN ({', '.join('?' * len(request.media_ids))})")
            params += request.media_ids
        if request.label:  # a whole value: LIKE's wildcards in it are literal
            escaped = request.label.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(f"{values} LIKE ? ESCAPE '\\'")
            params.append(f"% {escaped} %")
        where.append(f"{lowest} BETWEEN ? AND ?")
        params += [request.min_confidence, request.max_confidence]
        if request.status is not None:
            where.append(f"{status} = ?")
            params.append(request.status.value)
        base = (f"FROM frames f JOIN media m ON m.media_id = f.media_id AND f.run_id = m.visible_run_id "
                f"LEFT JOIN reviews r ON r.frame_id = f.frame_id WHERE {' AND '.join(where)}")
        order = f"{lowest}, f.media_id, f.timestamp" if request.sort == "confidence" else "f.media_id, f.timestamp"
        total = self._query(f"SELECT COUNT(*) {base}", params)[0][0]
        rows = self._query(
            f"SELECT f.frame_id, f.media_id, f.timestamp, {status}, "
            f"CASE WHEN r.frame_id IS NULL THEN f.lowest_confidence ELSE r.lowest_confidence END, {values} "
            f"{base} ORDER BY {order} LIMIT ? OFFSET ?", (*params, request.limit, request.offset))
        items = [QueueItem(frame_id=frame_id, media_id=media_id, timestamp=timestamp, status=ReviewStatus(state),
                           lowest_confidence=low, labels=text.split())
                 for frame_id, media_id, timestamp, state, low, text in rows]
        return QueuePage(items=items, total=total)

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --- search filters ---------------------------------------------------------------------------------

# The moments of each media's visible run only (a crash between writing moments and flipping the run
# leaves none other, but the join costs nothing and says what is meant).
_VISIBLE = "JOIN media md ON md.media_id = m.media_id AND m.run_id = md.visible_run_id"

# A search limited to media with at most this many moments in all reads them all (exact total) instead
# of walking the bound lists; more, and SQLite walks the lists from the media (moments_by_media).
SCAN_AT_MOST = 100


def _filters(request: SearchRequest) -> tuple[str, list]:
    """SQL on the moments row `m` for the request's media and time filters."""
    where = ["1"]
    params: list[Any] = []
    if request.media_ids is not None:
        where.append(f"m.media_id IN ({', '.join('?' * len(request.media_ids))})")
        params += request.media_ids
    if request.start is not None:
        where.append('m."end" >= ?')
        params.append(request.start)
    if request.end is not None:
        where.append("m.start <= ?")
        params.append(request.end)
    return " AND ".join(where), params


# --- tight bounds ---------------------------------------------------------------------------------

_INSERT_PROBABILITIES = ("INSERT OR REPLACE INTO term_probabilities (moment_id, person, garment, term, p, confidence, "
                         "category_confidence) VALUES (?, ?, ?, ?, ?, ?, ?)")


def _probability_rows(moment_id: str, view: Mapping[str, Any]) -> list[tuple]:
    """term_probabilities rows of one moment (its scoring view or whole document)."""
    rows: list[tuple] = []
    for p, person in enumerate(term_probabilities(view)):
        rows.append((moment_id, p, -1, SALIENCE_KEY, person.salience, person.detection_confidence, 1.0))
        rows += [(moment_id, p, -1, key, q, confidence, 1.0) for key, (q, confidence) in person.expression.items()]
        for g, garment in enumerate(person.garments):
            rows += [(moment_id, p, g, key, q, confidence, garment.category_confidence)
                     for key, (q, confidence) in garment.terms.items()]
    return rows


def _tight_keys(tight: TightQuery) -> list[str]:
    """The term keys the tight bound of a query reads (and the salience)."""
    keys = ([t.key for constraint in tight.constraints for t in constraint] + [t.key for t in tight.expression]
            + list(tight.absent))
    return list(dict.fromkeys([SALIENCE_KEY, *keys]))


def _confident(tight: TightQuery) -> tuple[str, list]:
    """SQL on the bound-list row `t` that keeps only moments whose tight bound can be above 0 under a
    min_confidence (the same tests as indexer.search.tight_bound): a person detected at least that
    surely, with, per constraint, a garment whose category and every term are that sure, and each
    expression term. Under a min_confidence most rows of a list fail it, and a row SQLite passes over
    costs a fraction of one the walk computes the bound of. '' at no min_confidence."""
    if tight.floor <= 0:
        return "", []
    floor = tight.floor
    clauses: list[str] = []
    params: list[Any] = [SALIENCE_KEY, floor]
    for c, constraint in enumerate(tight.constraints):
        keys = [t.key for t in constraint]  # all positive under a min_confidence (tight_query)
        joins = "".join(f" JOIN term_probabilities c{c}_{i} ON c{c}_{i}.moment_id = c{c}_0.moment_id "
                        f"AND c{c}_{i}.term = ? AND c{c}_{i}.person = c{c}_0.person "
                        f"AND c{c}_{i}.garment = c{c}_0.garment AND c{c}_{i}.confidence >= ?"
                        for i in range(1, len(keys)))
        clauses.append(f" AND EXISTS (SELECT 1 FROM term_probabilities c{c}_0{joins} WHERE c{c}_0.moment_id = s.moment_id "
                       f"AND c{c}_0.term = ? AND c{c}_0.person = s.person AND c{c}_0.garment >= 0 "
                       f"AND c{c}_0.confidence >= ? AND c{c}_0.category_confidence >= ?)")
        params += [p for key in keys[1:] for p in (key, floor)] + [keys[0], floor, floor]
    for i, t in enumerate(tight.expression):
        clauses.append(f" AND EXISTS (SELECT 1 FROM term_probabilities e{i} WHERE e{i}.moment_id = s.moment_id "
                       f"AND e{i}.term = ? AND e{i}.person = s.person AND e{i}.garment = -1 AND e{i}.confidence >= ?)")
        params += [t.key, floor]
    return (" AND EXISTS (SELECT 1 FROM term_probabilities s WHERE s.moment_id = t.moment_id AND s.term = ? "
            f"AND s.garment = -1 AND s.confidence >= ?{''.join(clauses)})"), params


def _persons(rows: list[tuple]) -> dict[str, list[PersonTerms]]:
    """term_probabilities rows (moment id, person, garment, term, p, confidence, category confidence) of
    some terms, as the PersonTerms of each moment; a garment none of the terms is on is left out (it
    adds nothing to a bound)."""
    persons: dict[str, dict[int, PersonTerms]] = {}
    garments: dict[tuple[str, int, int], GarmentTerms] = {}
    for moment_id, person, garment, term, p, confidence, category_confidence in rows:
        of = persons.setdefault(moment_id, {})
        if person not in of:
            of[person] = PersonTerms(0.0, -1.0, {}, [])  # no salience row: cannot match
        if garment < 0:
            if term == SALIENCE_KEY:
                of[person].salience, of[person].detection_confidence = p, confidence
            else:
                of[person].expression[term] = (p, confidence)
        else:
            found = garments.get((moment_id, person, garment))
            if found is None:
                found = garments[(moment_id, person, garment)] = GarmentTerms(category_confidence, {})
                of[person].garments.append(found)
            found.terms[term] = (p, confidence)
    return {moment_id: list(of.values()) for moment_id, of in persons.items()}
