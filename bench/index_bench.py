"""Index and search benchmark on synthetic frame labels (issues #4 and #6): bulk indexing frames/s per
backend, and search latency p50/p95/p99 on the embedded store at 100k and 1M frame documents.

    .venv/bin/python bench/index_bench.py [--quick] [--sizes 100000,1000000]
        [--backends embedded,elasticsearch] [--out FILE]

A benchmark, not a test: nothing is asserted about speed. `bench/run_all.py` runs it with the
pipeline benchmark and writes docs/benchmarks.{json,md}.

Data. `generate` makes videos sampled at 1 fps (2-10 minutes each, plus a shot-change frame at each
cut), 0-3 people per scene (side by side, drifting a little), each in an outfit of 1-4 garments with
category, colour, secondary colour, pattern and sleeve labels from the vocabulary. Per frame the
labels jitter the way the vision stages' do: confidences move, a colour now and then flips to its
neighbour, a garment or a whole person is sometimes missed, people go out of sight for a few seconds
(which ends their moment); outfits change between scenes. About 8 person sightings make a moment.
Frames carry boxes and run-length masks of the size real ones have (1280x720 frames): about 4.9 KB of
JSON per frame (a real ingest of a test video gave 6.6 KB, its garment parse finding ~6 garments per
person). Everything comes from one `random.Random(seed)`: the same seed gives the same frames. A
video that crosses one of the sizes is split there into two media, so the first N frames of the big
data set are whole media and the same as the N-frame data set, and sizes can be reached
incrementally.

Indexing goes through the real LabelStore API, as the ingest does: `begin_run`, `write_frames` in
batches, `finish_run` (which builds the moments). `--build moments` (embedded only) is the fast honest
path for the 1M store: each video's frames (the same generator, masks left out: moments carry none)
are merged by indexer.moments.build_moments and written by the store's own moment writer
(`_replace_moments`, what finish_run calls), so moments, bound lists and probabilities are the real
ones; the frames table stays empty (search never reads it). `--store-dir` keeps a store for later runs. Generating and validating the FrameLabels is timed
apart and not counted. The store is built once up to the largest size; the figures at each size are
cumulative from an empty store (the 1M store is the 100k store plus 900k frames).

Search runs a fixed list of queries (QUERIES) on the embedded store after each size is reached:
warm-up runs, then rounds over all queries (interleaved, so background load spreads over all of
them) until each has `repeats` timed runs or has spent `budget_s` (after at least `min_repeats`).
Only `store.search` is timed: parsing the query (microseconds) and building page 1 for the page-2
query are done before. Every timing has the wall time and the CPU time of the calling thread: on a
shared machine the wall time includes waiting for the CPU, the CPU time is what the call costs
(SQLite runs in that thread; for Elasticsearch it is the client's share only). Percentiles interpolate linearly between ranks; with fewer than 100 runs the
p99 is close to the slowest run.

Elasticsearch: `indexer.elasticsearch.ElasticsearchStore` on osmem-server, the in-memory stand-in the
tests use (tests/indexer/elasticsearch_server.py), bulk indexing only and at most `es_max_frames`.
osmem's numbers say whether the backend's bulk path works at scale and what the client side costs;
they are not Elasticsearch's numbers. Either being unavailable is recorded as "skipped: <reason>".
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pydantic import TypeAdapter  # noqa: E402

from bench.common import load_average, number, write_report  # noqa: E402
from indexer.search import SearchRequest  # noqa: E402
from indexer.store import LabelStore, MediaRecord, MediaStatus  # noqa: E402
from indexer.query_parser import QueryParser  # noqa: E402
from labels import FrameLabels  # noqa: E402
from labels.vocabulary import COLORS, GARMENT_CATEGORIES, PATTERNS, SLEEVED_REGIONS, SLEEVES  # noqa: E402

SEED = 20240604
SIZES = (100_000, 1_000_000)
BACKENDS = ("embedded", "elasticsearch")
BATCH_SIZE = 500         # frames per write_frames call
ES_MAX_FRAMES = 100_000  # osmem holds everything in memory
QUICK_SIZE_DIVISOR = 100  # --quick: every size / 100 (at least QUICK_MIN_SIZE)
QUICK_MIN_SIZE = 1_000
DOC_SAMPLE_EVERY = 25  # frames whose JSON size is measured (untimed): every 25th

FRAME_WIDTH, FRAME_HEIGHT = 1280, 720  # sampling.max_side 1280 on 16:9 video
VIDEO_SECONDS = (120, 600)
SCENE_SECONDS = (3.0, 30.0)
PEOPLE_IN_SCENE = ((0, 0.15), (1, 0.40), (2, 0.30), (3, 0.15))
SLOT_X = (60.0, 480.0, 900.0)  # left edges of up to three people side by side
MISSED = 0.03     # chance the detector misses a person in one frame (the track goes on)
OCCLUSION = 0.04  # chance per frame that a person goes out of sight for 3-6 s (the track ends)

# Label sources as the vision stages name them.
DETECTOR = ("yolov3-tiny-coco", "darknet-dccea06f")
PARSER = ("garment-parser", "ccp-blazepose-head-1-6874c3f4")
COLOR_NAMER = ("color-namer", "oklab-shares-1")
PATTERN_MODEL = ("vestis-pattern-texture", "1")
SLEEVE_MODEL = ("sleeve-geometry", "2")
FACE_MODEL = ("face-expression", "bench-1")

COLOR_WEIGHTS = {
    "black": 25, "white": 13, "blue": 15, "gray": 10, "red": 6, "beige": 5, "brown": 5, "green": 5,
    "pink": 4, "yellow": 3, "orange": 3, "purple": 3, "cyan": 3,
}
JEANS_COLOR_WEIGHTS = {**COLOR_WEIGHTS, "blue": 60, "black": 30}
PATTERN_WEIGHTS = {"solid": 70, "striped": 8, "plaid": 5, "floral": 6, "spotted": 3, "graphics": 8}
# Colours the colour namer confuses from frame to frame (a subset of indexer.moments' neighbours).
COLOR_FLIPS = {
    "black": ("gray", "blue"), "gray": ("black", "white"), "white": ("gray", "beige"), "blue": ("black", "cyan"),
    "red": ("orange", "pink"), "beige": ("white", "brown"), "brown": ("beige", "orange"), "green": ("yellow", "cyan"),
    "pink": ("red", "purple"), "yellow": ("orange", "green"), "orange": ("red", "yellow"),
    "purple": ("blue", "pink"), "cyan": ("blue", "green"),
}
SLEEVE_WEIGHTS = {
    "t-shirt": {"short": 85, "long": 15}, "shirt/blouse": {"long": 60, "short": 40}, "sweater": {"long": 100},
    "tank top": {"sleeveless": 100}, "coat/jacket": {"long": 100}, "suit": {"long": 100},
    "dress": {"sleeveless": 40, "short": 35, "long": 25},
}
EXPRESSION_WEIGHTS = {"neutral": 50, "happy": 25, "sad": 7, "surprise": 6, "angry": 5, "fear": 4, "disgust": 3}
# Where a garment sits in its person's box: (left, top, right, bottom) as shares of the box.
REGION_BOX = {
    "upper": (0.15, 0.18, 0.85, 0.55), "outer": (0.08, 0.16, 0.92, 0.62), "full": (0.12, 0.18, 0.88, 0.88),
    "lower": (0.18, 0.50, 0.82, 0.92), "feet": (0.20, 0.90, 0.80, 1.00),
}
ACCESSORY_BOX = {"bag": (0.70, 0.40, 1.00, 0.62), "hat": (0.30, 0.00, 0.70, 0.10), "scarf": (0.30, 0.12, 0.70, 0.30)}

_FRAMES = TypeAdapter(list[FrameLabels])


# --- synthetic labels ------------------------------------------------------------------------------


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _unit(value: float) -> float:
    return min(1.0, max(0.01, value))


@dataclass
class _GarmentSpec:
    """One garment of an outfit: its true labels and how sure the stages are of each, on average."""

    category: str
    category_confidence: float
    color: str
    color_confidence: float
    secondary: str | None
    secondary_confidence: float
    pattern: str | None
    pattern_confidence: float
    sleeve: str | None
    sleeve_confidence: float
    miss: float  # chance the parser misses it in a frame

    @property
    def region(self) -> str:
        return GARMENT_CATEGORIES[self.category]


def _garment_spec(rng: random.Random, category: str) -> _GarmentSpec:
    region = GARMENT_CATEGORIES[category]
    color = _pick(rng, JEANS_COLOR_WEIGHTS if category == "pants/jeans" else COLOR_WEIGHTS)
    pattern = None if category == "shoes" else _pick(rng, PATTERN_WEIGHTS)
    secondary = None
    if rng.random() < (0.7 if pattern not in (None, "solid") else 0.1):
        secondary = _pick(rng, {c: w for c, w in COLOR_WEIGHTS.items() if c != color})
    sleeve = None
    if region in SLEEVED_REGIONS and rng.random() < 0.75:
        sleeve = _pick(rng, SLEEVE_WEIGHTS[category])
    return _GarmentSpec(
        category=category, category_confidence=rng.uniform(0.45, 0.95),
        color=color, color_confidence=rng.uniform(0.4, 0.95),
        secondary=secondary, secondary_confidence=rng.uniform(0.25, 0.5),
        pattern=pattern, pattern_confidence=rng.uniform(0.4, 0.99),
        sleeve=sleeve, sleeve_confidence=rng.uniform(0.5, 0.95),
        miss=0.03 if region in ("upper", "outer", "full", "lower") else 0.15,
    )


def _outfit(rng: random.Random) -> list[_GarmentSpec]:
    """1-4 garments: a dress or a top and a bottom, maybe a coat, shoes, an accessory."""
    if rng.random() < 0.15:
        clothes = ["dress"]
    else:
        clothes = [_pick(rng, {"t-shirt": 30, "shirt/blouse": 30, "sweater": 25, "tank top": 15}),
                   _pick(rng, {"pants/jeans": 60, "skirt": 15, "shorts": 25})]
    if rng.random() < 0.3:
        clothes.append("suit" if rng.random() < 0.15 else "coat/jacket")
    extras = []
    if rng.random() < 0.6:
        extras.append("shoes")
    if rng.random() < 0.3:
        extras.append(_pick(rng, {"bag": 50, "hat": 35, "scarf": 15}))
    if rng.random() < 0.1:  # the parser saw only part of the person
        clothes = clothes[:1]
    return [_garment_spec(rng, c) for c in (clothes + extras)[:4]]


@dataclass
class _Character:
    """Someone who appears in a video; the outfit may change between scenes."""

    outfit: list[_GarmentSpec]
    detection: float
    expression: str
    expression_confidence: float
    width: float
    height: float


def _character(rng: random.Random) -> _Character:
    height = rng.uniform(300.0, 620.0)
    return _Character(
        outfit=_outfit(rng), detection=rng.uniform(0.35, 0.95), expression=_pick(rng, EXPRESSION_WEIGHTS),
        expression_confidence=rng.uniform(0.3, 0.9), width=height * rng.uniform(0.35, 0.5), height=height,
    )


@dataclass
class _Appearance:
    """A character on screen during one scene: where, from when to when, with a face or not."""

    character: _Character
    outfit: list[_GarmentSpec]
    start: float
    end: float
    x: float
    y: float
    face: bool
    hidden_until: float = -1.0  # out of sight (turned away, behind someone) until then

    def seen(self, rng: random.Random, t: float) -> bool:
        """Whether the detector finds the person in the frame at t."""
        if not self.start <= t <= self.end or t < self.hidden_until:
            return False
        if rng.random() < OCCLUSION:  # hidden for 3-6 s: long enough to end the track
            self.hidden_until = t + rng.uniform(3.0, 6.0)
            return False
        return rng.random() >= MISSED


def _rle(x1: int, y1: int, x2: int, y2: int) -> list[int]:
    """The column-major run lengths (starting with a 0-run) of a filled box in the frame: what a
    real mask of that size costs to store."""
    w, h = x2 - x1, y2 - y1
    if w <= 0 or h <= 0:
        return [FRAME_WIDTH * FRAME_HEIGHT]
    return ([x1 * FRAME_HEIGHT + y1] + [h, FRAME_HEIGHT - h] * (w - 1)
            + [h, (FRAME_HEIGHT - y2) + (FRAME_WIDTH - x2) * FRAME_HEIGHT])


def _box(x1: float, y1: float, x2: float, y2: float) -> tuple[dict, dict]:
    """A box clipped to the frame (whole pixels, as the parser gives them) and its mask."""
    ix1, iy1 = max(0, int(x1)), max(0, int(y1))
    ix2, iy2 = min(FRAME_WIDTH, int(x2)), min(FRAME_HEIGHT, int(y2))
    ix2, iy2 = max(ix2, ix1 + 1), max(iy2, iy1 + 1)
    box = {"x1": float(ix1), "y1": float(iy1), "x2": float(ix2), "y2": float(iy2)}
    return box, {"height": FRAME_HEIGHT, "width": FRAME_WIDTH, "counts": _rle(ix1, iy1, ix2, iy2)}


def _label(value: str, confidence: float, source: tuple[str, str], rng: random.Random | None = None,
           others: Sequence[str] = ()) -> dict:
    """A label; with `rng` and `others`, with two alternatives from `others` sharing what the label's
    confidence leaves, as the garment stage keeps its top three (labels.Label.alternatives)."""
    label: dict = {"value": value, "confidence": confidence, "model": source[0], "model_version": source[1]}
    if rng is not None:
        second, third = rng.sample([o for o in others if o != value], 2)
        rest = 1.0 - confidence
        p2 = rest * rng.uniform(0.4, 0.9)
        p3 = (rest - p2) * rng.uniform(0.3, 0.9)
        label["alternatives"] = [{"value": value, "probability": confidence},
                                 {"value": second, "probability": round(p2, 4)},
                                 {"value": third, "probability": round(p3, 4)}]
    return label


def _confusable(category: str) -> list[str]:
    """Categories the classifier weighs against this one: the same body region's, else any."""
    same = [c for c, region in GARMENT_CATEGORIES.items() if region == GARMENT_CATEGORIES[category]]
    return same if len(same) >= 3 else list(GARMENT_CATEGORIES)


