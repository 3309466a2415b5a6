"""The embedded store's nearest-neighbour index over garment vectors (faiss), kept beside the SQLite file.

The SQLite table `garment_vectors` is the truth: its rows are written and dropped in the same
transactions that swap a media's moments, so they always describe the visible moments. This index is
a cache of that table that catches up before each query: rows with a vector id above the last one it
holds are added, and ids logged in `garment_vector_deletions` (a trigger writes them) since the last
deletion it applied are removed. Both checks read one max of a primary key, so an index in step
costs nothing to verify, and a lagging or lost index file is never wrong, only rebuilt.

Exact below `EXACT_BELOW` vectors (a flat inner-product scan: as fast as anything at that size, and
exact); above it an inverted-file index (IVF, `nlist` ~ 4 sqrt(n) k-means cells, `nprobe` of them
searched), trained on the vectors present when it is built and retrained when the store has grown
fourfold since. Chosen over HNSW (hnswlib, faiss's own) by measurement (bench/similar_bench.py): IVF
builds a million vectors in seconds where HNSW takes minutes on two cores, removes ids exactly, and
answers well inside the latency target. Vectors are compared by inner product on unit vectors
(cosine).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

EXACT_BELOW = 50_000
NPROBE = 16
RETRAIN_GROWTH = 4.0
_BATCH = 200_000

Space = tuple[str, str, int]  # model, model version, dim


def _faiss() -> Any:
    import faiss  # lazy: the CLI's other commands do not pay for it

    return faiss


class GarmentVectorIndex:
    """Nearest garment vectors of one space, read from an EmbeddedStore's tables."""

    def __init__(self, data_dir: Path, query: Callable[[str, tuple], list[tuple]]):
        self.file = data_dir / "garment-vectors.faiss"
        self.meta_file = data_dir / "garment-vectors.json"
        self._query = query
        self._lock = threading.Lock()
        self._index: Any = None
        self._meta: dict = {}

    def search(self, space: Space, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(vector id, cosine) of the k nearest vectors of `space`, best first."""
        with self._lock:
            self._sync(space)
            if self._index is None or self._index.ntotal == 0 or k <= 0:
                return []
            q = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
            scores, ids = self._index.search(q, min(k, int(self._index.ntotal)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    # -- keeping in step ------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int]:
        [(max_id,)] = self._query("SELECT COALESCE(MAX(vector_id), 0) FROM garment_vectors", ())
        [(max_deleted,)] = self._query("SELECT COALESCE(MAX(seq), 0) FROM garment_vector_deletions", ())
        return int(max_id), int(max_deleted)

    def _sync(self, space: Space) -> None:
        max_id, max_deleted = self._stamp()
        if self._index is None or self._meta.get("space") != list(space):
            self._load(space)
        meta = self._meta
        if self._index is not None and (meta["max_id"], meta["max_deleted"]) == (max_id, max_deleted):
            return
        if self._index is None or self._needs_rebuild():
            self._rebuild(space, max_id, max_deleted)
        else:
            self._catch_up(space, max_id, max_deleted)
        self._save()

    def _needs_rebuild(self) -> bool:
        count = self._count(tuple(self._meta["space"]))
        built_for = self._meta.get("built_for", 0)
        exact = self._meta.get("kind") == "flat"
        return (exact and count >= EXACT_BELOW) or (not exact and count >= RETRAIN_GROWTH * max(built_for, 1))

    def _count(self, space: tuple) -> int:
        [(n,)] = self._query("SELECT COUNT(*) FROM garment_vectors WHERE model = ? AND model_version = ? AND dim = ?",
                             space)
        return int(n)

    def _rows(self, space: Space, after: int, upto: int):
        """(ids, vectors) of the space's rows with after < vector id <= upto, in batches."""
        while True:
            rows = self._query(
                "SELECT vector_id, vector FROM garment_vectors WHERE vector_id > ? AND vector_id <= ? "
                "AND model = ? AND model_version = ? AND dim = ? ORDER BY vector_id LIMIT ?",
                (after, upto, *space, _BATCH))
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float16).reshape(len(rows), space[2])
            yield ids, vectors.astype(np.float32)
            after = int(ids[-1])

    def _rebuild(self, space: Space, max_id: int, max_deleted: int) -> None:
        faiss = _faiss()
        n = self._count(space)
        dim = space[2]
        if n < EXACT_BELOW:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            kind = "flat"
            for ids, vectors in self._rows(space, 0, max_id):
                index.add_with_ids(vectors, ids)
        else:
            nlist = int(4 * math.sqrt(n))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            kind = "ivf"
            sample = _sample(self._rows(space, 0, max_id), min(n, 64 * nlist))
            index.train(sample)
            index.nprobe = NPROBE
            for ids, vectors in self._rows(space, 0, max_id):
                index.add_with_ids(vectors, ids)
        self._index = index
        self._meta = {"space": list(space), "kind": kind, "built_for": n, "max_id": max_id, "max_deleted": max_deleted}

    def _catch_up(self, space: Space, max_id: int, max_deleted: int) -> None:
        faiss = _faiss()
        gone = [r[0] for r in self._query(
            "SELECT vector_id FROM garment_vector_deletions WHERE seq > ? AND seq <= ?",
            (self._meta["max_deleted"], max_deleted))]
        if gone:
            self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(gone, dtype=np.int64)))
        for ids, vectors in self._rows(space, self._meta["max_id"], max_id):
            self._index.add_with_ids(vectors, ids)
        self._meta.update(max_id=max_id, max_deleted=max_deleted)

    # -- the files beside the SQLite database -----------------------------------------------------
    def _load(self, space: Space) -> None:
        self._index, self._meta = None, {}
        try:
            meta = json.loads(self.meta_file.read_text())
            if meta.get("space") != list(space):
                return
            index = _faiss().read_index(str(self.file))
        except (OSError, ValueError, RuntimeError):
            return  # no index yet, or a damaged one: rebuilt from the table
        if meta.get("kind") == "ivf":
            index.nprobe = NPROBE
        self._index, self._meta = index, meta

    def _save(self) -> None:
        """Written to temporary names and renamed, so a reader never loads half a file; the meta
        goes last, so a crash between the two leaves a stamp that makes the next reader catch up."""
        tmp_index, tmp_meta = self.file.with_suffix(".faiss.tmp"), self.meta_file.with_suffix(".json.tmp")
        try:
            _faiss().write_index(self._index, str(tmp_index))
            os.replace(tmp_index, self.file)
            tmp_meta.write_text(json.dumps(self._meta))
            os.replace(tmp_meta, self.meta_file)
        except OSError:
            pass  # a read-only data dir: the index lives in memory for this process


