"""Search by example: the moments whose garments look most like one garment, backend-neutral.

A query is one garment embedding (labels.Embedding: from a garment already indexed, or from a
photo the shells ran the vision stages on). A backend finds the nearest garment vectors of the
same space (model and version) with its nearest-neighbour index, keeping a pool of candidates, and
hands them here; `rank_similar` keeps each moment's best garment, applies the text filters of the
request with search's own `match_moment` (so `?q=not black&garment=...` means exactly what /search
means by "not black"), and orders by similarity (cosine, the embeddings' dot product), ties by
moment id. There is no cursor: a similar search answers its best `limit` moments.

Garment references. `<moment_id>/<person>/<garment>` names a summarised garment of a moment (its
mean embedding: what a search result shows), `<frame_id>/<person>/<garment>` a garment seen in one
frame (the review page's). Indexes are positions in the record's lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from indexer.moments import Moment
from indexer.search import MAX_LIMIT, MomentHit, SearchPage, SearchRequest, match_moment
from labels import Embedding

# How many nearest garments a backend looks at per moment wanted: several garments of one moment
# (its frames' people in one outfit) crowd the top, and text filters drop some.
POOL_PER_HIT = 8
POOL_PER_HIT_FILTERED = 40
MIN_POOL = 100


class UnknownGarment(LookupError):
    """The garment reference names no visible garment, or one without an embedding."""


class SimilarRequest(BaseModel):
    """Moments like one garment, optionally narrowed by the filters of a text search."""

    model_config = ConfigDict(extra="forbid")

    embedding: Embedding
    filters: SearchRequest = Field(default_factory=SearchRequest, description="text query and filters; its "
                                                                                "limit and cursor are ignored")
    limit: int = Field(20, ge=1, le=MAX_LIMIT)
    exclude_moment_id: str | None = Field(None, description="leave this moment out (the query's own)")

    def pool(self, available: int) -> int:
        """How many nearest garments a backend should fetch."""
        per = POOL_PER_HIT_FILTERED if self.filtered else POOL_PER_HIT
        return min(available, max(MIN_POOL, per * self.limit))

    @property
    def filtered(self) -> bool:
        # anything but the defaults (free-text words alone never filter, as in search)
        ignore = {"limit", "cursor", "query"}
        query = self.filters.query
        return bool(query.garments or query.person
                    or self.filters.model_dump(exclude=ignore) != SearchRequest().model_dump(exclude=ignore))


@dataclass(frozen=True)
class Neighbour:
    """One nearest garment a backend found: where it is and its cosine similarity to the query."""

    moment_id: str
    person_index: int
    garment_index: int
    similarity: float


class MomentSource(Protocol):
    def __call__(self, moment_ids: list[str]) -> Mapping[str, tuple[Moment, str]]:
        """The visible moments with these ids, each with its media file name."""


def rank_similar(neighbours: Iterable[Neighbour], request: SimilarRequest, moments: MomentSource) -> SearchPage:
    """The page of a similar search from a backend's nearest garments (any order, any superset).

    Moments are read only as far as the page needs: in order of their best garment's similarity, a
    chunk at a time, each through the filters; the rest of the pool only counts towards `total`
    when the request has no filters (with filters, `total` is the moments read that passed)."""
    best: dict[str, Neighbour] = {}
    for n in neighbours:
        if n.moment_id == request.exclude_moment_id:
            continue
        current = best.get(n.moment_id)
        if current is None or n.similarity > current.similarity:
            best[n.moment_id] = n
    ranked = sorted(best.values(), key=lambda n: (-n.similarity, n.moment_id))
    hits: list[MomentHit] = []
    chunk = request.limit if not request.filtered else 4 * request.limit
    seen = gone = 0
    while len(hits) < request.limit and seen < len(ranked):
        part = ranked[seen:seen + chunk]
        seen += len(part)
        found = moments([n.moment_id for n in part])
        for n in part:
            if n.moment_id not in found:
                gone += 1  # no longer visible: the index lags a run that just finished
                continue
            moment, _ = found[n.moment_id]
            if request.filtered:
                hit = match_moment(moment, request.filters)  # (the file name is no longer searched for words)
                if hit is None:
                    continue
                hits.append(hit.model_copy(update={"score": n.similarity, "person_index": n.person_index}))
            else:
                hits.append(MomentHit(moment=moment, score=n.similarity, person_index=n.person_index))
    total = len(hits) if request.filtered else len(ranked) - gone
    return SearchPage(hits=hits[:request.limit], total=max(total, len(hits[:request.limit])))


# --- references ---------------------------------------------------------------------------------

def parse_reference(reference: str) -> tuple[str, int, int]:
    """`<moment or frame id>/<person>/<garment>` -> its parts; ValueError saying what is wrong."""
    parts = reference.strip().split("/")
    if len(parts) != 3 or not parts[0] or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f"a garment reference is <moment or frame id>/<person>/<garment>, got {reference!r}")
    return parts[0], int(parts[1]), int(parts[2])


class _Readable(Protocol):
    def moment(self, moment_id: str) -> Moment | None: ...

    def reviewed_frame(self, frame_id: str) -> Any: ...


def garment_embedding(store: _Readable, reference: str) -> tuple[Embedding, str | None]:
    """The embedding a reference names and the moment it is in (None for a frame's garment)."""
    owner, p, g = parse_reference(reference)
    moment = store.moment(owner)
    garments: list[Any] | None = None
    if moment is not None:
        garments = moment.persons[p].garments if p < len(moment.persons) else []
    else:
        reviewed = store.reviewed_frame(owner)
        if reviewed is not None:
            persons = reviewed.labels.persons
            garments = persons[p].garments if p < len(persons) else []
    if garments is None:
        raise UnknownGarment(f"no visible moment or frame {owner!r}")
    if g >= len(garments):
        raise UnknownGarment(f"{reference!r}: there is no garment {g} of person {p}")
    embedding = garments[g].embedding
    if embedding is None:
        raise UnknownGarment(f"{reference!r} has no embedding (shoes, bags and hats get none; or it was "
                             "ingested before embeddings: `vestis ingest` again)")
    return embedding, moment.moment_id if moment is not None else None


def moment_vectors(moment: Moment) -> list[tuple[int, int, Embedding]]:
    """(person index, garment index, embedding) of a moment's summarised garments that have one."""
    return [(p, g, garment.embedding) for p, person in enumerate(moment.persons)
            for g, garment in enumerate(person.garments) if garment.embedding is not None]


def unit_matrix(embeddings: list[Embedding]) -> np.ndarray:
    """(n, dim) float32 rows of unit vectors."""
    if not embeddings:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([e.unit() for e in embeddings]).astype(np.float32)