def _person_doc(rng: random.Random, a: _Appearance, masks: bool) -> dict:
    c = a.character
    a.x += rng.gauss(0.0, 4.0)  # people drift a little between samples
    x1, y1 = a.x, a.y
    x2, y2 = x1 + c.width, y1 + c.height
    box, mask = _box(x1, y1, x2, y2)
    garments = []
    for g in a.outfit:
        if rng.random() < g.miss:
            continue
        left, top, right, bottom = ACCESSORY_BOX.get(g.category) or REGION_BOX[g.region]
        gbox, gmask = _box(x1 + left * c.width, y1 + top * c.height, x1 + right * c.width, y1 + bottom * c.height)
        color = g.color
        if rng.random() < 0.04:
            color = rng.choice(COLOR_FLIPS[color])
        garments.append({
            "category": _label(g.category, _unit(g.category_confidence + rng.gauss(0, 0.05)), PARSER, rng,
                               _confusable(g.category)),
            "box": gbox,
            "mask": gmask if masks else None,
            "color": _label(color, _unit(g.color_confidence + rng.gauss(0, 0.05)), COLOR_NAMER, rng,
                            [*COLOR_FLIPS[color], rng.choice(COLORS)]),
            "secondary_color": (_label(g.secondary, _unit(g.secondary_confidence + rng.gauss(0, 0.03)), COLOR_NAMER)
                                if g.secondary and rng.random() < 0.85 else None),
            "pattern": (_label(g.pattern, _unit(g.pattern_confidence + rng.gauss(0, 0.05)), PATTERN_MODEL, rng,
                               PATTERNS) if g.pattern else None),
            "sleeve": (_label(g.sleeve, _unit(g.sleeve_confidence + rng.gauss(0, 0.05)), SLEEVE_MODEL, rng,
                              SLEEVES) if g.sleeve else None),
        })
    face = None
    if a.face:
        fx = x1 + 0.35 * c.width
        face = {
            "detection": _label("face", _unit(0.8 + rng.gauss(0, 0.05)), FACE_MODEL),
            "box": _box(fx, y1 + 0.02 * c.height, fx + 0.3 * c.width, y1 + 0.14 * c.height)[0],
            "expression": _label(c.expression, _unit(c.expression_confidence + rng.gauss(0, 0.08)), FACE_MODEL),
        }
    return {
        "detection": _label("person", _unit(c.detection + rng.gauss(0, 0.05)), DETECTOR),
        "box": box, "mask": mask if masks else None, "garments": garments, "face": face,
    }


