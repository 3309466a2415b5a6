"""Search quality end to end: index labelled photos, search with queries made from the labels.

Every photo of a Clothing Attribute Dataset folder (see vision/evaluation/attributes.py) goes
through the vision stages ingest runs (`vision.stages`), as one media with one frame, into a fresh
embedded store. Queries are written the way a user types them ("red long-sleeve shirt", "striped
sweater", "someone in black") from each combination of labels that occurs on some photo, parsed by
the product's QueryParser, and answered by the store's `search`, all pages.

Relevance. The labels describe the main person's upper garment; they are read into our vocabulary
with the attribute evaluation's tables (outerwear -> coat/jacket, shirt -> shirt/blouse, "long
sleeves" -> long, pattern_stripe -> striped; colours are the data set's ten, all our words too).
For one query a photo is
  - relevant when every term is labelled and holds,
  - not relevant when some term is labelled and does not hold,
  - unjudged when no term fails but some is blank (annotators disagreed): it is dropped from the
    ranking and from the photo count, so it neither helps nor hurts ("condensed list").
Only queries with at least one relevant photo are kept.

Both rankings are measured: the default (the labels' alternatives, indexer/search.py) and `strict`
(top labels only), on the same labelled store.

Metrics, per query, on the ranked list of distinct photos the search returned (a photo with several
persons gives several moments; its first one counts):
  recall@k = |relevant in the top k| / min(k, |relevant|)   (1.0 when the top k are as good as
             they can be; recall@1 is thus precision@1)
  AP       = mean over the relevant photos of precision at the rank where each was returned; a
             relevant photo not returned at all contributes 0
Means are over queries (each query weighs the same), per kind of query and overall. The random
baseline is the exact expectation of the same metrics for a uniformly random order of all judged
photos (a system that returns everything, shuffled).
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from configs import Settings
from vision.evaluation.attributes import DATASET_CATEGORY, DATASET_COLORS, DATASET_PATTERN, DATASET_SLEEVE, read_labels

Progress = Callable[[int, int], None]
Term = tuple[str, str]  # (field, vocabulary word)

# The data set's words -> ours (the inverse of the attribute evaluation's tables).
CATEGORY_FROM_DATASET = {theirs: ours for ours, theirs in DATASET_CATEGORY.items()}
SLEEVE_FROM_DATASET = {theirs: ours for ours, theirs in DATASET_SLEEVE.items()}

# Fields of each kind of query, in the order the kinds are reported.
KINDS: dict[str, tuple[str, ...]] = {
    "category": ("category",),
    "color": ("color",),
    "color+category": ("color", "category"),
    "sleeve+category": ("sleeve", "category"),
    "pattern+category": ("pattern", "category"),
    "color+sleeve+category": ("color", "sleeve", "category"),
    "color+pattern+category": ("color", "pattern", "category"),
}
KS = (1, 5, 10)

# How a user writes each label: the word people use, which the parser maps back (synonym table).
CATEGORY_WORDS = {"t-shirt": "t-shirt", "shirt/blouse": "shirt", "sweater": "sweater", "tank top": "tank top",
                  "coat/jacket": "jacket", "suit": "suit", "dress": "dress"}
SLEEVE_WORDS = {"sleeveless": "sleeveless", "short": "short-sleeve", "long": "long-sleeve"}
PATTERN_WORDS = {"solid": "plain", "striped": "striped", "plaid": "plaid", "floral": "floral",
                 "spotted": "polka-dot", "graphics": "graphic"}

DEFINITIONS = {
    "recall@k": "|relevant in top k| / min(k, |relevant|), top k of the distinct photos returned",
    "ap": "mean over relevant photos of precision at their rank; a relevant photo not returned counts 0",
    "random": "exact expectation under a uniformly random order of all judged photos",
    "judged": "photos whose labels decide the query; photos with a blank label that could make them "
              "relevant are left out of the ranking",
}


# --- ground truth -------------------------------------------------------------------------------


def truth(row: dict[str, str], term: Term) -> bool | None:
    """Whether the row's labels say the term holds; None when the label is blank (or absent)."""
    name, value = term
    if name == "category":
        label = row.get("category") or ""
        return CATEGORY_FROM_DATASET[label] == value if label in CATEGORY_FROM_DATASET else None
    if name == "sleeve":
        label = row.get("sleevelength") or ""
        return SLEEVE_FROM_DATASET[label] == value if label in SLEEVE_FROM_DATASET else None
    column = DATASET_PATTERN[value] if name == "pattern" else value
    cell = row.get(column) or ""
    return {"1": True, "0": False}.get(cell)


