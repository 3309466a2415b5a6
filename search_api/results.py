"""The answer to a search, as both shells give it: `search_moments` is what the API's /search returns
and what `vestis search` prints, so the CLI shows exactly what the API answers. No FastAPI here.

A thin layer over `indexer` (see /work/shared/STYLE.md, "a core that works without the app"): what a
query means and how moments rank is indexer/search.py's. What this module adds is the presentation
of a page of hits.

Shape of a search answer: the page's hits grouped by video, in the order of each video's best hit
(hits keep their rank order inside a group), so "the red dress" shows up as one video with its
moments rather than as a list that interleaves files. A later page may hold another group for a video
already shown; a client merges groups by `media_id` (the search page does).

Links in answers are root-relative paths (`/media/{id}/stream#t=12.5`): they work from the page and
from any client that knows the server's address, and the CLI can print them without one. The `#t=`
fragment is the W3C media-fragment syntax browsers honour on <video src>, so a play link opens the
video at the moment's first second without a player page.
"""

from __future__ import annotations

import threading
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from configs import Settings
from indexer import LabelStore, MediaRecord
from indexer.moments import MomentGarment
from indexer.query import VOCABULARY, ParsedQuery
from indexer.query_parser import SYNONYMS, QueryParser
from indexer.review import ReviewStatus
from indexer.search import DEFAULT_THRESHOLD, MomentHit, SearchRequest, TermMatch, query_notice
from labels import Box


# --- response models -------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeMatch(_Out):
    """One query term, the label of the field it looked at, and the probability that the term holds."""

    field: str
    value: str = Field(description="what the query asked for")
    negated: bool = Field(description="the query asked for anything but `value`")
    label: str = Field(description="the field's label (for a negated term: what the garment is instead)")
    confidence: float = Field(description="the probability that the term holds (the label's alternatives weighed)")
    via: str = Field(description="how the query word was mapped: exact, synonym or semantic")
    similarity: float = Field(description="the parser's cosine similarity for `semantic`, else 1.0")
    source: str = Field(description="the query words the term came from")


class GarmentResult(_Out):
    """The garment chosen for one garment constraint of the query."""

    category: str
    box: Box | None = Field(None, description="in the best frame; None when the garment is not seen there")
    score: float
    attributes: list[AttributeMatch]


class SimilarLink(_Out):
    """A garment of a result to find more like it: its reference for /search/similar and its name."""

    garment: str = Field(description="<moment id>/<person>/<garment>")
    wearing: str


class MomentResult(_Out):
    moment_id: str
    start: float = Field(description="seconds from the media's start")
    end: float
    best_time: float = Field(description="seconds: the frame that shows the person best (the thumbnail)")
    best_frame_id: str
    score: float
    thumbnail_url: str
    frame_url: str = Field(description="the best frame at full stored size, boxes and masks drawn")
    play_url: str = Field(description="opens the media at the moment's start (#t= media fragment)")
    person_box: Box = Field(description="the matching person in the best frame")
    garments: list[GarmentResult] = Field(description="one per positive garment constraint of the query")
    expression: list[AttributeMatch] = Field(description="one per expression term of the query")
    wearing: list[str] = Field(description="the person's whole outfit over the moment, readable")
    more_like: list[SimilarLink] = Field([], description="the person's garments one can search by example "
                                                         "(GET /search/similar?garment=...)")


class VideoResults(_Out):
    """The moments of one media file on this page, best first."""

    media_id: str
    name: str
    kind: str
    duration: float
    stream_url: str
    moments: list[MomentResult]


class SearchResponse(_Out):
    query: str
    interpretation: str = Field(description="how the query was read, e.g. garment(color=red, category=dress)")
    understood_as: str = Field(description="what is searched for, in words: \"black garment, no hat\"")
    parsed: ParsedQuery
    semantic: bool = Field(description="whether words outside the vocabulary were mapped by meaning (MiniLM)")
    notice: str | None = Field(None, description="something the user should know about this answer")
    total: int = Field(description="moments matching, over all pages (a lower bound when total_exact is false)")
    total_exact: bool = Field(True, description="false: the store found the page without scoring every match")
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; None on the last")
    videos: list[VideoResults]


class VocabularyWord(_Out):
    value: str = Field(description="the label value")
    synonyms: list[str] = Field(description="other words the query parser reads as it")