def _scenes(rng: random.Random, duration: int) -> list[float]:
    """Scene start times: 0 and the cuts (a cut lands between 1 fps samples)."""
    starts = [0.0]
    while True:
        cut = math.floor(starts[-1] + rng.uniform(*SCENE_SECONDS)) + round(rng.uniform(0.05, 0.95), 3)
        if cut >= duration - 1:
            return starts
        starts.append(cut)


def _appearances(rng: random.Random, cast: list[_Character], current: dict[int, list[_GarmentSpec]],
                 start: float, end: float) -> list[_Appearance]:
    count = min(len(cast), int(_pick(rng, {str(n): w for n, w in PEOPLE_IN_SCENE})))
    chosen = rng.sample(range(len(cast)), count)
    slots = rng.sample(range(len(SLOT_X)), count)
    out = []
    for index, slot in zip(chosen, slots):
        if index not in current or rng.random() < 0.25:  # a new outfit since the last scene
            current[index] = _outfit(rng)
        c = cast[index]
        enter, leave = start, end
        if rng.random() < 0.5 and end - start > 6:  # walks in late or leaves early
            enter = start + rng.uniform(0, (end - start) / 2)
            leave = rng.uniform(enter + 3, end)
        out.append(_Appearance(
            character=c, outfit=current[index], start=enter, end=leave,
            x=SLOT_X[slot] + rng.uniform(-30, 30), y=FRAME_HEIGHT - c.height - rng.uniform(0, 60),
            face=rng.random() < 0.5,
        ))
    return out