def positive_terms(row: dict[str, str]) -> dict[str, list[Term]]:
    """Per field, the terms the row's labels say hold (several colours or patterns may)."""
    out: dict[str, list[Term]] = {"category": [], "color": [], "sleeve": [], "pattern": []}
    if (row.get("category") or "") in CATEGORY_FROM_DATASET:
        out["category"].append(("category", CATEGORY_FROM_DATASET[row["category"]]))
    if (row.get("sleevelength") or "") in SLEEVE_FROM_DATASET:
        out["sleeve"].append(("sleeve", SLEEVE_FROM_DATASET[row["sleevelength"]]))
    out["pattern"] = [("pattern", ours) for ours, column in DATASET_PATTERN.items() if row.get(column) == "1"]
    out["color"] = [("color", c) for c in DATASET_COLORS if row.get(c) == "1"]
    return out


def query_text(terms: Sequence[Term]) -> str:
    """The query as typed: "red long-sleeve shirt", "plain black sweater", "someone in red"."""
    values = dict(terms)
    if set(values) == {"color"}:
        return f"someone in {values['color']}"
    pattern = values.get("pattern")
    words = [
        PATTERN_WORDS[pattern] if pattern == "solid" else None,  # "plain red shirt", not "red plain shirt"
        values.get("color"),
        PATTERN_WORDS[pattern] if pattern and pattern != "solid" else None,
        SLEEVE_WORDS[values["sleeve"]] if "sleeve" in values else None,
        CATEGORY_WORDS[values["category"]] if "category" in values else None,
    ]
    return " ".join(w for w in words if w)


@dataclass
class Query:
    kind: str
    terms: tuple[Term, ...]
    text: str
    relevant: set[str]  # photo ids
    judged: set[str]  # relevant and not relevant photo ids (unjudged left out)


def make_queries(rows: Sequence[dict[str, str]], ids: Sequence[str]) -> list[Query]:
    """Every combination of labels of each kind that some row has, with its relevance over all rows."""
    queries = []
    for kind, fields in KINDS.items():
        combos: dict[tuple[Term, ...], None] = {}  # ordered set: queries in order of first occurrence
        for row in rows:
            terms = positive_terms(row)
            for combo in itertools.product(*(terms[f] for f in fields)):
                combos.setdefault(tuple(combo))
        for combo in combos:
            relevant, judged = set(), set()
            for row, photo in zip(rows, ids):
                holds = [truth(row, term) for term in combo]
                if False in holds:
                    judged.add(photo)
                elif None not in holds:
                    judged.add(photo)
                    relevant.add(photo)
            if relevant:
                queries.append(Query(kind, combo, query_text(combo), relevant, judged))
    return queries


# --- metrics ------------------------------------------------------------------------------------


