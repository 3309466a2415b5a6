"""The embedded store: one SQLite file in WAL mode, no server.

WAL gives one writer at a time with concurrent readers, and every write is a transaction, so a
process killed mid-write leaves the file consistent (the unfinished transaction is rolled back).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from indexer.store import MediaRecord, MediaStatus
from vision.labels import FrameLabels

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
    PRIMARY KEY (frame_id, run_id)
);
CREATE INDEX IF NOT EXISTS frames_by_media ON frames(media_id, run_id, timestamp);
"""

_MEDIA_FIELDS = [
    "media_id", "path", "kind", "status", "pipeline_version", "reason", "duration", "width", "height",
    "frames", "persons", "garments", "seconds", "run_id", "visible_run_id", "updated_at",
]


def path_media_id(path: str) -> str:
    """Id for a file whose content could not be read, so its failure can still be listed."""
    return "path-" + hashlib.blake2b(path.encode(), digest_size=8).hexdigest()


class EmbeddedStore:
    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir).expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "vestis.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=60000")
        with self._lock:
            self._db.executescript(SCHEMA)

    # -- helpers -------------------------------------------------------------------------------
    def _transaction(self, statements):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    if isinstance(params, list):
                        self._db.executemany(sql, params)
                    else:
                        self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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
             f.model_dump_json())
            for f in frames
        ]
        self._transaction([("INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)])

    def finish_run(self, media_id: str, run_id: str, frames: int, persons: int, garments: int, seconds: float) -> None:
        record = self.get_media(media_id)
        if record is None or record.run_id != run_id:
            raise RuntimeError(f"media {media_id} has no pending run {run_id}")
        stale = self._query("SELECT media_id FROM media WHERE path = ? AND media_id != ?", (record.path, media_id))
        self._transaction([
            ("DELETE FROM frames WHERE media_id = ? AND run_id != ?", (media_id, run_id)),
            ("UPDATE media SET status = ?, reason = '', frames = ?, persons = ?, garments = ?, seconds = ?, "
             "visible_run_id = ?, updated_at = ? WHERE media_id = ?",
             (MediaStatus.DONE.value, frames, persons, garments, seconds, run_id, time.time(), media_id)),
            # The file at this path changed content: its older record and frames are no longer true.
            ("DELETE FROM frames WHERE media_id = ?", stale),
            ("DELETE FROM media WHERE media_id = ?", stale),
        ])

    def fail_run(self, media_id: str, run_id: str, reason: str) -> None:
        self._transaction([
            ("DELETE FROM frames WHERE media_id = ? AND run_id = ?", (media_id, run_id)),
            ("UPDATE media SET status = ?, reason = ?, updated_at = ? WHERE media_id = ?",
             (MediaStatus.FAILED.value, reason, time.time(), media_id)),
        ])

    def frames_of(self, media_id: str) -> list[FrameLabels]:
        rows = self._query(
            "SELECT f.doc FROM frames f JOIN media m ON m.media_id = f.media_id AND f.run_id = m.visible_run_id "
            "WHERE f.media_id = ? ORDER BY f.timestamp",
            (media_id,),
        )
        return [FrameLabels.model_validate(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