def _video_frames(rng: random.Random, media_id: str, masks: bool) -> list[dict]:
    """One video's frames as FrameLabels dicts, in time order."""
    duration = rng.randint(*VIDEO_SECONDS)
    cast = [_character(rng) for _ in range(rng.randint(1, 4))]
    starts = _scenes(rng, duration)
    current: dict[int, list[_GarmentSpec]] = {}
    frames: list[dict] = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else float(duration)
        on_screen = _appearances(rng, cast, current, start, end)
        times = ([(start, "shot")] if k else []) + [(float(t), "rate") for t in range(math.ceil(start), math.ceil(end))]
        for t, reason in times:
            persons = [_person_doc(rng, a, masks) for a in on_screen if a.seen(rng, t)]
            frames.append({
                "frame_id": f"{media_id}-{round(t * 1000):09d}", "media_id": media_id, "timestamp": t,
                "reason": reason, "width": FRAME_WIDTH, "height": FRAME_HEIGHT, "persons": persons,
            })
    return frames


@dataclass
class SyntheticVideo:
    media_id: str
    path: str
    frames: list[FrameLabels]

    @property
    def duration(self) -> float:
        return self.frames[-1].timestamp if self.frames else 0.0

    def record(self, run_id: str) -> MediaRecord:
        return MediaRecord(media_id=self.media_id, path=self.path, kind="video", status=MediaStatus.PENDING,
                           pipeline_version="bench", duration=self.duration, width=FRAME_WIDTH,
                           height=FRAME_HEIGHT, run_id=run_id)


def _media_id(seed: int, index: int, part: int) -> str:
    return hashlib.blake2b(f"bench-{seed}-{index}-{part}".encode(), digest_size=8).hexdigest()


def generate(total_frames: int, seed: int = SEED, *, boundaries: Sequence[int] = (),
             masks: bool = True) -> Iterator[SyntheticVideo]:
    """Videos with `total_frames` frames in all, validated FrameLabels, the same for the same seed.

    The last video is cut at `total_frames`; a video that crosses one of `boundaries` (frame counts)
    is split there into two media, so the first N frames form whole media for each N in boundaries.
    """
    rng = random.Random(seed)
    cuts = sorted({b for b in boundaries if 0 < b < total_frames} | {total_frames})
    made = 0
    index = 0
    while made < total_frames:
        media_id = _media_id(seed, index, 0)
        docs = _video_frames(rng, media_id, masks)
        part, offset = 0, 0
        while offset < len(docs) and made < total_frames:
            limit = next(c for c in cuts if c > made)
            piece = docs[offset: offset + (limit - made)]
            piece_id = _media_id(seed, index, part)
            if part:  # a split video: the second piece is another media file
                for doc in piece:
                    doc["media_id"] = piece_id
                    doc["frame_id"] = piece_id + doc["frame_id"][len(media_id):]
            yield SyntheticVideo(piece_id, f"/bench/videos/video-{index:05d}{'-' + str(part) if part else ''}.mp4",
                                 _FRAMES.validate_python(piece))
            made += len(piece)
            offset += len(piece)
            part += 1
        index += 1


# --- the benchmark ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuerySpec:
    """One timed search. media: search only this many of the data set's media (spread over it);
    page: 2 times the request for page 2 with the cursor of page 1."""

    name: str
    kind: str
    text: str
    media: int = 0
    start: float | None = None
    end: float | None = None
    min_confidence: float = 0.0
    page: int = 1
    limit: int = 20
    strict: bool = False


QUERIES: tuple[QuerySpec, ...] = (
    QuerySpec("red striped dress", "narrow", "red striped dress"),
    QuerySpec("man in a black hoodie", "narrow", "man in a black hoodie"),
    QuerySpec("smiling woman in a floral skirt", "narrow", "smiling woman in a floral skirt"),
    QuerySpec("blue jeans", "medium", "blue jeans"),
    QuerySpec("black", "broad", "black"),
    QuerySpec("(empty query)", "broad", ""),
    QuerySpec("dress not black", "negation", "dress not black"),
    QuerySpec("no hat", "negation", "without a hat"),
    QuerySpec("black, 10 media", "filter", "black", media=10),
    QuerySpec("blue jeans, 60-120 s", "filter", "blue jeans", start=60.0, end=120.0),
    QuerySpec("white t-shirt, min_confidence 0.7", "filter", "white t-shirt", min_confidence=0.7),
    QuerySpec("black, page 2", "page", "black", page=2),
)

# `--mix all`: the mix and the kinds of query whose score only the cluster's exact score bounds (strict
# mode, negations under a min_confidence or of several terms, later pages of a negation), to count what
# Elasticsearch reads for them. Not in the default mix, so its p95 stays comparable over time.
MORE_QUERIES: tuple[QuerySpec, ...] = (
    QuerySpec("black jacket, strict", "strict", "black jacket", strict=True),
    QuerySpec("no hat, strict", "strict", "without a hat", strict=True),
    QuerySpec("no hat, min_confidence 0.7", "negation", "without a hat", min_confidence=0.7),
    QuerySpec("not red, min_confidence 0.5", "negation", "not red", min_confidence=0.5),
    QuerySpec("without a black jacket", "negation", "without a black jacket"),
    QuerySpec("no hat, page 3", "page", "without a hat", page=3),
)
MIXES = {"default": QUERIES, "all": QUERIES + MORE_QUERIES}


@dataclass
class Backend:
    """How to open one store for the benchmark. open(workdir) -> (store, close, disk_bytes or None)."""

    name: str
    open: Callable[[Path], tuple[LabelStore, Callable[[], None], Callable[[], int | None]]]
    max_frames: int | None = None
    search: bool = True
    note: str = ""


def _open_embedded(workdir: Path):
    from indexer.embedded import EmbeddedStore

    store = EmbeddedStore(workdir / "embedded")

    def disk_bytes() -> int:
        return sum(p.stat().st_size for p in store.data_dir.glob("vestis.sqlite3*"))

    return store, store.close, disk_bytes


def _open_elasticsearch(workdir: Path):
    from indexer.elasticsearch import ElasticsearchStore
    from tests.indexer.elasticsearch_server import OsmemProcess, client_for

    server = OsmemProcess.start()
    try:
        client = client_for(server.url, request_timeout=300)
        store = ElasticsearchStore(client, index_prefix="vestis-bench")
    except BaseException:
        server.stop()
        raise

    def close() -> None:
        try:
            store.close()
        finally:
            client.close()
            server.stop()

    return store, close, lambda: None