def recall_at(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        raise ValueError("recall needs at least one relevant item")
    return len(relevant.intersection(ranking[:k])) / min(k, len(relevant))


def average_precision(ranking: Sequence[str], relevant: set[str]) -> float:
    if not relevant:
        raise ValueError("average precision needs at least one relevant item")
    found, total = 0, 0.0
    for rank, item in enumerate(ranking, start=1):
        if item in relevant:
            found += 1
            total += found / rank
    return total / len(relevant)


def random_recall_at(n: int, r: int, k: int) -> float:
    """Expected recall@k when all n judged items, r of them relevant, come in a random order."""
    return min(k, n) * r / n / min(k, r)


def random_average_precision(n: int, r: int) -> float:
    """Expected AP of a uniformly random order of n items, r relevant.

    A relevant item lands at rank i with probability 1/n, with (i-1)(r-1)/(n-1) other relevant items
    above it on average, so E[AP] = 1/n * sum_i (1 + (i-1)(r-1)/(n-1)) / i
                                   = (H_n + (r-1)/(n-1) * (n - H_n)) / n.
    """
    if not 1 <= r <= n:
        raise ValueError(f"need 1 <= relevant <= items, got {r} of {n}")
    if n == 1:
        return 1.0
    harmonic = math.fsum(1 / i for i in range(1, n + 1))
    return (harmonic + (r - 1) / (n - 1) * (n - harmonic)) / n


@dataclass
class RetrievalScores:
    """Per-query results; `report()` averages them per kind and overall."""

    results: list[dict] = field(default_factory=list)

    def add(self, query: Query, ranking: Sequence[str]) -> None:
        ranked = [photo for photo in ranking if photo in query.judged]
        n, r = len(query.judged), len(query.relevant)
        self.results.append({
            "kind": query.kind, "query": query.text, "relevant": r, "judged": n, "returned": len(ranked),
            **{f"recall@{k}": recall_at(ranked, query.relevant, k) for k in KS},
            "ap": average_precision(ranked, query.relevant),
            **{f"random_recall@{k}": random_recall_at(n, r, k) for k in KS},
            "random_ap": random_average_precision(n, r),
        })

    def summary(self, results: list[dict]) -> dict:
        keys = [f"recall@{k}" for k in KS] + ["ap"]
        out: dict = {"queries": len(results),
                     "mean_relevant": float(np.mean([q["relevant"] for q in results])),
                     "nothing_returned": sum(q["returned"] == 0 for q in results),
                     "no_relevant_returned": sum(q["ap"] == 0 for q in results)}
        for key in keys:
            out[key if key != "ap" else "map"] = float(np.mean([q[key] for q in results]))
        out["random"] = {key if key != "ap" else "map": float(np.mean([q[f"random_{key}"] for q in results]))
                         for key in keys}
        return out

    def report(self) -> dict:
        kinds = {kind: self.summary([q for q in self.results if q["kind"] == kind]) for kind in KINDS
                 if any(q["kind"] == kind for q in self.results)}
        overall = self.summary(self.results) if self.results else None
        return {"kinds": kinds, "overall": overall, "queries": self.results}


# --- indexing and searching ---------------------------------------------------------------------


def photo_id(image_name: str) -> str:
    """The media id of a labelled photo: its file name without the extension."""
    return Path(image_name).stem


def already_labelled(store, images: Path, rows: Sequence[dict[str, str]]) -> set[str]:
    """The photos a kept store already holds, done, from the same file (`--reuse`)."""
    from indexer.store import MediaStatus

    done = set()
    for row in rows:
        record = store.get_media(photo_id(row["image"]))
        if record is not None and record.status == MediaStatus.DONE and record.path == str(images / row["image"]):
            done.add(record.media_id)
    return done


def index_photos(settings: Settings, store, images: Path, rows: Sequence[dict[str, str]],
                 progress: Progress | None = None) -> int:
    """Run the configured vision stages on each photo and index it as ingest would (one media, one
    frame); returns how many photos had no person found."""
    from indexer.store import MediaRecord, MediaStatus
    from pipelines.media import MediaError, frame_id
    from pipelines.sampling import load_image
    from labels import FrameLabels
    from vision.registry import build_stages, run_stages
    from vision.stage import Frame

    stages = build_stages(settings)
    token = uuid.uuid4().hex[:8]  # a new run per evaluation, as ingest makes, also in a kept --data-dir
    batch_size = settings.vision.batch_size
    no_person = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        frames = []
        for row in batch:
            media_id = photo_id(row["image"])
            try:
                image = load_image(images / row["image"], settings.sampling.max_side)
            except MediaError as exc:
                raise ValueError(f"{images / row['image']}: {exc}") from None
            frames.append(Frame(image, FrameLabels(
                frame_id=frame_id(media_id, 0.0), media_id=media_id, timestamp=0.0, reason="image",
                width=image.shape[1], height=image.shape[0])))
        began = time.perf_counter()
        frames = run_stages(stages, frames)
        seconds = (time.perf_counter() - began) / len(frames)
        for row, frame in zip(batch, frames):
            labels = frame.labels
            run_id = f"eval-{token}-{labels.media_id}"
            store.begin_run(MediaRecord(media_id=labels.media_id, path=str(images / row["image"]), kind="image",
                                        status=MediaStatus.PENDING, pipeline_version="eval", run_id=run_id))
            store.write_frames(run_id, [labels])
            store.finish_run(labels.media_id, run_id, 1, len(labels.persons), labels.garment_count, seconds)
            no_person += not labels.persons
        if progress:
            progress(start + len(batch), len(rows))
    return no_person


def ranked_photos(store, parser, text: str, media_ids: list[str], strict: bool = False) -> list[str]:
    """The distinct media the search returns for `text`, best first, over all pages."""
    from indexer.search import MAX_LIMIT, SearchRequest

    parsed = parser.parse(text)
    ranking: dict[str, None] = {}
    cursor = None
    while True:
        page = store.search(SearchRequest(query=parsed, media_ids=media_ids, limit=MAX_LIMIT, cursor=cursor,
                                          strict=strict))
        for hit in page.hits:
            ranking.setdefault(hit.moment.media_id)
        cursor = page.next_cursor
        if cursor is None:
            return list(ranking)


def evaluate_retrieval(settings: Settings, images: Path, labels: Path, limit: int | None = None,
                       data_dir: Path | None = None, progress: Progress | None = None, reuse: bool = False) -> dict:
    """The report: per kind and overall, for the default ranking (the labels' alternatives) and, under
    `strict`, for the top labels only. `reuse` (with `data_dir`): photos the kept store already holds
    are not labelled again, so the ranking can be re-measured in seconds."""
    if reuse and data_dir is None:
        raise ValueError("reuse needs a data_dir: the store whose labels are reused")
    from indexer.embedded import EmbeddedStore
    from indexer.query_parser import QueryParser

    rows = read_labels(labels)[:limit]
    missing = [r["image"] for r in rows if not (images / r["image"]).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} labelled images are not in {images}, e.g. {missing[0]}")
    ids = [photo_id(r["image"]) for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{labels}: two labelled images have the same name without extension")
    queries = make_queries(rows, ids)
    # Every query is written with vocabulary words and synonyms only, so the parser needs no text
    # model; a query that does not parse back to its terms is a bug in query_text, not a miss.
    parser = QueryParser()
    for query in queries:
        parsed = parser.parse(query.text)
        got = [sorted((t.field, t.value) for t in g.terms) for g in parsed.garments]
        if got != [sorted(query.terms)] or parsed.text or parsed.person:
            raise RuntimeError(f"query {query.text!r} parses as {parsed.interpretation}, not {query.terms}")

    with tempfile.TemporaryDirectory(prefix="vestis-eval-") as scratch:
        store = EmbeddedStore(data_dir or scratch)
        try:
            kept = already_labelled(store, images, rows) if reuse else set()
            fresh = [row for row in rows if photo_id(row["image"]) not in kept]
            no_person = index_photos(settings, store, images, fresh, progress) if fresh else 0
            no_person += sum(not any(m.persons for m in store.moments_of(media)) for media in kept)
            scores, strict = RetrievalScores(), RetrievalScores()
            for query in queries:
                scores.add(query, ranked_photos(store, parser, query.text, ids))
                strict.add(query, ranked_photos(store, parser, query.text, ids, strict=True))
        finally:
            store.close()
    from vision.registry import stages_version

    strict_report = strict.report()
    return {"images": len(rows), "no_person": no_person, "reused": len(kept),
            "stages": stages_version(list(settings.vision.stages), settings),
            "definitions": DEFINITIONS, **scores.report(),
            "strict": {"kinds": strict_report["kinds"], "overall": strict_report["overall"]}}


def table(report: dict):
    """The per-kind figures as a rich Table."""
    from rich import box
    from rich.table import Table

    # Short headings, one space between columns: the nine columns fit an 80-column terminal.
    out = Table(title=f"Search over {report['images']} photos, queries made from their labels",
                box=box.SIMPLE_HEAD, padding=0, pad_edge=False)
    out.add_column("kind", no_wrap=True)
    for column in ("queries", "rel/q", "R@1", "R@5", "R@10", "MAP", "rnd R@10", "rnd MAP"):
        out.add_column(column, justify="right", no_wrap=True)

    def row(name: str, s: dict, bold: bool = False) -> None:
        cells = [name, str(s["queries"]), f"{s['mean_relevant']:.1f}", *(f"{s[f'recall@{k}']:.3f}" for k in KS),
                 f"{s['map']:.3f}", f"{s['random']['recall@10']:.3f}", f"{s['random']['map']:.3f}"]
        out.add_row(*(f"[bold]{c}" for c in cells) if bold else cells)

    for kind, summary in report["kinds"].items():
        row(kind, summary)
    if report["overall"]:
        row("all", report["overall"], bold=True)
    if report.get("strict", {}).get("overall"):
        row("all, strict", report["strict"]["overall"])
    return out
