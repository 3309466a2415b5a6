"""The HTTP API: search over moments, frames and thumbnails with overlays, media metadata and streams,
and a plain search page.

A thin shell over `indexer` (see /work/shared/STYLE.md, "a core that works without the app"): what a
query means and how moments rank is indexer/search.py's. What this module adds is the presentation
of a page of hits, and it does that in one function, `search_moments`, which `vestis search` calls
too, so the CLI prints exactly what the API answers.

Shape of a search answer: the page's hits grouped by video, in the order of each video's best hit
(hits keep their rank order inside a group), so "the red dress" shows up as one video with its
moments rather than as a list that interleaves files. A later page may hold another group for a video
already shown; a client merges groups by `media_id` (the search page does).

Links in answers are root-relative paths (`/media/{id}/stream#t=12.5`): they work from the page and
from any client that knows the server's address, and the CLI can print them without one. The `#t=`
fragment is the W3C media-fragment syntax browsers honour on <video src>, so a play link opens the
video at the moment's first second without a player page.

Boxes are in pixels of the sampled frame as the labels describe it (FrameLabels.width x height),
not of the original video and not of the stored JPEG, which is smaller; the image endpoints scale
them when they draw.

What the HTTP side guards (tests/search_api/test_security.py): every parameter is bounded (query
length, page size, times, ids, id lists, request bodies); files are served only for media in the store
(the path its record names) and for stored frame images that resolve inside the frames folder; writes
need a reviewer token (search_api/review.py); no cross-origin reads unless `server.cors_origins` names
the origin; the pages get a Content-Security-Policy that lets only their own scripts run, and put data
into the page as text, never as markup.
"""

from __future__ import annotations

import mimetypes
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol
from urllib.parse import quote

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from configs import Settings
from indexer import LabelStore, MediaRecord, open_store
from indexer.frame_images import FrameImageStore
from indexer.moments import Moment, MomentGarment
from indexer.query import ParsedQuery
from indexer.review import ReviewStatus
from indexer.search import MAX_LIMIT, InvalidCursor, MomentHit, SearchRequest, TermMatch
from search_api.review import Id, MediaFilter, media_ids, review_router
from labels import Box, FrameLabels
from labels.masks import decode_mask

if TYPE_CHECKING:  # importing it loads torch: only when a search needs it (build_parser)
    from indexer.query_parser import QueryParser

STATIC_DIR = Path(__file__).with_name("static")
THUMBNAIL_SIDE = 320
FRAME_CACHE_MEDIA = 4  # media files whose frame labels the image endpoints keep at hand

# Request limits (the id limits are search_api/review.py's, shared with the review API).
MAX_QUERY_CHARS = 500       # a search's free text: a long sentence, not a document
MAX_CURSOR_CHARS = 1024     # next_cursor is base64 of a sort key and a fingerprint: a few hundred characters
MAX_SECONDS = 10_000_000.0  # time filters: about 115 days of video
MAX_PERSONS = 1000          # a moment's person index
MAX_BODY_BYTES = 64 * 1024  # request bodies (review edits are a few hundred bytes)

# Security headers. Every response: no content sniffing (a JSON answer holding a crafted file name
# is never read as HTML). The pages: only their own scripts, styles, images and media; no framing.
# /docs and /redoc (FastAPI's, loaded from a CDN with inline script) only get the framing rule.
NOSNIFF = (b"x-content-type-options", b"nosniff")
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_POLICY = "frame-ancestors 'none'"

# Browsers decide from Content-Type whether <video> can play a file; the platform's mimetypes table
# misses several container formats (mkv, ts) on a bare system, so the common ones are listed here.
MEDIA_TYPES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".mpg": "video/mpeg", ".mpeg": "video/mpeg",
    ".ts": "video/mp2t", ".m2ts": "video/mp2t", ".ogv": "video/ogg", ".wmv": "video/x-ms-wmv",
    ".flv": "video/x-flv", ".3gp": "video/3gpp",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".heic": "image/heic",
}

