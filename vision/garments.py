"""Garment stage: each detected person's whole garments with category, mask, colours, pattern and sleeve length.

Runs after person detection. All persons of a batch of frames are parsed together
(vision/garment_parser.py); per person, the parse is read inside the person's box (a little
enlarged), so a neighbour inside the crop window does not lend this person a garment.

The parser's regions are fragments: it often splits one jacket into coat, shirt and sweater
pixels. They are merged into whole garments before anything is named: one upper-body garment (the
outermost layer: a top, a jacket or suit, or a dress), one lower garment, and one each of shoes,
bag, hat and scarf. The upper and lower garments are then named from their crop by the garment
heads (vision/garment_heads.py: linear classifiers over ImageNet EfficientNet-Lite features,
vision/backbone.py, trained on CCP, ccp-tags and clothing-dataset), which also give the sleeve
length; their calibrated probabilities become the labels' confidences and alternatives. A dress
takes the skirt pixels below it. Where the upper garment is an outer layer and the parser sees a
sizeable top under it, that top is kept as a second, inner garment. Shoes, bags, hats and scarves
keep the parser's category. Colour names come from each garment's own pixels, with the frame's
colour cast taken out (vision/colors.py);
the pattern of every garment but shoes, bags and hats from the same crop features (the pattern head,
trained on synthetic prints painted onto real garments).

Model card: docs/models/garment-parsing.md
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from configs import Settings
from configs.manifest import load_manifest
from labels import Box, Garment, Label, Person, RuleSet
from labels.masks import decode_mask, encode_mask
from labels.vocabulary import GARMENT_CATEGORIES, PATTERNS, has_sleeves
from vision import colors, garment_embedding, legs, versions
from vision.device import resolve_device
from vision.garment_heads import LOWER_CATEGORIES, SLEEVE_CLASSES, UPPER_CATEGORIES
from vision.garment_parser import PARSER_CLASSES
from vision.garment_pixels import TooFewPixels
from vision.model_files import build_model, model_files
from vision.pose import PoseLandmarker
from vision.stage import Frame, Stage

HEAD_MODEL = versions.PARSER_MODEL
POSE_MODEL = versions.POSE_MODEL
BACKBONE_MODEL = versions.BACKBONE_MODEL
# Crop features are the mean over the crop and its mirror image: on the attributes-dev photos the
# upper category went from 79 to 84 of 120 right with the same heads (docs/models/garment-parsing.md).
MIRROR_AVERAGE = versions.MIRROR_AVERAGE
CLASSIFIER_MODEL = versions.CLASSIFIER_MODEL
BOX_MARGIN = 0.08  # the person's box is enlarged this much (each side) before reading the parse
MIN_GARMENT_SHARE = 0.004  # of the person box's area: smaller regions are parsing noise
MIN_GARMENT_PIXELS = 60
# An inner top under an outer layer is kept as its own garment when it has this share of the
# upper-body pixels (a shirt front under a suit jacket is about a tenth); less is a collar or a sliver.
MIN_INNER_SHARE = 0.1
MIN_OUTER_SHARE = 0.3  # ... and the outer layer keeps at least this share of them
# A dress is one cloth: its parts above and below the hips look alike, a top and its skirt seldom
# do. Over this difference (colours.cloth_difference) they are two garments. Set on the true masks
# of CCP's training photos: a dress's two parts differ by 0.23 (median), a top and its skirt by
# 0.75; at 0.4, 15 % of 143 dresses and 12 % of 98 skirts are on the wrong side.
ONE_PIECE_LIMIT = 0.4
HIPS = (23, 24)  # BlazePose landmarks: below the line through them is the lower body
MIN_HIP_VISIBILITY = 0.5
PARSE_CHUNK = 16  # person crops per forward pass
ALTERNATIVES = 3  # values kept on a classified label, best first
SKIN = PARSER_CLASSES.index("skin")
DRESS = PARSER_CLASSES.index("dress")
SKIRT = PARSER_CLASSES.index("skirt")
SHOES = PARSER_CLASSES.index("shoes")
SLEEVED = frozenset(i for i, c in enumerate(PARSER_CLASSES) if c in GARMENT_CATEGORIES and has_sleeves(c))
UPPER = tuple(PARSER_CLASSES.index(c) for c in ("t-shirt", "shirt/blouse", "sweater", "coat/jacket", "suit", "dress"))
INNER = tuple(PARSER_CLASSES.index(c) for c in ("t-shirt", "shirt/blouse", "sweater"))
OUTER_CATEGORIES = {"coat/jacket", "suit"}
LOWER = tuple(PARSER_CLASSES.index(c) for c in LOWER_CATEGORIES)
TANK_TOP_FROM = {"t-shirt", "shirt/blouse", "sweater"}  # found sleeveless, these are tank tops
# Garments the parser names itself, one each per person.
SINGLE = tuple(PARSER_CLASSES.index(c) for c in ("shoes", "bag", "hat", "scarf"))
# Shoes are too small and shiny to tell a pattern from highlights; nobody searches bags or hats by print.
NO_PATTERN = {"shoes", "bag", "hat"}

# The heads each named garment role is read by (beside the pattern head), and where the answer goes.
_HEADS_OF_ROLE: dict[str, dict[str, str]] = {"upper": {"upper": "category", "sleeve": "sleeve"},
                                             "lower": {"lower": "category"}}

COLOR_NAMER = RuleSet("color-namer", versions.COLOR_RULES)


@dataclass
class WholeGarment:
    """One garment of a person before it is named: its role, the parser's guess and its pixels
    (a boolean map over the person's region)."""

    role: str  # "upper", "inner", "lower" or "single"
    parser_class: int
    pixels: np.ndarray
    parser_confidence: float
    # upper garment: its part below the hips looks like another cloth (split_skirt), so not a dress
    two_piece: bool = False
    # lower garment: every shin that decides is bare skin (legs.bare_shins), so not trousers
    bare_shins: bool = False


def whole_garments(labels: np.ndarray, confidence: np.ndarray, min_pixels: float) -> list[WholeGarment]:
    """Merge the parser's fragments into at most one garment per region: upper body (the outermost
    layer), an inner top where an outer layer leaves a sizeable one in view, lower body, and one
    each of shoes, bag, hat and scarf."""
    found: list[WholeGarment] = []

    def majority(pixels: np.ndarray, classes: tuple[int, ...]) -> int:
        counts = np.bincount(labels[pixels], minlength=len(PARSER_CLASSES))
        return max(classes, key=lambda c: counts[c])

    upper = np.isin(labels, UPPER)
    if upper.sum() >= min_pixels:
        found.append(WholeGarment("upper", majority(upper, UPPER), upper, float(confidence[upper].mean())))
        inner = np.isin(labels, INNER)
        if inner.sum() >= max(min_pixels, MIN_INNER_SHARE * upper.sum()):
            found.append(WholeGarment("inner", majority(inner, INNER), inner, float(confidence[inner].mean())))
    lower = np.isin(labels, LOWER)
    if lower.sum() >= min_pixels:
        found.append(WholeGarment("lower", majority(lower, LOWER), lower, float(confidence[lower].mean())))
    for cls in SINGLE:
        pixels = labels == cls
        if pixels.sum() >= min_pixels:
            found.append(WholeGarment("single", cls, pixels, float(confidence[pixels].mean())))
    return found


def split_skirt(found: list[WholeGarment], labels: np.ndarray, rgb: np.ndarray, hip_row: float | None,
                min_pixels: float) -> list[WholeGarment]:
    """A top over a skirt is two garments, also where the parser paints the skirt as a dress (it
    tells the two apart poorly below the hips). When the upper garment's part above the hips and
    what is below them (its dress pixels there and the parser's skirt) are not one cloth
    (colors.cloth_difference), the upper garment is marked two-piece (it cannot be a dress) and its
    dress pixels below the hips go to the lower garment, a skirt if there was none. Nothing changes
    without an upper garment, with the hips not seen, over trousers or shorts, or with too few
    pixels on a side. labels, rgb: the person's region; hip_row: the hips' row in it (None when not
    seen). Changes `found` in place and returns it."""
    by_role = {g.role: g for g in found if g.role != "single"}
    upper, lower = by_role.get("upper"), by_role.get("lower")
    if upper is None or hip_row is None or (lower is not None and lower.parser_class != SKIRT):
        return found
    below = np.arange(labels.shape[0])[:, None] >= hip_row
    moved = upper.pixels & below & (labels == DRESS)
    skirt = moved | lower.pixels if lower is not None else moved
    torso = upper.pixels & ~below
    need = max(min_pixels, colors.MIN_MASK_PIXELS)  # cloth_difference's least
    if skirt.sum() < need or torso.sum() < need or colors.cloth_difference(rgb, torso, skirt) <= ONE_PIECE_LIMIT:
        return found
    upper.two_piece = True
    if moved.sum() >= min_pixels:
        upper.pixels = upper.pixels & ~moved
        if lower is not None:
            lower.pixels = lower.pixels | moved
        else:
            found.append(WholeGarment("lower", SKIRT, moved, upper.parser_confidence))
    return found


def hip_row(parse, y0: int) -> float | None:
    """The row of the person's hips in a region whose top is frame row y0; None when BlazePose
    does not see them."""
    if min(float(parse.visibility[i]) for i in HIPS) < MIN_HIP_VISIBILITY:
        return None
    return float(np.mean([parse.landmarks[i][1] for i in HIPS])) - y0


class GarmentStage(Stage):
    name = "garments"

    @classmethod
    def version(cls, settings: Settings) -> str:
        return versions.garments(settings)

    def __init__(self, settings: Settings):
        manifest = load_manifest(settings.models.manifest)
        self.pose_record = manifest.get(POSE_MODEL)
        self.head_record = manifest.get(HEAD_MODEL)
        self.backbone_record = manifest.get(BACKBONE_MODEL)
        self.classifier_record = manifest.get(CLASSIFIER_MODEL)
        self.model_version = versions.garments(settings)
        self.embedder = garment_embedding.embedder(versions.backbone_features(manifest))
        self.device = resolve_device(settings.vision.device)
        cache = settings.models.cache_dir
        pose = PoseLandmarker.from_record(self.pose_record, model_files(self.pose_record, cache))
        self.parser = build_model(self.head_record, model_files(self.head_record, cache), pose=pose).to(self.device).eval()
        self.parser.mirror_average = versions.PARSER_MIRROR_AVERAGE
        self.parser.edge_guide = versions.PARSER_EDGE_GUIDE
        pre = self.backbone_record.preprocessing
        self.backbone = build_model(self.backbone_record, model_files(self.backbone_record, cache),
                                    variant=pre.get("variant", "efficientnet-lite0"),
                                    input_size=int(pre.get("input_size", 224))).to(self.device)
        self.classifier = build_model(self.classifier_record, model_files(self.classifier_record, cache))
        # Set to a list to collect (garment, crop features) of every embedded garment: the features
        # themselves are not kept on the labels, but learning an embedding needs them.
        self.kept_features: list[tuple[Garment, np.ndarray]] | None = None
        if self.device.type == "cuda":
            self.parser = self.parser.half()
            self.backbone = self.backbone.half()

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        jobs = [(frame, person) for frame in frames for person in frame.labels.persons]
        for start in range(0, len(jobs), PARSE_CHUNK):
            chunk = jobs[start:start + PARSE_CHUNK]
            by_frame: dict[int, list[int]] = {}
            for k, (frame, _) in enumerate(chunk):
                by_frame.setdefault(id(frame), []).append(k)
            for members in by_frame.values():
                frame = chunk[members[0]][0]
                persons = [chunk[k][1] for k in members]
                parses = self.parser.parse(frame.image, [p.box.xyxy for p in persons])
                self.describe(frame, persons, parses)
        return frames

    def describe(self, frame: Frame, persons: list[Person], parses) -> None:
        """Give each person (and their parse) of one frame a mask and whole, named garments."""
        height, width = frame.image.shape[:2]
        # (person, region, whole garments, what the heads said of them) of persons with a region to read
        people: list[tuple[Person, tuple[int, int, int, int], list[WholeGarment], dict]] = []
        for person, parse in zip(persons, parses):
            x0, y0, x1, y1 = _enlarged(person.box, width, height)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            labels, confidence = parse.region_labels(x0, y0, x1, y1)
            worn = labels > 0
            if worn.any():
                person.mask = encode_mask(_paste(worn, x0, y0, width, height))
            min_pixels = max(MIN_GARMENT_PIXELS, MIN_GARMENT_SHARE * (x1 - x0) * (y1 - y0))
            found = split_skirt(whole_garments(labels, confidence, min_pixels), labels, frame.image[y0:y1, x0:x1],
                                hip_row(parse, y0), min_pixels)
            lower = next((g for g in found if g.role == "lower"), None)
            if lower is not None:
                lower.bare_shins = legs.bare_shins(
                    legs.shin_states(labels, (x0, y0), parse.landmarks, parse.visibility, SKIN, LOWER, (SHOES,)))
            people.append((person, (x0, y0, x1, y1), found, {}))
        # One backbone call for the frame's upper and lower garments and scarves; a second, usually
        # empty, for the inner tops of persons whose upper garment the heads call an outer layer.
        self._name(frame.image, [(g, named, region[:2], person.box) for person, region, found, named in people
                                 for g in found if g.role in ("upper", "lower") or _patterned_single(g)])
        for _, _, found, named in people:
            _settle_categories(found, named)
        self._name(frame.image, [(g, named, region[:2], person.box) for person, region, found, named in people
                                 for g in found if g.role == "inner" and _shows_inner(found, named)])
        # The frame's light, once: colours are named as they would look under neutral light.
        light = colors.SceneLight.of_frame(frame.image) if people else None
        for person, (x0, y0, x1, y1), found, named in people:
            person.garments = self._garments(frame.image[y0:y1, x0:x1], found, named, x0, y0, width, height, light)

    def _name(self, image: np.ndarray, jobs: list[tuple[WholeGarment, dict, tuple[int, int], Box]]) -> None:
        """The heads' probabilities for each garment's crop, into its person's `named` by role (a
        scarf by its class name). A context head also reads the crop of the garment's whole person
        (its box), cut in the same backbone call."""
        if not jobs:
            return
        boxes = [pixel_box(g.pixels, *origin) for g, _, origin, _ in jobs]
        context = self.classifier.context
        # each upper or lower garment whose head reads context: the row of its person's crop
        person_row: dict[int, int] = {}
        for k, (g, _, _, person_box) in enumerate(jobs):
            if set(_HEADS_OF_ROLE.get(g.role, ())) & context:
                person_row[k] = len(boxes)
                boxes.append(list(person_box.xyxy))
        features = self.backbone.features(image, boxes, mirror=MIRROR_AVERAGE).float()
        for k, (garment, named, _, _) in enumerate(jobs):
            f = features[k:k + 1]
            key = garment.role if garment.role != "single" else PARSER_CLASSES[garment.parser_class]
            # the features stay with the garment for its embedding (vision/garment_embedding.py)
            named[key] = {"pattern": self.classifier.probabilities("pattern", f)[0], "features": f[0].numpy()}
            for head, field in _HEADS_OF_ROLE.get(garment.role, {}).items():
                seen = torch.cat([f, features[person_row[k]:person_row[k] + 1]], dim=1) if head in context else f
                named[key][field] = self.classifier.probabilities(head, seen)[0]

    def _garments(self, region_rgb: np.ndarray, found: list[WholeGarment], named: dict, x0: int, y0: int,
                  width: int, height: int, light: colors.SceneLight | None = None) -> list[Garment]:
        upper_category = _top(UPPER_CATEGORIES, named, "upper")
        lower_category = _top(LOWER_CATEGORIES, named, "lower")
        by_role = {g.role: g for g in found if g.role != "single"}
        garments: list[Garment] = []
        if "upper" in by_role:
            pixels = by_role["upper"].pixels
            inner = by_role["inner"] if "inner" in named else None
            if inner is not None:
                pixels = pixels & ~inner.pixels  # the outer layer is what the inner top does not show
            if upper_category == "dress" and lower_category == "skirt" and "lower" in by_role:
                pixels = pixels | by_role.pop("lower").pixels  # the skirt is the dress's own
            garment = self._garment(self._classified(UPPER_CATEGORIES, named["upper"]["category"]), region_rgb,
                                    pixels, x0, y0, width, height, named["upper"]["pattern"], named["upper"]["features"],
                                    light)
            if garment is not None:
                garment.sleeve = self._classified(SLEEVE_CLASSES, named["upper"]["sleeve"])
                if garment.sleeve.value == "sleeveless" and garment.category.value in TANK_TOP_FROM:
                    garment.category = garment.category.model_copy(update={"value": "tank top"})
                    garment.embedding = garment_embedding.embed(named["upper"]["features"], garment, self.embedder)
                garments.append(garment)
            if inner is not None:
                garment = self._garment(self._parsed(inner), region_rgb, inner.pixels, x0, y0, width, height,
                                        named["inner"]["pattern"], named["inner"]["features"], light)
                if garment is not None:
                    garments.append(garment)
        if "lower" in by_role:
            garment = self._garment(self._classified(LOWER_CATEGORIES, named["lower"]["category"]), region_rgb,
                                    by_role["lower"].pixels, x0, y0, width, height, named["lower"]["pattern"],
                                    named["lower"]["features"], light)
            if garment is not None:
                garments.append(garment)
        for single in (g for g in found if g.role == "single"):
            seen = named.get(PARSER_CLASSES[single.parser_class], {})
            garment = self._garment(self._parsed(single), region_rgb, single.pixels, x0, y0, width, height,
                                    seen.get("pattern"), seen.get("features"), light)
            if garment is not None:
                garments.append(garment)
        return garments

    def _classified(self, classes: tuple[str, ...], probs: torch.Tensor) -> Label:
        ranked = [(classes[i], float(probs[i])) for i in torch.argsort(probs, descending=True)[:ALTERNATIVES].tolist()]
        return Label.made_by(self.classifier_record, *ranked[0], alternatives=ranked)

    def _parsed(self, garment: WholeGarment) -> Label:
        return Label.made_by(self.head_record, PARSER_CLASSES[garment.parser_class], garment.parser_confidence)

    def _garment(self, category: Label, region_rgb: np.ndarray, pixels: np.ndarray, x0: int, y0: int,
                 width: int, height: int, pattern: torch.Tensor | None = None,
                 features: np.ndarray | None = None, light: colors.SceneLight | None = None) -> Garment | None:
        if not pixels.any():
            return None
        x1b, y1b, x2b, y2b = pixel_box(pixels, x0, y0)
        garment = Garment(category=category, box=Box(x1=x1b, y1=y1b, x2=x2b, y2=y2b),
                          mask=encode_mask(_paste(pixels, x0, y0, width, height)))
        self._colors(garment, region_rgb, pixels, light)
        if pattern is not None:
            garment.pattern = self._classified(PATTERNS, pattern)
        if features is not None:  # shoes, bags and hats: the backbone never sees them (no embedding)
            garment.embedding = garment_embedding.embed(features, garment, self.embedder)
            if self.kept_features is not None:
                self.kept_features.append((garment, features))
        return garment

    @staticmethod
    def _colors(garment: Garment, rgb: np.ndarray, pixels: np.ndarray, light: colors.SceneLight | None = None) -> None:
        try:
            named = colors.name_colors(rgb, pixels, light)
        except TooFewPixels:
            return
        # the alternatives are the namer's pixel shares (how much of the garment each name fits)
        ranked = sorted(named.shares.items(), key=lambda item: item[1], reverse=True)[:ALTERNATIVES]
        garment.color = Label.made_by(COLOR_NAMER, named.dominant, named.dominant_confidence,
                                      alternatives=[(v, p) for v, p in ranked if p > 0])
        if named.secondary is not None:
            garment.secondary_color = Label.made_by(COLOR_NAMER, named.secondary, named.secondary_share)


def rename_colors(image: np.ndarray, persons: list[Person]) -> None:
    """Name the colours of labelled garments again from their frame, as the stage names them (the
    frame's light, each garment's mask read inside its person's enlarged box); everything else is
    kept, embeddings included. Lets an evaluation compare colour rules over stored labels."""
    height, width = image.shape[:2]
    light = colors.SceneLight.of_frame(image)
    for person in persons:
        x0, y0, x1, y1 = _enlarged(person.box, width, height)
        for garment in person.garments:
            garment.color = garment.secondary_color = None
            if garment.mask is not None:
                pixels = decode_mask(garment.mask)[y0:y1, x0:x1]
                GarmentStage._colors(garment, image[y0:y1, x0:x1], pixels, light)


def _patterned_single(garment: WholeGarment) -> bool:
    """Shoes, bags and hats keep the parser's name and get no pattern; a scarf's pattern is read."""
    return garment.role == "single" and PARSER_CLASSES[garment.parser_class] not in NO_PATTERN


def _settle_categories(found: list[WholeGarment], named: dict) -> None:
    """What a person can wear: a dress covers the legs, so over trousers or shorts the upper garment
    is something else, and it is one cloth, so not a two-piece upper garment (the dress's
    probability goes to the others). Bare shins are not in trousers (theirs goes to skirt and shorts)."""
    if any(g.role == "lower" and g.bare_shins for g in found) and "lower" in named:
        _rule_out(named["lower"], LOWER_CATEGORIES.index("pants/jeans"))
    two_piece = any(g.role == "upper" and g.two_piece for g in found)
    if "upper" in named and (two_piece or _top(LOWER_CATEGORIES, named, "lower") in ("pants/jeans", "shorts")):
        _rule_out(named["upper"], UPPER_CATEGORIES.index("dress"))


def _rule_out(heads: dict, category: int) -> None:
    """A category the person cannot wear: its probability goes to the others, in proportion."""
    probs = heads["category"].clone()
    probs[category] = 0.0
    heads["category"] = probs / probs.sum().clamp(min=1e-9)


def _shows_inner(found: list[WholeGarment], named: dict) -> bool:
    """Whether the person's inner top is a garment of its own: the upper garment is an outer layer
    and keeps MIN_OUTER_SHARE of the upper-body pixels once the top's are taken out (else the parser
    saw mostly a top where the heads see a jacket: one garment)."""
    if _top(UPPER_CATEGORIES, named, "upper") not in OUTER_CATEGORIES:
        return False
    by_role = {g.role: g for g in found}
    upper, inner = by_role["upper"].pixels, by_role["inner"].pixels
    return bool((upper & ~inner).sum() >= MIN_OUTER_SHARE * upper.sum())


def _top(classes: tuple[str, ...], named: dict, role: str) -> str | None:
    return classes[int(named[role]["category"].argmax())] if role in named else None


def pixel_box(pixels: np.ndarray, x0: int = 0, y0: int = 0) -> list[float]:
    """x1, y1, x2, y2 (pixel edges) of a boolean map's pixels, the map's top-left at (x0, y0)."""
    ys, xs = np.nonzero(pixels)
    return [float(x0 + xs.min()), float(y0 + ys.min()), float(x0 + xs.max() + 1), float(y0 + ys.max() + 1)]


def _enlarged(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    dx, dy = BOX_MARGIN * (box.x2 - box.x1), BOX_MARGIN * (box.y2 - box.y1)
    return (max(0, int(np.floor(box.x1 - dx))), max(0, int(np.floor(box.y1 - dy))),
            min(width, int(np.ceil(box.x2 + dx))), min(height, int(np.ceil(box.y2 + dy))))


def _paste(region: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    full = np.zeros((height, width), dtype=bool)
    full[y0:y0 + region.shape[0], x0:x0 + region.shape[1]] = region
    return full