def backend(name: str, es_max_frames: int = ES_MAX_FRAMES) -> Backend | str:
    """The Backend of that name, or "skipped: <reason>" when it cannot run here."""
    if name == "embedded":
        return Backend("embedded", _open_embedded, note="SQLite file in a temporary folder (WAL, synchronous=NORMAL)")
    if name == "elasticsearch":
        try:
            import indexer.elasticsearch  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - any reason it cannot be imported is a reason to skip
            return f"skipped: indexer.elasticsearch is not importable ({type(exc).__name__}: {exc})"
        try:
            from tests.indexer.elasticsearch_server import OsmemProcess, OsmemUnavailable
        except Exception as exc:  # noqa: BLE001
            return f"skipped: the osmem stand-in cannot be loaded ({type(exc).__name__}: {exc})"
        try:  # start it once to know it can be had
            OsmemProcess.start().stop()
        except OsmemUnavailable as exc:
            return f"skipped: {exc}"
        return Backend("elasticsearch", _open_elasticsearch, max_frames=es_max_frames,
                       note="osmem-server (in-memory stand-in used by the tests), NOT Elasticsearch: "
                            "bulk and search figures show the client-side cost, what a search reads from the "
                            "cluster (documents_read) and that the paths work at this size, not what an "
                            "Elasticsearch cluster does")
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of ascending values."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _stats_ms(seconds: Sequence[float], cpu_seconds: Sequence[float] = ()) -> dict:
    values = sorted(s * 1000.0 for s in seconds)
    out = {
        "runs": len(values),
        "p50_ms": round(percentile(values, 50), 3), "p95_ms": round(percentile(values, 95), 3),
        "p99_ms": round(percentile(values, 99), 3), "max_ms": round(values[-1], 3) if values else float("nan"),
        "mean_ms": round(sum(values) / len(values), 3) if values else float("nan"),
    }
    if cpu_seconds:
        cpu = sorted(s * 1000.0 for s in cpu_seconds)
        out["cpu_p50_ms"] = round(percentile(cpu, 50), 3)
        out["cpu_p95_ms"] = round(percentile(cpu, 95), 3)
    return out


class _Timer:
    """Wall time and this thread's CPU time of a block: on a shared machine the CPU time is what the
    call costs, the wall time what it took with the other processes' load."""

    __slots__ = ("wall", "cpu", "_wall", "_cpu")

    def __enter__(self) -> _Timer:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.thread_time() - self._cpu


@dataclass
class _IndexTotals:
    frames: int = 0
    videos: int = 0
    persons: int = 0
    garments: int = 0
    doc_bytes: int = 0    # of the sampled frames' JSON
    doc_samples: int = 0
    generate_s: float = 0.0
    begin_s: float = 0.0
    write_s: float = 0.0
    write_cpu_s: float = 0.0
    finish_s: float = 0.0
    finish_cpu_s: float = 0.0
    store_cpu_s: float = 0.0
    batch_s: list[float] = field(default_factory=list)
    finish_each_s: list[float] = field(default_factory=list)

    def report(self) -> dict:
        store_s = self.begin_s + self.write_s + self.finish_s

        def rate(seconds: float) -> float | None:
            return round(self.frames / seconds, 1) if seconds > 0 else None

        return {
            "frames": self.frames, "videos": self.videos, "persons": self.persons, "garments": self.garments,
            "mean_frame_doc_bytes": round(self.doc_bytes / self.doc_samples) if self.doc_samples else None,
            "generate_s": round(self.generate_s, 3),
            "begin_run_s": round(self.begin_s, 3),
            "write_frames_s": round(self.write_s, 3),
            "write_frames_per_s": rate(self.write_s),
            "write_frames_cpu_s": round(self.write_cpu_s, 3),
            "write_frames_per_cpu_s": rate(self.write_cpu_s),
            "write_batch": _stats_ms(self.batch_s),
            "finish_run_s": round(self.finish_s, 3),
            "finish_run_frames_per_s": rate(self.finish_s),
            "finish_run_cpu_s": round(self.finish_cpu_s, 3),
            "finish_run_per_video": _stats_ms(self.finish_each_s),
            "store_s": round(store_s, 3),
            "frames_per_s": rate(store_s),
            "store_cpu_s": round(self.store_cpu_s, 3),
            "frames_per_cpu_s": rate(self.store_cpu_s),
        }


def _index(store: LabelStore, videos: Iterator[SyntheticVideo], until: int, totals: _IndexTotals,
           batch_size: int) -> None:
    """Index videos until `until` frames are in: the ingest's calls, timed one by one."""
    while totals.frames < until:
        with _Timer() as t:
            video = next(videos)
        totals.generate_s += t.wall
        run_id = f"bench-{video.media_id}"
        with _Timer() as t:
            store.begin_run(video.record(run_id))
        totals.begin_s += t.wall
        totals.store_cpu_s += t.cpu
        for offset in range(0, len(video.frames), batch_size):
            batch = video.frames[offset: offset + batch_size]
            with _Timer() as t:
                store.write_frames(run_id, batch)
            totals.write_s += t.wall
            totals.write_cpu_s += t.cpu
            totals.store_cpu_s += t.cpu
            totals.batch_s.append(t.wall)
        persons = sum(len(f.persons) for f in video.frames)
        garments = sum(f.garment_count for f in video.frames)
        with _Timer() as t:
            store.finish_run(video.media_id, run_id, len(video.frames), persons, garments, 0.0)
        totals.finish_s += t.wall
        totals.finish_cpu_s += t.cpu
        totals.store_cpu_s += t.cpu
        totals.finish_each_s.append(t.wall)
        totals.frames += len(video.frames)
        totals.videos += 1
        totals.persons += persons
        totals.garments += garments
        sample = video.frames[::DOC_SAMPLE_EVERY]  # the JSON size of every 25th frame, untimed
        totals.doc_bytes += sum(len(f.model_dump_json()) for f in sample)
        totals.doc_samples += len(sample)


# --build moments: media written per transaction. One transaction per media rewrote most index pages of
# the bound lists each time (random keys): 80 GB written for a 2.5 GB store; fifty share the writes.
MEDIA_PER_WRITE = 50