# Frame ids are "<media id>-<milliseconds>" (pipelines/media.py:frame_id); anything else is refused
# before it comes near a file path.
# fullmatch, not `$`: "$" also matches before a final newline.
_FRAME_ID = re.compile(r"(?P<media>[A-Za-z0-9_-]+)-(?P<ms>[0-9]+)")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")


# --- response models -------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeMatch(_Out):
    """One query term and the label that satisfied it, with that label's confidence."""

    field: str
    value: str = Field(description="what the query asked for")
    negated: bool = Field(description="the query asked for anything but `value`")
    label: str = Field(description="the label found (for a negated term: what the garment is instead)")
    confidence: float
    via: str = Field(description="how the query word was mapped: exact, synonym or semantic")
    similarity: float = Field(description="the parser's cosine similarity for `semantic`, else 1.0")
    source: str = Field(description="the query words the term came from")


class GarmentResult(_Out):
    """The garment chosen for one garment constraint of the query."""

    category: str
    box: Box | None = Field(None, description="in the best frame; None when the garment is not seen there")
    score: float
    attributes: list[AttributeMatch]


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
    text_matched: list[str] = Field(description="free-text words found in the labels or the file name")
    wearing: list[str] = Field(description="the person's whole outfit over the moment, readable")


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
    parsed: ParsedQuery
    semantic: bool = Field(description="whether words outside the vocabulary were mapped by meaning (MiniLM)")
    notice: str | None = Field(None, description="something the user should know about this answer")
    total: int = Field(description="moments matching, over all pages")
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; None on the last")
    videos: list[VideoResults]


class MomentLink(_Out):
    moment_id: str
    start: float
    end: float
    thumbnail_url: str
    play_url: str
    wearing: list[str]


class MediaOut(_Out):
    media_id: str
    name: str
    path: str
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


def _ms(t: float) -> float:
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
    image endpoints never need them).

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
    """(QueryParser, notice): with MiniLM when its files are cached, else exact words and synonyms."""
    from indexer.query_parser import QueryParser
    from vision.text_embedding import TextEmbedder
    from vision.model_files import ModelFilesMissing

    try:
        return QueryParser(TextEmbedder(settings)), None
    except ModelFilesMissing as exc:
        return QueryParser(), (
            "Words outside the label vocabulary and its synonyms are not understood: the text model's files "
            f"are missing ({exc}). `vestis models fetch minilm-l6-v2` gets them."
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
        moment_id=moment.moment_id, start=_ms(moment.start), end=_ms(moment.end),
        best_time=_ms(moment.best_timestamp), best_frame_id=moment.best_frame_id, score=round(hit.score, 4),
        thumbnail_url=thumbnail_url(moment.moment_id, hit.person_index),
        frame_url=frame_url(moment.best_frame_id, "boxes"),
        play_url=play_url(moment.media_id, moment.start, kind),
        person_box=person.box,
        garments=[GarmentResult(category=g.category, box=g.box, score=round(g.score, 4),
                                attributes=[_attribute(t) for t in g.terms]) for g in hit.matched],
        expression=[_attribute(t) for t in hit.expression_matched],
        text_matched=hit.text_matched,
        wearing=[describe_garment(g) for g in person.garments],
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
                            min_confidence=min_confidence, review_status=review or None, limit=limit,
                            cursor=cursor or None)
    page = store.search(request)
    groups: dict[str, VideoResults] = {}
    for hit in page.hits:
        media_id = hit.moment.media_id
        group = groups.get(media_id)
        if group is None:
            record = store.get_media(media_id)
            kind = record.kind if record else "video"
            group = groups[media_id] = VideoResults(
                media_id=media_id, name=record.name if record else media_id, kind=kind,
                duration=record.duration if record else 0.0, stream_url=stream_url(media_id), moments=[],
            )
        group.moments.append(_moment_result(hit, group.kind))
    return SearchResponse(
        query=q, interpretation=parsed.interpretation, parsed=parsed, semantic=parser.semantic,
        notice=parser.notice, total=page.total, next_cursor=page.next_cursor, videos=list(groups.values()),
    )


