"""The answer to "find this outfit", as both shells give it: `POST/GET /search/similar` and
`vestis search --like`. No FastAPI here.

The query garment is either one already indexed (a reference, indexer/similar.py) or one found in
an uploaded photo: the photo is decoded with bounds (format, bytes, pixels: a decompression bomb is
refused before it is decoded), the vision stages ingest runs (person detection, garments) describe
it, and the garment the user picked, or else the largest garment with an embedding of the largest
person, is the query. Nothing is written: the photo is neither stored nor indexed.

The answer has search's shape (moments grouped by video, search_api/results.py) with each moment's
score its cosine similarity to the query garment, plus the garments found in the photo so a client
can offer the others.
"""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from configs import Settings
from indexer import LabelStore
from indexer.search import SearchRequest
from indexer.similar import SimilarRequest, garment_embedding
from labels import Box, Embedding, FrameLabels
from search_api.results import ParserChoice, VideoResults, describe_garment, group_by_video

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000  # decoded: a 40 MP photo is 120 MB of RGB; a bomb claims far more
UPLOAD_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class BadPhoto(ValueError):
    """The upload is not a photo we take (the message says why); `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FoundGarment(_Out):
    """A garment found in the uploaded photo (one could search with it instead: `person`, `garment`)."""

    person: int
    garment: int
    category: str
    color: str | None
    box: Box
    used: bool = Field(description="the query garment")


class SimilarResponse(_Out):
    query: str = Field(description="the text filters, as given")
    interpretation: str
    like: str = Field(description="what the query garment is: a reference, or the photo's person/garment")
    like_garment: str = Field(description="the query garment, readable")
    found: list[FoundGarment] = Field(description="every garment of the uploaded photo with an embedding; [] for a reference")
    total: int = Field(description="moments found among the nearest garments (after the filters)")
    videos: list[VideoResults]


def decode_photo(data: bytes, max_side: int) -> np.ndarray:
    """RGB uint8 of a JPEG, PNG or WebP upload, the long side at most max_side; BadPhoto otherwise."""
    if not data:
        raise BadPhoto("the request body is empty: send the photo's bytes (JPEG, PNG or WebP)", 400)
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadPhoto(f"the photo is larger than {MAX_UPLOAD_BYTES} bytes", 413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=list(UPLOAD_FORMATS))
            width, height = opened.size  # from the header: nothing decoded yet
            if width * height > MAX_UPLOAD_PIXELS:
                raise BadPhoto(f"the photo claims {width}x{height} pixels, more than {MAX_UPLOAD_PIXELS} "
                               "(a decompression bomb, or a photo to scale down first)", 413)
            opened.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale when that suffices
            image = opened.convert("RGB")
    except BadPhoto:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadPhoto(f"the photo is a decompression bomb: {exc}", 413) from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise BadPhoto(f"not a JPEG, PNG or WebP photo we can read: {exc}", 415) from None
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    return np.asarray(image)


class PhotoDescriber:
    """The person detection and garment stages, built on first use (seconds) and kept; one photo at a time."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._stages: list | None = None
        self._lock = threading.Lock()

    def describe(self, rgb: np.ndarray) -> FrameLabels:
        from vision.garments import GarmentStage
        from vision.person_detection import PersonDetectionStage
        from vision.stage import Frame

        with self._lock:
            if self._stages is None:
                self._stages = [PersonDetectionStage.from_settings(self.settings),
                                GarmentStage.from_settings(self.settings)]
            frames = [Frame.of_photo(rgb, "upload")]
            for stage in self._stages:
                frames = stage(frames)
        return frames[0].labels


def photo_garment(labels: FrameLabels, person: int | None, garment: int | None) -> tuple[Embedding, list[FoundGarment], str]:
    """The query garment of a described photo: the one picked, else the largest person's largest
    garment with an embedding."""
    found = [(p, g, item) for p, who in enumerate(labels.persons) for g, item in enumerate(who.garments)
             if item.embedding is not None]
    if not labels.persons:
        raise BadPhoto("no person found in the photo: upload one where a person is clearly visible")
    if not found:
        raise BadPhoto("no garment found on the person in the photo (shoes, bags and hats cannot be searched by)")
    if person is not None or garment is not None:
        chosen = [f for f in found if f[0] == (person or 0) and f[1] == (garment or 0)]
        if not chosen:
            raise BadPhoto(f"the photo has no searchable garment {garment or 0} of person {person or 0}; found: "
                           + ", ".join(f"{p}/{g} {item.category.value}" for p, g, item in found))
        pick = chosen[0]
    else:
        largest = max(range(len(labels.persons)), key=lambda p: labels.persons[p].box.area)
        own = [f for f in found if f[0] == largest] or found
        pick = max(own, key=lambda f: f[2].box.area)
    listed = [FoundGarment(person=p, garment=g, category=item.category.value,
                           color=item.color.value if item.color else None, box=item.box, used=(p, g) == pick[:2])
              for p, g, item in found]
    embedding = pick[2].embedding
    assert embedding is not None
    return embedding, listed, f"photo person {pick[0]} garment {pick[1]}"


def _describe(category: str, color: str | None) -> str:
    return " ".join(w for w in (color, category) if w)


def similar_moments(store: LabelStore, parser: ParserChoice, embedding: Embedding, *, like: str, like_garment: str,
                    found: list[FoundGarment] | None = None, q: str = "", exclude_moment_id: str | None = None,
                    media_ids: list[str] | None = None, min_confidence: float = 0.0, limit: int = 20) -> SimilarResponse:
    """The moments most like `embedding`, narrowed by text `q` and the filters, grouped by video."""
    parsed = parser.get().parse(q)
    filters = SearchRequest(query=parsed, media_ids=media_ids or None, min_confidence=min_confidence)
    page = store.similar(SimilarRequest(embedding=embedding, filters=filters, limit=limit,
                                        exclude_moment_id=exclude_moment_id))
    return SimilarResponse(query=q, interpretation=parsed.interpretation, like=like, like_garment=like_garment,
                           found=found or [], total=page.total, videos=group_by_video(store, page.hits))


def similar_to_reference(store: LabelStore, parser: ParserChoice, reference: str, **kw) -> SimilarResponse:
    """Moments like an indexed garment (`<moment or frame id>/<person>/<garment>`); the garment's own
    moment is left out. Raises ValueError / indexer.similar.UnknownGarment for a bad reference."""
    embedding, moment_id = garment_embedding(store, reference)
    owner = store.moment(moment_id) if moment_id else None
    readable = reference
    if owner is not None:
        _, p, g = reference.split("/")
        readable = describe_garment(owner.persons[int(p)].garments[int(g)])
    return similar_moments(store, parser, embedding, like=reference, like_garment=readable,
                           exclude_moment_id=moment_id, **kw)


def similar_to_photo(store: LabelStore, parser: ParserChoice, describer: PhotoDescriber, data: bytes, *,
                     person: int | None = None, garment: int | None = None, **kw) -> SimilarResponse:
    """Moments like a garment of an uploaded photo. Raises BadPhoto for what cannot be searched with."""
    labels = describer.describe(decode_photo(data, describer.settings.sampling.max_side))
    embedding, found, like = photo_garment(labels, person, garment)
    used = next(f for f in found if f.used)
    return similar_moments(store, parser, embedding, like=like, like_garment=_describe(used.category, used.color),
                           found=found, **kw)
