"""Similar-garment search latency on the embedded store at up to 1M garment vectors (issue #17).

    .venv/bin/python bench/similar_bench.py [--garments 1000000] [--per-moment 4] [--queries 200]
        [--compare-hnsw 200000] [--out FILE]

A benchmark, not a test: nothing is asserted. Timed: `EmbeddedStore.similar` end to end (the faiss
search, the garment rows, the moment documents, the ranking), warm, the index already built and
saved; wall and thread CPU time, p50/p95/p99. Also: the time to build the index from the table
(what the first query after a big ingest pays), and the recall@10 of the approximate index against
an exact scan of the same vectors for the same queries (nearest garments, before grouping).

Data. Vectors in the real embedding's dimension (vision/garment_embedding.py), drawn around one
"garment type" per 50 vectors (a unit centre each, the same for the queries, plus noise so that
neighbours within a type are at cosine about 0.8): random unit vectors would have no neighbours at all, which no index is built for.
Moments are minimal valid ones (one person, `per_moment` summarised garments, each with its vector)
written with the store's own moment writer (`_replace_moments`, the code finish_run calls) into
media whose visible run is theirs, 1,000 moments a media. Seeded: the same arguments give the same
store.

`--compare-hnsw N`: hnswlib (M=16, ef_construction=100, ef=64) on the first N vectors, build time
and query time against faiss IVF on the same N: the measurement behind indexer/vector_index.py's
choice.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer import vector_index  # noqa: E402
from indexer.embedded import EmbeddedStore  # noqa: E402
from indexer.moments import Moment, MomentGarment, MomentPerson  # noqa: E402
from indexer.similar import SimilarRequest  # noqa: E402
from indexer.store import MediaRecord, MediaStatus  # noqa: E402
from labels import Box, Embedding, Label, RuleSet  # noqa: E402
from labels.vocabulary import COLORS, GARMENT_CATEGORIES  # noqa: E402
from vision.garment_embedding import DIM  # noqa: E402

SPACE = RuleSet("garment-embedding", "bench-1")
GARMENTS_PER_TYPE = 50  # e.g. one jacket model seen in 50 moments
NOISE = 0.5 / np.sqrt(DIM)  # per component: cosine to the type's centre about 0.9
MOMENTS_PER_MEDIA = 1000


def vectors(n: int, seed: int = 0, of: int | None = None) -> np.ndarray:
    """n vectors around the garment types of a data set of `of` (default n) vectors."""
    rng = np.random.default_rng(seed)
    types = max(10, (of or n) // GARMENTS_PER_TYPE)
    centres = np.random.default_rng(1234).standard_normal((types, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    v = centres[rng.integers(0, types, n)] + NOISE * rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _label(value: str) -> Label:
    return Label(value=value, confidence=0.8, model="bench", model_version="1")


def build(store: EmbeddedStore, data: np.ndarray, per_moment: int) -> None:
    categories, box = list(GARMENT_CATEGORIES), Box(x1=0, y1=0, x2=100, y2=200)
    n_moments = len(data) // per_moment
    for m0 in range(0, n_moments, MOMENTS_PER_MEDIA):
        media_id, run_id = f"bench{m0 // MOMENTS_PER_MEDIA:05d}", "run-1"
        store.begin_run(MediaRecord(media_id=media_id, path=f"/bench/{media_id}.mp4", kind="video",
                                    status=MediaStatus.PENDING, run_id=run_id))
        moments = []
        for m in range(m0, min(m0 + MOMENTS_PER_MEDIA, n_moments)):
            frame = f"{media_id}-{m:09d}"
            garments = [MomentGarment(category=_label(categories[(m + g) % len(categories)]), frames=1,
                                      color=_label(COLORS[(m * 7 + g) % len(COLORS)]),
                                      embedding=Embedding.made_by(SPACE, data[m * per_moment + g]))
                        for g in range(per_moment)]
            person = MomentPerson(track_index=0, detection=_label("person"), box=box, frame_ids=[frame],
                                  person_indices=[0], garments=garments)
            moments.append(Moment(moment_id=f"m{m:09d}", media_id=media_id, start=float(m % 600), end=float(m % 600),
                                  best_frame_id=frame, best_timestamp=float(m % 600), frame_ids=[frame],
                                  persons=[person]))

        def write(db, media_id=media_id, moments=moments):
            store._replace_moments(db, media_id, run_id, moments)
            db.execute("UPDATE media SET status = 'done', visible_run_id = ? WHERE media_id = ?", (run_id, media_id))

        store._write(write)
        store._moments_checked = True


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000
    return {f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)}


def bench(n: int, per_moment: int, queries: int, root: Path) -> dict:
    data = vectors(n)
    store = EmbeddedStore(root)
    t = time.perf_counter()
    build(store, data, per_moment)
    written = time.perf_counter() - t
    qs = vectors(queries, seed=1, of=n)
    request = lambda v: SimilarRequest(embedding=Embedding.made_by(SPACE, v), limit=20)  # noqa: E731
    t = time.perf_counter()
    store.similar(request(qs[0]))  # builds and saves the index
    index_build = time.perf_counter() - t
    for v in qs[:5]:
        store.similar(request(v))  # warm
    wall, cpu = [], []
    for v in qs:
        r = request(v)
        w, c = time.perf_counter(), time.thread_time()
        page = store.similar(r)
        wall.append(time.perf_counter() - w)
        cpu.append(time.thread_time() - c)
        assert page.hits
    # recall@10 of the nearest garments against an exact scan of what the table holds
    stored = data[: (n // per_moment) * per_moment]
    recall = []
    for v in qs[:50]:
        q = Embedding.made_by(SPACE, v).unit()
        exact = set(np.argsort(-(stored @ q))[:10].tolist())
        found = {i - 1 for i, _ in store._vectors.search((SPACE.name, SPACE.version, DIM), q, 10)}  # ids from 1
        recall.append(len(exact & found) / 10)
    kind = store._vectors._meta["kind"]
    store.close()
    sizes = {p.name: p.stat().st_size for p in root.iterdir() if p.is_file()}
    return {"garments": int(len(stored)), "moments": n // per_moment, "index": kind, "dim": DIM,
            "write_s": round(written, 1), "index_build_s": round(index_build, 1),
            "similar_wall_ms": percentiles(wall), "similar_cpu_ms": percentiles(cpu),
            "recall_at_10": round(float(np.mean(recall)), 3), "nprobe": vector_index.NPROBE,
            "bytes": sizes}


def compare_hnsw(n: int, queries: int) -> dict:
    import faiss
    import hnswlib

    data, qs = vectors(n), vectors(queries, seed=1, of=n)
    exact = np.argsort(-(qs @ data.T), axis=1)[:, :10]
    out: dict = {"vectors": n}
    t = time.perf_counter()
    h = hnswlib.Index(space="ip", dim=DIM)
    h.init_index(max_elements=n, M=16, ef_construction=100)
    h.add_items(data, np.arange(n))
    h.set_ef(64)
    out["hnswlib_build_s"] = round(time.perf_counter() - t, 1)
    times = []
    for q in qs:
        w = time.perf_counter()
        labels, _ = h.knn_query(q, k=10)
        times.append(time.perf_counter() - w)
    found = h.knn_query(qs, k=10)[0]
    out["hnswlib_query_ms"] = percentiles(times)
    out["hnswlib_recall_at_10"] = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found)])), 3)
    t = time.perf_counter()
    nlist = int(4 * np.sqrt(n))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(data[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)])
    ivf.add(data)
    ivf.nprobe = vector_index.NPROBE
    out["faiss_ivf_build_s"] = round(time.perf_counter() - t, 1)
    times = []
    for q in qs:
        w = time.perf_counter()
        ivf.search(q.reshape(1, -1), 10)
        times.append(time.perf_counter() - w)
    out["faiss_ivf_query_ms"] = percentiles(times)
    found = ivf.search(qs, 10)[1]
    out["faiss_ivf_recall_at_10"] = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found)])), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--garments", type=int, default=1_000_000)
    parser.add_argument("--per-moment", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--compare-hnsw", type=int, default=0, metavar="N")
    parser.add_argument("--data-dir", type=Path, help="build the store here (default: a temporary folder)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vestis-similar-bench-") as tmp:
        report = {"store": bench(args.garments, args.per_moment, args.queries, args.data_dir or Path(tmp))}
    if args.compare_hnsw:
        report["hnsw_vs_ivf"] = compare_hnsw(args.compare_hnsw, args.queries)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