def describe_matches(moment: MomentResult) -> str:
    """What matched, one line: "dress: color=red 0.80, category=dress 0.90; expression=happy 0.70"."""
    def term(a: AttributeMatch) -> str:
        said = f"{a.field}!={a.value} ({a.label})" if a.negated else f"{a.field}={a.label}"
        return f"{said} {a.confidence:.2f}"

    parts = [f"{g.category}: " + ", ".join(term(a) for a in g.attributes) for g in moment.garments]
    parts += [term(a) for a in moment.expression]
    if moment.text_matched:
        parts.append("text: " + " ".join(moment.text_matched))
    return "; ".join(parts) or "(any person)"


# --- drawing ---------------------------------------------------------------------------------------
# Annotators in the shape of supervision's: one class, one `annotate(image, frame)`, composed by
# calling one after another. Each scales the labels' frame coordinates to the image it draws on.

Colour = tuple[int, int, int]
PERSON_COLOUR: Colour = (255, 196, 0)
GARMENT_COLOURS: list[Colour] = [(0, 200, 255), (255, 64, 160), (64, 220, 96), (160, 96, 255), (255, 120, 32), (0, 160, 160)]


def _scale(image: Image.Image, frame: FrameLabels) -> tuple[float, float]:
    return image.width / max(frame.width, 1), image.height / max(frame.height, 1)


def _rectangle(draw: ImageDraw.ImageDraw, box: Box, scale: tuple[float, float], colour: Colour, width: int) -> None:
    sx, sy = scale
    draw.rectangle([box.x1 * sx, box.y1 * sy, max(box.x1, box.x2 - 1) * sx, max(box.y1, box.y2 - 1) * sy],
                   outline=colour, width=width)


class Annotator(Protocol):
    def annotate(self, image: Image.Image, frame: FrameLabels) -> Image.Image: ...


