"""The HTTP API: search over moments, frames and thumbnails with overlays, media metadata and streams,
and a plain search page.

A thin shell: the answer to /search is search_api/results.py's `search_moments` (which `vestis search`
prints too), the overlays are search_api/annotators.py's, the body limit and security headers
search_api/middleware.py's. What this module adds is HTTP: routes, parameter bounds, files.

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

import gc
import mimetypes
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import BytesIO
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from PIL import Image, ImageDraw
from pydantic import BaseModel, ValidationError

from configs import Settings, package_version
from indexer import LabelStore, MediaRecord, MediaStatus, open_store
from indexer.frame_images import FrameImageStore
from indexer.moments import Moment
from indexer.query_parser import QueryParser
from indexer.review import ReviewStatus
from indexer.search import DEFAULT_THRESHOLD, MAX_LIMIT, InvalidCursor
from labels import FrameLabels
from search_api.annotators import ANNOTATORS, PERSON_COLOUR, draw_box, frame_scale, window_around
from search_api.middleware import BodyLimit, SecurityHeaders
from search_api.problems import PROBLEM_RESPONSES, install_problem_handlers
from search_api.results import (
    MediaDetail,
    MediaOut,
    MomentLink,
    ParserChoice,
    SearchResponse,
    VocabularyOut,
    describe_garment,
    media_out,
    play_url,
    rounded_time,
    search_moments,
    thumbnail_url,
    vocabulary_out,
)
from search_api.review import Id, MediaFilter, media_ids, review_router
from search_api.similar import (MAX_UPLOAD_BYTES, UPLOAD_FORMATS, BadPhoto, PhotoDescriber, SimilarResponse,
                                similar_to_photo, similar_to_reference)

STATIC_DIR = Path(__file__).with_name("static")
DOCS_URL, REDOC_URL, DOCS_ASSETS_URL = "/docs", "/redoc", "/static-api-docs"
OPENAPI_TAGS = [
    {"name": "search", "description": "Moments by what people wear, and their thumbnails"},
    {"name": "media", "description": "The media files in the store, their moments and their streams"},
    {"name": "frames", "description": "Sampled frames, optionally with boxes and masks drawn"},
    {"name": "review", "description": "Checking and correcting labels (edits need a reviewer token)"},
    {"name": "health", "description": "Whether the server and its store answer"},
]
THUMBNAIL_SIDE = 320
THUMBNAIL_ASPECT = 16 / 10  # the result cards' (search_api/static/style.css)
FRAME_CACHE_FRAMES = 50_000  # frame labels the image endpoints keep at hand, over all media files

# Request limits (the id limits are search_api/review.py's, shared with the review API; the body limit
# is search_api/middleware.py's).
MAX_QUERY_CHARS = 500       # a search's free text: a long sentence, not a document
MAX_CURSOR_CHARS = 1024     # next_cursor is base64 of a sort key and a fingerprint: a few hundred characters
MAX_SECONDS = 10_000_000.0  # time filters: about 115 days of video
MAX_PERSONS = 1000          # a moment's person index

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


def _jpeg(image: Image.Image, quality: int = 85) -> Response:
    buffer = BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    # Drawn from labels a reviewer may change at any moment: browsers must ask again each time.
    return Response(buffer.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


class FrameLabelCache:
    """The visible frame labels of recently asked media files, by frame id.

    The store offers a media file's frames, not one frame; a result grid asks for many thumbnails of
    the same few videos, so their frames are read once and kept while the visible run is the same.
    Bounded by frames, not files (a grid over many short videos must not evict itself). Each media file
    has its own loading lock: the twenty requests of one video wait for one read, while requests for
    other videos go on (one lock for all made thumbnails of many videos queue behind each other).
    """

    def __init__(self, store: LabelStore, max_frames: int = FRAME_CACHE_FRAMES):
        self.store = store
        self.max_frames = max_frames
        self._cache: OrderedDict[str, tuple[str, dict[str, FrameLabels]]] = OrderedDict()
        self._frames = 0
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}  # one per media id asked for; a lock is a few bytes

    def _cached(self, media_id: str, run_id: str) -> dict[str, FrameLabels] | None:
        with self._lock:
            cached = self._cache.get(media_id)
            if cached is None or cached[0] != run_id:
                return None
            self._cache.move_to_end(media_id)
            return cached[1]

    def _keep(self, media_id: str, run_id: str, frames: dict[str, FrameLabels]) -> None:
        with self._lock:
            previous = self._cache.pop(media_id, None)
            self._frames -= len(previous[1]) if previous else 0
            self._cache[media_id] = (run_id, frames)
            self._frames += len(frames)
            while self._frames > self.max_frames and len(self._cache) > 1:
                _, (_, evicted) = self._cache.popitem(last=False)
                self._frames -= len(evicted)

    def get(self, media_id: str, frame_id: str) -> FrameLabels | None:
        record = self.store.get_media(media_id)
        if record is None:
            return None
        frames = self._cached(media_id, record.visible_run_id)
        if frames is None:
            with self._lock:
                loading = self._loading.setdefault(media_id, threading.Lock())
            with loading:
                frames = self._cached(media_id, record.visible_run_id)
                if frames is None:
                    frames = {frame.frame_id: frame for frame in self.store.frames_of(media_id)}
                    self._keep(media_id, record.visible_run_id, frames)
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
            forgotten = self._cache.pop(media_id, None)
            self._frames -= len(forgotten[1]) if forgotten else 0


# --- the app ---------------------------------------------------------------------------------------


class Health(BaseModel):
    status: str
    version: str
    store: str


def media_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def _parse_overlay(overlay: str | None) -> list[str]:
    names = [name.strip() for name in (overlay or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in ANNOTATORS]
    if unknown:
        raise HTTPException(422, f"unknown overlay {', '.join(unknown)}; known: {', '.join(ANNOTATORS)}")
    return [name for name in ANNOTATORS if name in names]  # masks first, boxes drawn over them


def create_app(settings: Settings, *, parser: QueryParser | None = None) -> FastAPI:
    """The API over the store `settings` name, opened once here and closed on shutdown.

    `parser`: a QueryParser to use instead of building one (tests; the CLI shares its own).
    """
    store = open_store(settings)
    parsers = ParserChoice(settings, parser)
    images = FrameImageStore(settings.data_dir)
    frame_labels = FrameLabelCache(store)
    describer = PhotoDescriber(settings)

    def start_up() -> None:
        parsers.get()
        # What start-up made (modules, the text model, the store) lives as long as the server: full
        # collections need not walk it again. Each one cost a search ~30 ms of CPU (docs/benchmarks.md).
        gc.freeze()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Load the text model while the server starts, not during the first user's search.
        threading.Thread(target=start_up, name="vestis-query-parser", daemon=True).start()
        yield
        store.close()

    # FastAPIOffline serves Swagger UI and ReDoc from the assets its package ships: /docs works on a
    # machine with no way out. Every operation names its operation id, so clients generated from the
    # schema keep their method names when routes or functions are renamed.
    app = FastAPIOffline(
        title="Vestis", lifespan=lifespan, version=package_version(), openapi_tags=OPENAPI_TAGS,
        docs_url=DOCS_URL, redoc_url=REDOC_URL, static_url=DOCS_ASSETS_URL,
        responses=PROBLEM_RESPONSES,
        description="Search videos and photos for what people wear. Results are moments: one person in one "
                    "outfit over a span of seconds.",
    )
    install_problem_handlers(app)
    app.state.store = store
    app.state.parsers = parsers
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # The last added runs first: the headers go on every answer (a 413 or a CORS preflight too); then
    # CORS, only when origins are listed; then the body limit, before the app reads a body.
    app.add_middleware(BodyLimit, timeout=settings.server.request_timeout, paths={"/search/similar": MAX_UPLOAD_BYTES})
    if settings.server.cors_origins:
        # Only the listed origins may read answers from a page of theirs; reviewer tokens travel in
        # the Authorization header (never cookies), so no credentials mode.
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.server.cors_origins),
                           allow_methods=["GET", "HEAD", "POST"], allow_headers=["Authorization", "Content-Type"],
                           allow_credentials=False, max_age=600)
    docs = frozenset(p for p in (DOCS_URL, REDOC_URL, app.swagger_ui_oauth2_redirect_url) if p)
    app.add_middleware(SecurityHeaders, docs_paths=docs)
    # Outermost: a request naming a host this server is not (DNS rebinding: a page of another site whose
    # name now resolves to 127.0.0.1) is refused before anything reads the store.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.server.trusted_hosts), www_redirect=False)
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

    @app.get("/healthz", operation_id="healthz", response_model=Health, tags=["health"], summary="The server answers and so does its store",
             responses={503: {"description": "The store cannot be reached"}})
    def healthz() -> Health:
        store.get_media("healthz")  # a cheap read: raises StoreUnavailable (503) when the store is down
        return Health(status="ok", version=package_version(),
                      store="elasticsearch" if settings.store.elasticsearch_url else "embedded")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/search", operation_id="search_moments", response_model=SearchResponse, tags=["search"], summary="Search moments by what people wear")
    def search(
        q: Annotated[str, Query(max_length=MAX_QUERY_CHARS,
                                description='free text, e.g. "red striped dress without a hat"')] = "",
        media: MediaFilter = None,
        start: Annotated[float | None, Query(ge=0, le=MAX_SECONDS,
                                             description="seconds: moments ending at or after it")] = None,
        end: Annotated[float | None, Query(ge=0, le=MAX_SECONDS,
                                           description="seconds: moments starting at or before it")] = None,
        min_confidence: Annotated[float, Query(ge=0, le=1, description="labels less sure count as absent")] = 0.0,
        threshold: Annotated[float, Query(ge=0, le=1, description="relevance: moments scoring below it are left out"
                                          )] = DEFAULT_THRESHOLD,
        strict: Annotated[bool, Query(description="top labels only: ignore the labels' alternatives")] = False,
        review: Annotated[list[ReviewStatus] | None, Query(max_length=len(ReviewStatus),
                                                           description="only moments in these review states")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
        cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS,
                                            description="next_cursor of the previous page")] = None,
    ) -> SearchResponse:
        try:
            return search_moments(store, parsers, q, media_ids=media_ids(media), start=start, end=end,
                                  min_confidence=min_confidence, threshold=threshold, strict=strict, review=review,
                                  limit=limit, cursor=cursor)
        except InvalidCursor as exc:
            raise HTTPException(400, f"invalid cursor: {exc}. Start again without a cursor.") from None
        except ValidationError as exc:
            raise HTTPException(422, "; ".join(e["msg"] for e in exc.errors())) from None

    @app.get("/vocabulary", response_model=VocabularyOut, operation_id="get_vocabulary", tags=["search"],
             summary="The words search understands")
    def vocabulary() -> VocabularyOut:
        return vocabulary_out()

    @app.get("/search/similar", operation_id="search_similar", response_model=SimilarResponse, tags=["search"],
             summary="Moments whose garments look like an indexed garment")
    def search_similar(
        garment: Annotated[str, Query(min_length=5, max_length=200, pattern=r"^[A-Za-z0-9_-]+/[0-9]{1,4}/[0-9]{1,4}$",
                                      description="<moment id or frame id>/<person index>/<garment index>")],
        q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description='text filters, e.g. "not black"')] = "",
        media: MediaFilter = None,
        min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    ) -> SimilarResponse:
        try:
            return similar_to_reference(store, parsers, garment, q=q, media_ids=media_ids(media),
                                        min_confidence=min_confidence, limit=limit)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post("/search/similar", operation_id="search_similar_photo", response_model=SimilarResponse, tags=["search"],
              summary="Moments whose garments look like one in an uploaded photo",
              openapi_extra={"requestBody": {"required": True, "content": {
                  t: {"schema": {"type": "string", "format": "binary"}} for t in UPLOAD_FORMATS.values()}}})
    async def search_similar_photo(
        request: Request,
        q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description='text filters, e.g. "not black"')] = "",
        person: Annotated[int | None, Query(ge=0, le=MAX_PERSONS, description="the photo's person (default: the largest)")] = None,
        garment: Annotated[int | None, Query(ge=0, le=100, description="that person's garment (default: the largest)")] = None,
        media: MediaFilter = None,
        min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    ) -> SimilarResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in UPLOAD_FORMATS.values():
            raise HTTPException(415, f"send the photo as the body with Content-Type {', '.join(UPLOAD_FORMATS.values())}"
                                     f" (got {kind or 'none'})")
        data = await request.body()
        try:
            # the vision stages are CPU work: off the event loop
            return await run_in_threadpool(similar_to_photo, store, parsers, describer, data, person=person,
                                           garment=garment, q=q, media_ids=media_ids(media),
                                           min_confidence=min_confidence, limit=limit)
        except BadPhoto as exc:
            raise HTTPException(exc.status, str(exc)) from None

    @app.get("/frames/{frame_id}.jpg", operation_id="get_frame_image", response_class=Response, tags=["frames"], summary="A sampled frame, optionally annotated",
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

    @app.get("/moments/{moment_id}/thumbnail.jpg", operation_id="get_moment_thumbnail", response_class=Response, tags=["search"],
             summary="The moment's best frame, small, with the person's box",
             responses={200: {"content": {"image/jpeg": {}}}})
    def thumbnail(
        moment_id: Id,
        person: Annotated[int, Query(ge=0, le=MAX_PERSONS,
                                     description="which person of the moment (MomentHit.person_index)")] = 0,
        size: Annotated[int, Query(ge=32, le=1280, description="longest side in pixels")] = THUMBNAIL_SIDE,
        crop: Annotated[Literal["person", "frame"], Query(
            description="person: a 16:10 window around the person (what result cards show); frame: all of it")
        ] = "person",
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
            # The labels say the frame's size; the JPEG beside it is smaller. Scale, draw, crop, shrink.
            width = max(2, round(image.width / 160))
            box, scale = moment.persons[person].box, frame_scale(image, labels)
            draw_box(ImageDraw.Draw(image), box, scale, PERSON_COLOUR, width)
            if crop == "person":
                image = image.crop(window_around(box, scale, image.size, THUMBNAIL_ASPECT))
        image.thumbnail((size, size))
        return _jpeg(image, quality=80)

    @app.get("/media", operation_id="list_media", response_model=list[MediaOut], tags=["media"], summary="Every media file in the store")
    def media_list() -> list[MediaOut]:
        return [media_out(record) for record in store.list_media()]

    @app.get("/media/{media_id}", operation_id="get_media", response_model=MediaDetail, tags=["media"], summary="One media file and its moments")
    def media_detail(media_id: Id) -> MediaDetail:
        record = media_record(media_id)
        moments = [
            MomentLink(moment_id=m.moment_id, start=rounded_time(m.start), end=rounded_time(m.end),
                       best_frame_id=m.best_frame_id,
                       thumbnail_url=thumbnail_url(m.moment_id), play_url=play_url(m.media_id, m.start, record.kind),
                       wearing=[describe_garment(g) for g in m.persons[0].garments])
            for m in store.moments_of(media_id)
        ]
        return MediaDetail(**media_out(record).model_dump(), moments=moments)

    @app.head("/media/{media_id}/stream", include_in_schema=False)  # players may ask the size first
    @app.get("/media/{media_id}/stream", operation_id="stream_media", response_class=FileResponse, tags=["media"],
             summary="The original file, with HTTP Range support so players can seek",
             responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "Partial content"},
                        404: {"description": "Unknown media, or its file is gone"},
                        416: {"description": "Range not satisfiable"}})
    def stream(media_id: Id) -> FileResponse:
        record = media_record(media_id)
        if record.status != MediaStatus.DONE:
            # A failed file may be anything (a text file named .mp4, one the ingest was not allowed to
            # read); a pending one may be changing. Only what the ingest read whole is served.
            raise HTTPException(404, f"media {media_id} is {record.status.value}, not indexed: it is not served")
        path = Path(record.path)
        if not path.is_file():
            raise HTTPException(404, f"the file of media {media_id} is gone")
        # Starlette answers Range requests itself: 206 with Content-Range, 416 when unsatisfiable.
        return FileResponse(path, media_type=media_type(record.path))

    return app