class VocabularyOut(_Out):
    """What search understands: every label field with its words, so a user can see what to ask for."""

    fields: dict[str, list[VocabularyWord]]


def vocabulary_out() -> VocabularyOut:
    return VocabularyOut(fields={
        name: [VocabularyWord(value=value, synonyms=list(SYNONYMS.get(name, {}).get(value, ()))) for value in values]
        for name, values in VOCABULARY.items()
    })


class MomentLink(_Out):
    moment_id: str
    start: float
    end: float
    best_frame_id: str = Field(description="the frame that shows the person best (thumbnail; the review page)")
    thumbnail_url: str
    play_url: str
    wearing: list[str]


class MediaOut(_Out):
    """A media file as readers see it: its file name, never where it lies on the server's disk."""

    media_id: str
    name: str
    kind: str
    status: str
    reason: str = ""
    duration: float
    width: int
    height: int
    frames: int
    persons: int
    garments: int
    stream_url: str


class MediaDetail(MediaOut):
    moments: list[MomentLink]


# --- links -----------------------------------------------------------------------------------------


def rounded_time(t: float) -> float:
    return round(t, 3)


def _seconds(t: float) -> str:
    """12.5 -> "12.5", 3.0 -> "3": short, and exact to the millisecond frame ids are kept at."""
    return f"{t:.3f}".rstrip("0").rstrip(".")


def stream_url(media_id: str) -> str:
    return f"/media/{quote(media_id)}/stream"


def play_url(media_id: str, t: float, kind: str = "video") -> str:
    return stream_url(media_id) if kind == "image" else f"{stream_url(media_id)}#t={_seconds(t)}"


def thumbnail_url(moment_id: str, person_index: int = 0) -> str:
    url = f"/moments/{quote(moment_id)}/thumbnail.jpg"
    return f"{url}?person={person_index}" if person_index else url


def frame_url(frame_id: str, overlay: str | None = None) -> str:
    url = f"/frames/{quote(frame_id)}.jpg"
    return f"{url}?overlay={overlay}" if overlay else url


# --- search: the one function both shells call -----------------------------------------------------


class ParserChoice:
    """The query parser, built once and on first use (torch and MiniLM load in seconds; the media and
    image endpoints never need them, and a search needs them only when `search.text_model` names one).

    With MiniLM's files absent the parser still knows the vocabulary and the synonym table; the
    answer then says so in `notice`, since a word like "frock" silently matching nothing would
    otherwise look like an empty archive.
    """

    def __init__(self, settings: Settings, parser: QueryParser | None = None):
        self.settings = settings
        self._parser = parser
        self.notice: str | None = None
        self._lock = threading.Lock()

    def get(self) -> QueryParser:
        with self._lock:
            if self._parser is None:
                self._parser, self.notice = build_parser(self.settings)
            return self._parser

    @property
    def semantic(self) -> bool:
        return self.get().embedder is not None


def build_parser(settings: Settings) -> tuple[QueryParser, str | None]:
    """(QueryParser, notice): with the text model `search.text_model` names (MiniLM) when its files are
    cached, else exact words and synonyms. With no text model configured, torch is never imported."""
    name = settings.search.text_model
    if name is None:
        return QueryParser(), ("Words outside the label vocabulary and its synonyms are not understood: no text "
                               "model is configured (search.text_model).")
    from vision.model_files import ModelFilesMissing
    from vision.text_embedding import TextEmbedder

    try:
        return QueryParser(TextEmbedder(settings, model_name=name)), None
    except ModelFilesMissing as exc:
        return QueryParser(), (
            "Words outside the label vocabulary and its synonyms are not understood: the text model's files "
            f"are missing ({exc}). `vestis models fetch {name}` gets them."
        )


def _attribute(match: TermMatch) -> AttributeMatch:
    term = match.term
    return AttributeMatch(field=term.field, value=term.value, negated=term.negated, label=match.label,
                          confidence=round(match.confidence, 4), via=term.via, similarity=term.similarity,
                          source=term.source)


def describe_garment(garment: MomentGarment) -> str:
    """"red/white striped long-sleeve shirt/blouse": the summary as a person would say it."""
    colour = "/".join(label.value for label in (garment.color, garment.secondary_color) if label is not None)
    sleeve = garment.sleeve.value if garment.sleeve else ""
    if sleeve in ("long", "short"):  # "sleeveless" says it alone
        sleeve += "-sleeve"
    words = [colour, garment.pattern.value if garment.pattern else "", sleeve, garment.category.value]
    return " ".join(word for word in words if word)