def _sample(batches, n: int) -> np.ndarray:
    """Up to n training vectors spread over the batches."""
    parts, have = [], 0
    for _, vectors in batches:
        parts.append(vectors)
        have += len(vectors)
    every = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    if len(every) <= n:
        return every
    pick = np.random.default_rng(0).choice(len(every), size=n, replace=False)
    return np.ascontiguousarray(every[np.sort(pick)])


SCHEMA = """
-- One row per summarised garment of a visible moment that has an embedding (indexer/similar.py);
-- written and dropped with the moments. vector: `dim` float16 values of the unit vector.
CREATE TABLE IF NOT EXISTS garment_vectors (
    vector_id INTEGER PRIMARY KEY AUTOINCREMENT,
    moment_id TEXT NOT NULL,
    media_id TEXT NOT NULL,
    person_index INTEGER NOT NULL,
    garment_index INTEGER NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS garment_vectors_by_media ON garment_vectors(media_id);
CREATE TABLE IF NOT EXISTS garment_vector_deletions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    vector_id INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS garment_vectors_deleted AFTER DELETE ON garment_vectors
BEGIN
    INSERT INTO garment_vector_deletions (vector_id) VALUES (old.vector_id);
END;
"""


def vector_rows(moment_id: str, media_id: str, entries) -> list[tuple]:
    """Rows of garment_vectors for a moment's (person, garment, Embedding) entries."""
    return [(moment_id, media_id, p, g, e.model, e.model_version, e.dim, e.unit().astype(np.float16).tobytes())
            for p, g, e in entries]