def _index_moments(store: LabelStore, videos: Iterator[SyntheticVideo], until: int, totals: _IndexTotals) -> None:
    """Index videos until `until` frames are in, the fast honest way (`--build moments`): each video's
    frames are merged with indexer.moments.build_moments (what finish_run runs) and its moments written
    by the embedded store's own moment writer (`_replace_moments`, the code finish_run calls, so the
    moments table, the bound lists and the probabilities are the real ones), MEDIA_PER_WRITE media per
    transaction, which also makes their runs visible. The frames table is not written (search never
    reads it), so frames/s is not measured."""
    from indexer.embedded import EmbeddedStore
    from indexer.moments import build_moments

    if not isinstance(store, EmbeddedStore):
        raise ValueError("--build moments writes through the embedded store's moment writer")
    while totals.frames < until:
        pending: list[tuple[SyntheticVideo, str, list, int, int]] = []
        with _Timer() as t:
            while totals.frames < until and len(pending) < MEDIA_PER_WRITE:
                with _Timer() as g:
                    video = next(videos)
                totals.generate_s += g.wall
                run_id = f"bench-{video.media_id}"
                store.begin_run(video.record(run_id))
                persons = sum(len(f.persons) for f in video.frames)
                garments = sum(f.garment_count for f in video.frames)
                pending.append((video, run_id, build_moments(video.frames), persons, garments))
                totals.frames += len(video.frames)
                totals.videos += 1
                totals.persons += persons
                totals.garments += garments

            def write(db, pending=pending) -> None:
                for video, run_id, moments, persons, garments in pending:
                    db.execute("UPDATE media SET status = ?, frames = ?, persons = ?, garments = ?, "
                               "visible_run_id = ? WHERE media_id = ?",
                               (MediaStatus.DONE.value, len(video.frames), persons, garments, run_id, video.media_id))
                    store._replace_moments(db, video.media_id, run_id, moments)

            store._write(write)
        totals.finish_s += t.wall  # generating included (generate_s says how much)
        totals.finish_cpu_s += t.cpu
        totals.store_cpu_s += t.cpu
        totals.finish_each_s.append(t.wall)