class BoxAnnotator:
    """Persons thick, their garments thin in a colour each, the garment's category written at its corner."""

    def annotate(self, image: Image.Image, frame: FrameLabels) -> Image.Image:
        draw = ImageDraw.Draw(image)
        scale = _scale(image, frame)
        width = max(2, round(image.width / 240))
        for person in frame.persons:
            _rectangle(draw, person.box, scale, PERSON_COLOUR, width)
            for g, garment in enumerate(person.garments):
                colour = GARMENT_COLOURS[g % len(GARMENT_COLOURS)]
                _rectangle(draw, garment.box, scale, colour, max(1, width // 2))
                draw.text((garment.box.x1 * scale[0] + 3, garment.box.y1 * scale[1] + 2),
                          garment.category.value, fill=colour)
        return image


class MaskAnnotator:
    """Garment masks tinted half-transparent (the person's mask, when there are no garment masks)."""

    opacity = 0.45

    def annotate(self, image: Image.Image, frame: FrameLabels) -> Image.Image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        for person in frame.persons:
            masks = [(g.mask, GARMENT_COLOURS[i % len(GARMENT_COLOURS)])
                     for i, g in enumerate(person.garments) if g.mask is not None]
            if not masks and person.mask is not None:
                masks = [(person.mask, PERSON_COLOUR)]
            for mask, colour in masks:
                area = self._resized(decode_mask(mask), image.size)
                pixels[area] = (1 - self.opacity) * pixels[area] + self.opacity * np.asarray(colour, np.float32)
        return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))

    @staticmethod
    def _resized(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if mask.shape[::-1] == size:
            return mask
        picture = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
        return np.asarray(picture) > 127


ANNOTATORS: dict[str, Annotator] = {"masks": MaskAnnotator(), "boxes": BoxAnnotator()}  # masks under boxes


def _jpeg(image: Image.Image, quality: int = 85) -> Response:
    buffer = BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    # Drawn from labels a reviewer may change at any moment: browsers must ask again each time.
    return Response(buffer.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


class FrameLabelCache:
    """The visible frame labels of the last few media files, by frame id.

    The store offers a media file's frames, not one frame; a result grid asks for many thumbnails of
    the same few videos, so their frames are read once and kept while the visible run is the same.
    """

    def __init__(self, store: LabelStore, size: int = FRAME_CACHE_MEDIA):
        self.store = store
        self.size = size
        self._cache: OrderedDict[str, tuple[str, dict[str, FrameLabels]]] = OrderedDict()
        self._lock = threading.Lock()
        # A grid asks for twenty thumbnails of one video at once: one thread reads its frames, the
        # others wait for that instead of each reading them again.
        self._loading = threading.Lock()

    def _cached(self, media_id: str, run_id: str) -> dict[str, FrameLabels] | None:
        with self._lock:
            cached = self._cache.get(media_id)
            if cached is None or cached[0] != run_id:
                return None
            self._cache.move_to_end(media_id)
            return cached[1]

    def get(self, media_id: str, frame_id: str) -> FrameLabels | None:
        record = self.store.get_media(media_id)
        if record is None:
            return None
        frames = self._cached(media_id, record.visible_run_id)
        if frames is None:
            with self._loading:
                frames = self._cached(media_id, record.visible_run_id)
                if frames is None:
                    frames = {frame.frame_id: frame for frame in self.store.frames_of(media_id)}
                    with self._lock:
                        self._cache[media_id] = (record.visible_run_id, frames)
                        self._cache.move_to_end(media_id)
                        while len(self._cache) > self.size:
                            self._cache.popitem(last=False)
        return frames.get(frame_id)

    def neighbours(self, media_id: str, frame_id: str) -> tuple[str | None, str | None]:
        """The frames before and after this one in time (None at either end)."""
        if self.get(media_id, frame_id) is None:
            return None, None
        with self._lock:
            ids = list(self._cache[media_id][1]) if media_id in self._cache else []
        if frame_id not in ids:
            return None, None
        at = ids.index(frame_id)
        return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)

    def forget(self, media_id: str) -> None:
        """A frame of this media was edited: read its labels again next time."""
        with self._lock:
            self._cache.pop(media_id, None)


# --- the app ---------------------------------------------------------------------------------------


def _media_out(record: MediaRecord) -> MediaOut:
    return MediaOut(
        media_id=record.media_id, name=record.name, path=record.path, kind=record.kind, status=record.status.value,
        reason=record.reason, duration=record.duration, width=record.width, height=record.height,
        frames=record.frames, persons=record.persons, garments=record.garments, stream_url=stream_url(record.media_id),
    )


def media_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def _parse_overlay(overlay: str | None) -> list[str]:
    names = [name.strip() for name in (overlay or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in ANNOTATORS]
    if unknown:
        raise HTTPException(422, f"unknown overlay {', '.join(unknown)}; known: {', '.join(ANNOTATORS)}")
    return [name for name in ANNOTATORS if name in names]  # masks first, boxes drawn over them


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, told (Content-Length) or sent
    (chunked). Bodies here are small JSON edits, so a body is read whole before the app sees it."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        told = dict(scope["headers"]).get(b"content-length", b"")
        if told.isdigit() and int(told) > self.limit:
            await self._refuse(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette expects

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send) -> None:
        response = JSONResponse({"detail": f"the request body is larger than {self.limit} bytes"}, status_code=413,
                                headers={"Connection": "close"})
        await response(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: `X-Content-Type-Options: nosniff` on every response; on HTML pages a
    Content-Security-Policy (PAGE_POLICY, or DOCS_POLICY for the API docs), no framing and no referrer."""

    def __init__(self, app, docs_paths: frozenset[str] = frozenset()):
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [NOSNIFF]
                content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    policy = DOCS_POLICY if scope["path"] in self.docs_paths else PAGE_POLICY
                    extra += [(b"content-security-policy", policy.encode()), (b"x-frame-options", b"DENY"),
                              (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers + [h for h in extra if h[0] not in names]}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(settings: Settings, *, parser: QueryParser | None = None) -> FastAPI:
    """The API over the store `settings` name, opened once here and closed on shutdown.

    `parser`: a QueryParser to use instead of building one (tests; the CLI shares its own).
    """
    store = open_store(settings)
    parsers = ParserChoice(settings, parser)
    images = FrameImageStore(settings.data_dir)
    frame_labels = FrameLabelCache(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Load the text model while the server starts, not during the first user's search.
        threading.Thread(target=parsers.get, name="vestis-query-parser", daemon=True).start()
        yield
        store.close()

    app = FastAPI(
        title="Vestis", lifespan=lifespan,
        description="Search videos and photos for what people wear. Results are moments: one person in one "
                    "outfit over a span of seconds.",
    )
    app.state.store = store
    app.state.parsers = parsers
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # The last added runs first: the headers go on every answer (a 413 or a CORS preflight too); then
    # CORS, only when origins are listed; then the body limit, before the app reads a body.
    app.add_middleware(BodyLimit)
    if settings.server.cors_origins:
        # Only the listed origins may read answers from a page of theirs; reviewer tokens travel in
        # the Authorization header (never cookies), so no credentials mode.
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.server.cors_origins),
                           allow_methods=["GET", "HEAD", "POST"], allow_headers=["Authorization", "Content-Type"],
                           allow_credentials=False, max_age=600)
    docs = frozenset(p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p)
    app.add_middleware(SecurityHeaders, docs_paths=docs)
    frames_root = images.root.resolve()

    def frame_image(frame_id: str) -> tuple[str, Path]:
        """(media id, path) of a frame's stored image: a frame of a media in the store, whose file
        lies inside the frames folder once links are followed (a link out of it is refused)."""
        match = _FRAME_ID.fullmatch(frame_id)
        if match is None:
            raise HTTPException(404, f"no frame {frame_id!r}: frame ids look like <media id>-<milliseconds>")
        if store.get_media(match["media"]) is None:
            raise HTTPException(404, f"no frame {frame_id}: its media is not in the store")
        path = images.path_for(match["media"], frame_id)
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a link loop
            raise HTTPException(404, f"no stored image for frame {frame_id}") from None
        if not real.is_relative_to(frames_root) or not real.is_file():
            raise HTTPException(404, f"no stored image for frame {frame_id}")
        return match["media"], real

    def media_record(media_id: str) -> MediaRecord:
        record = store.get_media(media_id) if _SAFE_ID.fullmatch(media_id) else None
        if record is None:
            raise HTTPException(404, f"no media {media_id!r} in the store")
        return record

    app.include_router(review_router(store, settings, frame_labels.neighbours, frame_labels.forget, STATIC_DIR))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/search", response_model=SearchResponse, summary="Search moments by what people wear")
    def search(
        q: Annotated[str, Query(max_length=MAX_QUERY_CHARS,
                                description='free text, e.g. "red striped dress without a hat"')] = "",
        media: MediaFilter = None,
        start: Annotated[float | None, Query(ge=0, le=MAX_SECONDS,
                                             description="seconds: moments ending at or after it")] = None,
        end: Annotated[float | None, Query(ge=0, le=MAX_SECONDS,
                                           description="seconds: moments starting at or before it")] = None,
        min_confidence: Annotated[float, Query(ge=0, le=1, description="labels less sure count as absent")] = 0.0,
        review: Annotated[list[ReviewStatus] | None, Query(max_length=len(ReviewStatus),
                                                           description="only moments in these review states")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
        cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS,
                                            description="next_cursor of the previous page")] = None,
    ) -> SearchResponse:
        try:
            return search_moments(store, parsers, q, media_ids=media_ids(media), start=start, end=end,
                                  min_confidence=min_confidence, review=review, limit=limit, cursor=cursor)
        except InvalidCursor as exc:
            raise HTTPException(400, f"invalid cursor: {exc}. Start again without a cursor.") from None
        except ValidationError as exc:
            raise HTTPException(422, "; ".join(e["msg"] for e in exc.errors())) from None

    @app.get("/frames/{frame_id}.jpg", response_class=Response, summary="A sampled frame, optionally annotated",
             responses={200: {"content": {"image/jpeg": {}}}})
    def frame(
        frame_id: Id,
        overlay: Annotated[str | None, Query(max_length=40, description="comma-separated: boxes, masks")] = None,
    ) -> Response:
        media_id, path = frame_image(frame_id)
        layers = _parse_overlay(overlay)
        if not layers:
            return FileResponse(path, media_type="image/jpeg")
        labels = frame_labels.get(media_id, frame_id)
        if labels is None:
            raise HTTPException(404, f"frame {frame_id} has no labels in the visible run of its media")
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        for name in layers:
            image = ANNOTATORS[name].annotate(image, labels)
        return _jpeg(image)

    @app.get("/moments/{moment_id}/thumbnail.jpg", response_class=Response,
             summary="The moment's best frame, small, with the person's box",
             responses={200: {"content": {"image/jpeg": {}}}})
    def thumbnail(
        moment_id: Id,
        person: Annotated[int, Query(ge=0, le=MAX_PERSONS,
                                     description="which person of the moment (MomentHit.person_index)")] = 0,
        size: Annotated[int, Query(ge=32, le=1280, description="longest side in pixels")] = THUMBNAIL_SIDE,
    ) -> Response:
        moment: Moment | None = store.moment(moment_id) if _SAFE_ID.fullmatch(moment_id) else None
        if moment is None:
            raise HTTPException(404, f"no moment {moment_id!r}")
        if person >= len(moment.persons):
            raise HTTPException(404, f"moment {moment_id} has {len(moment.persons)} person(s)")
        media_id, path = frame_image(moment.best_frame_id)
        labels = frame_labels.get(media_id, moment.best_frame_id)
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        if labels is not None:
            # The labels say the frame's size; the JPEG beside it is smaller. Scale, then shrink.
            width = max(2, round(image.width / 160))
            _rectangle(ImageDraw.Draw(image), moment.persons[person].box, _scale(image, labels), PERSON_COLOUR, width)
        image.thumbnail((size, size))
        return _jpeg(image, quality=80)

    @app.get("/media", response_model=list[MediaOut], summary="Every media file in the store")
    def media_list() -> list[MediaOut]:
        return [_media_out(record) for record in store.list_media()]

    @app.get("/media/{media_id}", response_model=MediaDetail, summary="One media file and its moments")
    def media_detail(media_id: Id) -> MediaDetail:
        record = media_record(media_id)
        moments = [
            MomentLink(moment_id=m.moment_id, start=_ms(m.start), end=_ms(m.end),
                       thumbnail_url=thumbnail_url(m.moment_id), play_url=play_url(m.media_id, m.start, record.kind),
                       wearing=[describe_garment(g) for g in m.persons[0].garments])
            for m in store.moments_of(media_id)
        ]
        return MediaDetail(**_media_out(record).model_dump(), moments=moments)

    @app.head("/media/{media_id}/stream", include_in_schema=False)  # players may ask the size first
    @app.get("/media/{media_id}/stream", response_class=FileResponse,
             summary="The original file, with HTTP Range support so players can seek",
             responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "Partial content"},
                        404: {"description": "Unknown media, or its file is gone"},
                        416: {"description": "Range not satisfiable"}})
    def stream(media_id: Id) -> FileResponse:
        record = media_record(media_id)
        path = Path(record.path)
        if not path.is_file():
            raise HTTPException(404, f"the file of media {media_id} is gone: {record.path}")
        # Starlette answers Range requests itself: 206 with Content-Range, 416 when unsatisfiable.
        return FileResponse(path, media_type=media_type(record.path))

    return app