def _moment_result(hit: MomentHit, kind: str) -> MomentResult:
    moment = hit.moment
    person = moment.persons[hit.person_index]
    return MomentResult(
        # Times to the millisecond frame ids are kept at (decoding leaves 23.000000000000004).
        moment_id=moment.moment_id, start=rounded_time(moment.start), end=rounded_time(moment.end),
        best_time=rounded_time(moment.best_timestamp), best_frame_id=moment.best_frame_id, score=round(hit.score, 4),
        thumbnail_url=thumbnail_url(moment.moment_id, hit.person_index),
        frame_url=frame_url(moment.best_frame_id, "boxes"),
        play_url=play_url(moment.media_id, moment.start, kind),
        person_box=person.box,
        garments=[GarmentResult(category=g.category, box=g.box, score=round(g.score, 4),
                                attributes=[_attribute(t) for t in g.terms]) for g in hit.matched],
        expression=[_attribute(t) for t in hit.expression_matched],
        wearing=[describe_garment(g) for g in person.garments],
        more_like=[SimilarLink(garment=f"{moment.moment_id}/{hit.person_index}/{k}", wearing=describe_garment(g))
                   for k, g in enumerate(person.garments) if g.embedding is not None],
    )


def search_moments(
    store: LabelStore,
    parser: ParserChoice,
    q: str = "",
    *,
    media_ids: list[str] | None = None,
    start: float | None = None,
    end: float | None = None,
    min_confidence: float = 0.0,
    threshold: float = DEFAULT_THRESHOLD,
    strict: bool = False,
    review: list[ReviewStatus] | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> SearchResponse:
    """One page of moments for free text `q`, grouped by video.

    Raises pydantic.ValidationError for filters that make no request (start after end, a limit out
    of range) and indexer.search.InvalidCursor for a cursor from another search.
    """
    parsed = parser.get().parse(q)
    request = SearchRequest(query=parsed, media_ids=media_ids or None, start=start, end=end,
                            min_confidence=min_confidence, threshold=threshold, strict=strict,
                            review_status=review or None, limit=limit, cursor=cursor or None)
    page = store.search(request)
    groups = group_by_video(store, page.hits)
    return SearchResponse(
        query=q, interpretation=parsed.interpretation, understood_as=parsed.in_words(), parsed=parsed,
        semantic=parser.semantic, notice=" ".join(n for n in (query_notice(parsed), parser.notice) if n) or None,
        total=page.total, total_exact=page.total_exact, next_cursor=page.next_cursor, videos=groups,
    )


def group_by_video(store: LabelStore, hits: list[MomentHit]) -> list[VideoResults]:
    """The hits as answers show them: one group per video, in the order of each video's best hit."""
    groups: dict[str, VideoResults] = {}
    for hit in hits:
        media_id = hit.moment.media_id
        group = groups.get(media_id)
        if group is None:
            record = store.get_media(media_id)
            group = groups[media_id] = VideoResults(
                media_id=media_id, name=record.name if record else media_id, kind=record.kind if record else "video",
                duration=record.duration if record else 0.0, stream_url=stream_url(media_id), moments=[],
            )
        group.moments.append(_moment_result(hit, group.kind))
    return list(groups.values())


def describe_matches(moment: MomentResult) -> str:
    """What matched, one line: "dress: color=red 0.80, category=dress 0.90; expression=happy 0.70"."""
    def term(a: AttributeMatch) -> str:
        said = f"{a.field}!={a.value} ({a.label})" if a.negated else f"{a.field}={a.label}"
        return f"{said} {a.confidence:.2f}"

    parts = [f"{g.category}: " + ", ".join(term(a) for a in g.attributes) for g in moment.garments]
    parts += [term(a) for a in moment.expression]
    return "; ".join(parts) or "(any person)"


def media_out(record: MediaRecord) -> MediaOut:
    return MediaOut(
        media_id=record.media_id, name=record.name, kind=record.kind, status=record.status.value,
        reason=record.reason, duration=record.duration, width=record.width, height=record.height,
        frames=record.frames, persons=record.persons, garments=record.garments, stream_url=stream_url(record.media_id),
    )