def _requests(store: LabelStore, specs: Sequence[QuerySpec], media_ids: list[str],
              parser: QueryParser) -> list[SearchRequest]:
    requests = []
    for spec in specs:
        media = None
        if spec.media:
            step = max(1, len(media_ids) // spec.media)
            media = media_ids[::step][: spec.media]
        request = SearchRequest(query=parser.parse(spec.text), media_ids=media, start=spec.start, end=spec.end,
                                min_confidence=spec.min_confidence, limit=spec.limit, strict=spec.strict)
        for _ in range(spec.page - 1):
            cursor = store.search(request).next_cursor
            if cursor is None:
                break  # fewer hits than pages: time the last page there is
            request = request.model_copy(update={"cursor": cursor})
        requests.append(request)
    return requests


def _search(store: LabelStore, specs: Sequence[QuerySpec], media_ids: list[str], *, warmup: int, repeats: int,
            min_repeats: int, budget_s: float) -> dict:
    parser = QueryParser()  # exact words and synonyms: every query here is in the vocabulary
    requests = _requests(store, specs, media_ids, parser)
    results: list[dict] = []
    for spec, request in zip(specs, requests):
        counted = store.search_counted(request)
        page = counted.page
        results.append({
            "name": spec.name, "kind": spec.kind, "text": spec.text, "interpretation": request.query.interpretation,
            "media_ids": len(request.media_ids) if request.media_ids is not None else None,
            "start": spec.start, "end": spec.end, "min_confidence": spec.min_confidence, "page": spec.page,
            "total": page.total, "total_exact": page.total_exact, "hits": len(page.hits),
            "documents_read": counted.read,  # moment documents the store read and scored (not timed)
            "rows_walked": counted.rows,  # bound-list rows (ids, bounds) it walked to find them
        })
    for _ in range(max(0, warmup - 1)):
        for request in requests:
            store.search(request)
    samples: list[list[float]] = [[] for _ in specs]
    cpu: list[list[float]] = [[] for _ in specs]
    spent = [0.0] * len(specs)
    # As the server does once started (search_api/app.py): what the process holds now is not walked by
    # every full collection again; without it a full collection cost a search ~30 ms of CPU here.
    gc.collect()
    gc.freeze()
    try:
        _timed_rounds(store, requests, samples, cpu, spent, repeats=repeats, min_repeats=min_repeats,
                      budget_s=budget_s)
    finally:
        gc.unfreeze()
    for result, seconds, cpu_seconds in zip(results, samples, cpu):
        result.update(_stats_ms(seconds, cpu_seconds))
    common = min(len(s) for s in samples)
    overall = _stats_ms([s for seconds in samples for s in seconds[:common]],
                        [s for seconds in cpu for s in seconds[:common]])
    overall["runs_per_query"] = common
    return {"queries": results, "overall": overall}


def _timed_rounds(store: LabelStore, requests: list[SearchRequest], samples: list[list[float]],
                  cpu: list[list[float]], spent: list[float], *, repeats: int, min_repeats: int,
                  budget_s: float) -> None:
    """Rounds over all queries (interleaved) until each has `repeats` runs or spent `budget_s`."""
    while True:
        due = [i for i in range(len(requests))
               if len(samples[i]) < repeats and (len(samples[i]) < min_repeats or spent[i] < budget_s)]
        if not due:
            return
        for i in due:
            with _Timer() as t:
                store.search(requests[i])
            samples[i].append(t.wall)
            cpu[i].append(t.cpu)
            spent[i] += t.wall


def _bench_backend(b: Backend, sizes: Sequence[int], *, seed: int, batch_size: int, specs: Sequence[QuerySpec],
                   warmup: int, repeats: int, min_repeats: int, budget_s: float, masks: bool,
                   workdir: Path | None, log: Callable[[str], None], build: str = "api",
                   store_dir: Path | None = None) -> dict:
    todo = sorted({s for s in sizes if b.max_frames is None or s <= b.max_frames})
    out: dict = {"status": "ok", "note": b.note, "runs": []}
    if b.max_frames is not None:
        out["max_frames"] = b.max_frames
        dropped = sorted(set(sizes) - set(todo))
        if dropped:
            out["not_run"] = {"sizes": dropped, "reason": f"this backend is measured up to {b.max_frames} frames"}
    if not todo:
        out["status"] = f"skipped: no size within {b.max_frames} frames"
        return out
    if build == "moments" and b.name != "embedded":
        return {"status": "skipped: --build moments is for the embedded store"}
    out["build"] = build
    if store_dir is not None and len(todo) > 1:
        raise ValueError("--store-dir keeps one store: give one size")
    folder = store_dir or Path(tempfile.mkdtemp(prefix=f"vestis-bench-{b.name}-", dir=workdir))
    sidecar = folder / "bench-store.json"  # what a kept store holds, so a later run can reuse it
    try:
        kept = json.loads(sidecar.read_text()) if store_dir is not None and sidecar.exists() else None
        if kept is not None and (kept["seed"], kept["frames"], kept["build"]) != (seed, todo[0], build):
            raise ValueError(f"{folder} holds another store ({kept['frames']} frames, seed {kept['seed']}, "
                             f"build {kept['build']})")
        store, close, disk_bytes = b.open(folder)
        try:
            videos = generate(todo[-1], seed, boundaries=todo, masks=masks and build == "api")
            totals = _IndexTotals()
            media_ids: list[str] = []
            for size in todo:
                if kept is not None:
                    log(f"{b.name}: reusing the store in {folder} ({size} frames)")
                    media_ids, index_report = kept["media_ids"], kept["index"]
                else:
                    log(f"{b.name}: indexing to {size} frames ({build})")
                    before = totals.videos
                    if build == "moments":
                        _index_moments(store, _tap(videos, media_ids), size, totals)
                    else:
                        _index(store, _tap(videos, media_ids), size, totals, batch_size)
                    assert totals.videos - before > 0 and totals.frames == size
                    index_report = totals.report()
                    if store_dir is not None:
                        sidecar.write_text(json.dumps({"seed": seed, "frames": size, "build": build,
                                                       "media_ids": media_ids, "index": index_report}))
                run: dict = {"frames": size, "index": index_report, "store_reused": kept is not None}
                log(f"{b.name}: {size} frames in, {run['index']['write_frames_per_s']} frames/s through write_frames, "
                    f"finish_run {run['index']['finish_run_s']} s")
                started = time.perf_counter()
                # the empty query at threshold 0 matches every moment: the embedded store reads them all (an
                # exact count); Elasticsearch ranks it like any query (a lower bound), so its moments are counted
                count = store.search(SearchRequest(limit=1, threshold=0.0))
                run["moments"] = count.total if count.total_exact else sum(len(store.moments_of(m)) for m in media_ids)
                run["count_moments_s"] = round(time.perf_counter() - started, 3)
                run["disk_bytes"] = disk_bytes()
                if b.search:
                    log(f"{b.name}: {run['moments']} moments; searching")
                    run["search"] = _search(store, specs, media_ids, warmup=warmup, repeats=repeats,
                                            min_repeats=min_repeats, budget_s=budget_s)
                    o = run["search"]["overall"]
                    log(f"{b.name}: overall p50 {o['p50_ms']} ms, p95 {o['p95_ms']} ms, p99 {o['p99_ms']} ms")
                out["runs"].append(run)
                gc.collect()
        finally:
            close()
    finally:
        if store_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    return out


def _tap(videos: Iterator[SyntheticVideo], media_ids: list[str]) -> Iterator[SyntheticVideo]:
    for video in videos:
        media_ids.append(video.media_id)
        yield video


def _log(message: str) -> None:
    print(f"[index_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(quick: bool = False, sizes=SIZES, backends=BACKENDS, *, seed: int = SEED, batch_size: int = BATCH_SIZE,
        queries: Sequence[QuerySpec] | None = None, warmup: int | None = None, repeats: int | None = None,
        min_repeats: int | None = None, budget_s: float | None = None, es_max_frames: int = ES_MAX_FRAMES,
        masks: bool = True, workdir: Path | str | None = None, log: Callable[[str], None] | None = _log,
        build: str = "api", store_dir: Path | str | None = None) -> dict:
    """Index `sizes` synthetic frames into each backend and time search on those that search; the report.

    quick: every size / 100 (at least 1000 frames) and fewer runs, to check the benchmark works.
    queries: a subset of QUERIES (default all). repeats / min_repeats / budget_s: timed runs per query
    (at most / at least / seconds after which a query stops early). workdir: where the stores go
    (default the system temporary folder; the 1M embedded store takes about 6 GB).
    build: "api" (begin_run, write_frames, finish_run, as the ingest) or "moments" (`_index_moments`:
    the same moments and bound lists, no frames table; minutes instead of most of an hour at 1M).
    store_dir: build the store there and keep it (one size), or reuse the store an earlier run kept.
    """
    if build not in ("api", "moments"):
        raise ValueError(f"build must be 'api' or 'moments', got {build!r}")
    log = log or (lambda message: None)
    sizes = sorted({int(s) for s in sizes})
    if quick:
        sizes = sorted({max(QUICK_MIN_SIZE, s // QUICK_SIZE_DIVISOR) for s in sizes})
        es_max_frames = max(QUICK_MIN_SIZE, es_max_frames // QUICK_SIZE_DIVISOR)
    if not sizes or sizes[0] <= 0:
        raise ValueError(f"sizes must be positive frame counts, got {sizes}")
    warmup = (1 if quick else 2) if warmup is None else warmup
    repeats = (5 if quick else 30) if repeats is None else repeats
    min_repeats = min(repeats, (3 if quick else 10) if min_repeats is None else min_repeats)
    budget_s = (5.0 if quick else 60.0) if budget_s is None else budget_s
    specs = tuple(QUERIES if queries is None else queries)
    report: dict = {
        "benchmark": "index",
        "quick": quick,
        "config": {
            "seed": seed, "sizes": sizes, "backends": list(backends), "batch_size": batch_size,
            "es_max_frames": es_max_frames, "build": build, "warmup": warmup, "repeats": repeats, "min_repeats": min_repeats,
            "budget_s_per_query": budget_s, "frame": f"{FRAME_WIDTH}x{FRAME_HEIGHT}", "masks": masks,
            "data": "synthetic: videos of 120-600 s at 1 fps plus a shot frame per cut, 0-3 people per scene, "
                    "1-4 garments each; labels jitter per frame; outfits change between scenes",
            "sizes_incremental": "each backend's store is filled once up to the largest size; figures at a size "
                                 "are cumulative from an empty store",
            "timed": "store calls only (begin_run, write_frames, finish_run; search); generating and validating "
                     "FrameLabels is reported as generate_s and not counted",
        },
        "load_average": {"start": load_average()},
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "backends": {},
    }
    for name in backends:
        b = backend(name, es_max_frames)
        if isinstance(b, str):
            log(f"{name}: {b}")
            report["backends"][name] = {"status": b}
            continue
        started = time.perf_counter()
        report["backends"][name] = _bench_backend(
            b, sizes, seed=seed, batch_size=batch_size, specs=specs, warmup=warmup, repeats=repeats,
            min_repeats=min_repeats, budget_s=budget_s, masks=masks,
            workdir=Path(workdir) if workdir is not None else None, log=log, build=build,
            store_dir=Path(store_dir) if store_dir is not None else None)
        report["backends"][name]["wall_s"] = round(time.perf_counter() - started, 1)
    report["load_average"]["end"] = load_average()
    return report



# --- the summary ---------------------------------------------------------------------------------



def _size(frames: int) -> str:
    return f"{frames // 1_000_000}M" if frames % 1_000_000 == 0 else (
        f"{frames // 1000}k" if frames % 1000 == 0 else str(frames))


def summary_markdown(report: dict) -> str:
    config = report["config"]
    lines = [
        "## Index and search",
        "",
        f"Synthetic frame documents ({config['frame']} frames{', with masks' if config['masks'] else ''}; seed "
        f"{config['seed']}), written through the LabelStore API in batches of {config['batch_size']} "
        f"(`write_frames`), then `finish_run` per video (builds the moments). Frames/s counts store calls only; "
        f"figures at a size are cumulative from an empty store."
        + (" **Quick run: sizes scaled down, few repeats.**" if report.get("quick") else ""),
        "",
        "| backend | frames | videos | moments | write_frames frames/s (per CPU-s) | finish_run s (frames/s) "
        "| all store calls frames/s (per CPU-s) | on disk |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for name, result in report["backends"].items():
        if result.get("status") != "ok":
            lines.append(f"| {name} | {result.get('status')} | | | | | | |")
            continue
        if result.get("note") and name != "embedded":
            notes.append(f"- {name}: {result['note']}.")
        for run_ in result["runs"]:
            i = run_["index"]
            disk = run_.get("disk_bytes")
            lines.append(
                f"| {name} | {number(run_['frames'])} | {number(i['videos'])} | {number(run_['moments'])} "
                f"| {number(i['write_frames_per_s'])} ({number(i['write_frames_per_cpu_s'])}) "
                f"| {number(i['finish_run_s'])} ({number(i['finish_run_frames_per_s'])}) "
                f"| {number(i['frames_per_s'])} ({number(i['frames_per_cpu_s'])}) "
                f"| {f'{disk / 2**30:.2f} GiB' if disk else '-'} |")
        if result.get("not_run"):
            notes.append(f"- {name}: not run at {', '.join(_size(s) for s in result['not_run']['sizes'])} "
                         f"({result['not_run']['reason']}).")
    if notes:
        lines += ["", *notes]
    for name, result in report["backends"].items():
        runs = [r for r in result.get("runs", []) if "search" in r]
        if not runs:
            continue
        header = " | ".join(f"{_size(r['frames'])}: hits | read (rows) | p50 | p95 | p99 | CPU p50" for r in runs)
        lines += [
            "",
            f"Search latency on the {name} store in ms: wall time of `store.search` (a page of 20), and the "
            f"median CPU time of the calling thread (what the call costs without other load). "
            f"Hits: matching moments (≥: a lower bound, the store did not score them all); read: moment "
            f"documents the store read and scored to answer (rows: bound-list rows it walked). Runs per query "
            f"are in the JSON.",
            "",
            f"| query | kind | {header} |",
            "|---|---|" + "---:|---:|---:|---:|---:|---:|" * len(runs),
        ]
        for q, spec in enumerate(runs[0]["search"]["queries"]):
            cells = []
            for r in runs:
                s = r["search"]["queries"][q]
                hits = ("" if s.get("total_exact", True) else "≥") + number(s["total"])
                rows = f" ({number(s['rows_walked'])})" if s.get("rows_walked") else ""
                cells.append(f"{hits} | {number(s.get('documents_read'))}{rows} | {number(s['p50_ms'])} "
                             f"| {number(s['p95_ms'])} | {number(s['p99_ms'])} | {number(s['cpu_p50_ms'])}")
            lines.append(f"| {spec['name']} | {spec['kind']} | {' | '.join(cells)} |")
        cells = []
        for r in runs:
            o = r["search"]["overall"]
            cells.append(f" | | {number(o['p50_ms'])} | {number(o['p95_ms'])} | {number(o['p99_ms'])} "
                         f"| {number(o['cpu_p50_ms'])}")
        lines.append(f"| **all queries** | |{' | '.join(cells)} |")
    load = report.get("load_average")
    if load:
        lines += ["", f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load['start'])}, "
                      f"at end {', '.join(f'{x:.2f}' for x in load['end'])}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes / 100 and few runs: checks that it works")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="frame counts, comma-separated")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: embedded, elasticsearch")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per query, at most")
    parser.add_argument("--budget", type=float, default=None, help="seconds per query after which it stops early")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores are built (default: $TMPDIR)")
    parser.add_argument("--es-max-frames", type=int, default=ES_MAX_FRAMES,
                        help="the largest size the Elasticsearch stand-in is measured at")
    parser.add_argument("--build", choices=("api", "moments"), default="api",
                        help="api: through the LabelStore calls, as the ingest; moments: build_moments and the "
                             "embedded store's moment writer (the same moments and bound lists, no frames table)")
    parser.add_argument("--store-dir", type=Path, default=None,
                        help="keep the store here (one size), or reuse the one an earlier run kept there")
    parser.add_argument("--mix", choices=tuple(MIXES), default="default",
                        help="default: the query mix the figures are over; all: also MORE_QUERIES")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here (default: stdout)")
    args = parser.parse_args(argv)
    report = run(quick=args.quick, sizes=[int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()],
                 backends=[b.strip() for b in args.backends.split(",") if b.strip()], seed=args.seed,
                 batch_size=args.batch_size, repeats=args.repeats, budget_s=args.budget, workdir=args.workdir,
                 es_max_frames=args.es_max_frames, build=args.build, store_dir=args.store_dir,
                 queries=MIXES[args.mix])
    report["command"] = " ".join(["python", "bench/index_bench.py", *(argv if argv is not None else sys.argv[1:])])
    write_report(report, args.out, summary_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
