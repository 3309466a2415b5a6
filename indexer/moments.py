"""Merge the sampled frames of one video into moments: one person, one outfit, a span of seconds.

Why: a video is sampled at 1 fps plus shot changes, so a person in a red dress on screen for ten
seconds is ten near-identical frames. Search should answer with that person once, as a moment
(start, end, best frame), and the moment's labels should be the person's outfit as the whole
span shows it, not whatever one blurred frame said.

A moment holds exactly one person track. Search then has one outfit to match per moment ("the red
dress" is one person's), and the result's box and thumbnail show that person. Two people on screen
together are two moments over the same seconds; frames with nobody make none.

Linking rule (online, frame by frame, in time order). A track is the sightings of one person so far.
Before a frame is looked at, tracks last seen more than `max_gap` seconds ago end, and with
`split_on_shot` a shot-change frame (FrameLabels.reason == "shot") ends them all: people rarely
continue across a cut, and a cut that lands exactly on a fixed-rate sample is left to the two tests
below. A track and a person of the frame may link when
  1. position: the box centre moved at most `max_shift` box diagonals (the mean of the two boxes')
     per second of gap, counting at least one second, so that a person walking across the picture
     at 1 fps still links; and
  2. outfit: the two share a clothing region (upper, outer, full, lower) and no shared region's
     colour clashes with the colours the track has shown there (confidence-weighted votes; a
     colour agrees when it is the same as, or a namer's neighbour of, one with at least
     `min_color_share` of the votes, or matches as primary/secondary the other way round). Shoes
     and accessories do not count: they come into view and go, and their colours are noisy. A side
     with no clothing labels is no evidence either way.
Among the allowed pairs, the best (box overlap or closeness, plus the share of clothing regions
both have) link first, greedily, each track and person once; deterministic ties. A person left
over starts a new track. Finally a track of at most `max_outlier_frames` frames that sits where
another track was out of sight, with that track seen just before and just after at positions that
link, is folded into it: that is one noisy frame (a colour or garment misread, which refused the
outfit test) rather than a different person, and votes then outweigh it.

Summaries are confidence-weighted votes over the track, so one noisy frame neither splits a moment
nor flips its colour; a human label (model "human:<reviewer>") outvotes model labels.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from indexer.review import ReviewStatus, review_status
from labels import Alternative, Box, Embedding, FrameLabels, Garment, Label, Person, RuleSet
from labels.vocabulary import GARMENT_CATEGORIES

# Regions whose garments identify an outfit; shoes and accessories come and go (see docstring).
_CLOTHING_REGIONS = frozenset({"upper", "outer", "full", "lower"})

# Colour names the colour namer (vision/colors.py) can flip between on one garment from frame to
# frame: neighbouring hue sectors, and its lightness / chroma splits (black-gray-white, brown and
# beige off the warm hues, pink off red, navy into black). A flip between neighbours is noise to
# tolerate; a change between far colours (black to red) is another garment.
_NEIGHBOUR_PAIRS = (
    ("red", "orange"), ("orange", "yellow"), ("yellow", "green"), ("green", "cyan"), ("cyan", "blue"),
    ("blue", "purple"), ("purple", "red"), ("pink", "red"), ("pink", "purple"),
    ("black", "gray"), ("gray", "white"), ("blue", "black"), ("blue", "gray"),
    ("brown", "orange"), ("brown", "yellow"), ("brown", "red"), ("brown", "black"),
    ("beige", "orange"), ("beige", "yellow"), ("beige", "white"), ("beige", "gray"), ("beige", "brown"),
)
COLOR_NEIGHBOURS: dict[str, frozenset[str]] = {
    name: frozenset(b if a == name else a for a, b in _NEIGHBOUR_PAIRS if name in (a, b))
    for name in {n for pair in _NEIGHBOUR_PAIRS for n in pair}
}

_HUMAN_PREFIX = "human:"
_CATEGORY_ORDER = {name: i for i, name in enumerate(GARMENT_CATEGORIES)}


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MomentGarment(_Record):
    """One garment category of a track, summarised over the frames it was seen in.

    Each label is the vote winner; its confidence is the winner's summed confidence over the frames
    that had that label (frames voting otherwise count as 0), and its model is that of the winner's
    most confident sighting.
    """

    category: Label
    frames: int = Field(ge=1, description="how many of the track's frames showed this garment")
    box: Box | None = Field(None, description="the garment's box in the best frame; None when not seen there")
    color: Label | None = None
    secondary_color: Label | None = None
    pattern: Label | None = None
    sleeve: Label | None = None
    embedding: Embedding | None = Field(None, description="the mean of its sightings' embeddings (similar search)")


class MomentPerson(_Record):
    """One person track: where the person is in the best frame, and the outfit over the whole track."""

    track_index: int = Field(ge=0, description="the person's index in FrameLabels.persons of the track's first frame")
    detection: Label = Field(description="person detection, mean confidence over the track")
    box: Box = Field(description="the person's box in the best frame")
    frame_ids: list[str] = Field(min_length=1)
    person_indices: list[int] = Field(description="the person's index in each frame of frame_ids (back to the labels)")
    garments: list[MomentGarment] = []
    expression: Label | None = None
    frame_share: float | None = Field(
        None, ge=0.0, le=1.0,
        description="the share of the best frame the person's box covers (search prefers the salient person); "
                    "None in moments built before it was recorded")

    @model_validator(mode="after")
    def _check(self) -> MomentPerson:
        if len(self.person_indices) != len(self.frame_ids):
            raise ValueError("person_indices must have one entry per frame id")
        return self


class Moment(_Record):
    """A span of one video showing one person in one outfit: what search returns."""

    moment_id: str = Field(description="stable: a hash of media id, first frame id and track index")
    media_id: str
    start: float = Field(ge=0.0, description="seconds: timestamp of the first frame showing the person")
    end: float = Field(ge=0.0, description="seconds: timestamp of the last frame showing the person")
    best_frame_id: str
    best_timestamp: float = Field(ge=0.0)
    frame_ids: list[str] = Field(min_length=1, description="the frames the person is seen in, in time order")
    persons: list[MomentPerson] = Field(min_length=1)
    review_status: str = Field("unreviewed", description="reviewed: every frame reviewed; partial: some; unreviewed: none")

    @model_validator(mode="after")
    def _check(self) -> Moment:
        if not self.start <= self.best_timestamp <= self.end:
            raise ValueError("best_timestamp must lie within [start, end]")
        if self.best_frame_id not in self.frame_ids:
            raise ValueError("best_frame_id must be one of frame_ids")
        return self


def moment_id(media_id: str, start_frame_id: str, track_index: int) -> str:
    """Stable id: re-indexing the same labels overwrites the same moment documents."""
    key = "\x1f".join((media_id, start_frame_id, str(track_index)))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class _Sighting:
    frame_index: int  # position in the frames given to build_moments
    frame: FrameLabels
    person_index: int

    @property
    def person(self) -> Person:
        return self.frame.persons[self.person_index]


@dataclass
class _Track:
    order: int  # creation order, for deterministic ties
    sightings: list[_Sighting]
    # Confidence-weighted colour votes per clothing region, for the outfit test while linking.
    primary: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    secondary: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    regions: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, order: int, sighting: _Sighting) -> _Track:
        track = cls(order, [])
        track.add(sighting)
        return track

    def add(self, sighting: _Sighting) -> None:
        self.sightings.append(sighting)
        for region, garment in _clothing(sighting.person):
            self.regions.add(region)
            if garment.color is not None:
                self.primary[region][garment.color.value] += garment.color.confidence
            if garment.secondary_color is not None:
                self.secondary[region][garment.secondary_color.value] += garment.secondary_color.confidence

    @property
    def last(self) -> _Sighting:
        return self.sightings[-1]


def build_moments(
    frames: list[FrameLabels],
    max_gap: float = 2.5,
    *,
    split_on_shot: bool = True,
    max_shift: float = 1.0,
    min_color_share: float = 0.25,
    max_outlier_frames: int = 1,
    min_garment_share: float = 0.2,
) -> list[Moment]:
    """The moments of one media's frames, sorted by start then track index.

    frames: the sampled frames of one media, in time order (refused otherwise); frames with nobody
        are allowed and make no moment.
    max_gap: seconds a track may go unseen and still continue; 2.5 lets one missed 1 fps sample
        pass (scale it with the sampling rate).
    split_on_shot: end every track at a shot-change frame.
    max_shift: how far a box centre may move per second of gap, in box diagonals.
    min_color_share: share of a region's colour votes a colour needs to count as the track's.
    max_outlier_frames: tracks this short that interrupt another track are folded into it (0: never).
    min_garment_share: a garment seen in fewer than this share of the track's frames is left out
        of the summary as a detector flicker.
    """
    _check_frames(frames)
    if max_gap < 0 or max_shift <= 0 or max_outlier_frames < 0:
        raise ValueError("max_gap must be >= 0, max_shift > 0, max_outlier_frames >= 0")
    if not (0 <= min_color_share <= 1 and 0 <= min_garment_share <= 1):
        raise ValueError("min_color_share and min_garment_share are shares in [0, 1]")

    finished: list[_Track] = []
    active: list[_Track] = []
    order = 0
    for index, frame in enumerate(frames):
        still: list[_Track] = []
        for track in active:
            ended = frame.timestamp - track.last.frame.timestamp > max_gap or (split_on_shot and frame.reason == "shot")
            (finished if ended else still).append(track)
        active = still

        pairs: list[tuple[float, int, int, int]] = []
        for t, track in enumerate(active):
            for p, person in enumerate(frame.persons):
                score = _link_score(track, frame.timestamp, person, max_shift, min_color_share)
                if score is not None:
                    pairs.append((-score, track.order, p, t))
        pairs.sort()
        taken_tracks: set[int] = set()
        taken_persons: set[int] = set()
        for _, _, p, t in pairs:
            if t in taken_tracks or p in taken_persons:
                continue
            taken_tracks.add(t)
            taken_persons.add(p)
            active[t].add(_Sighting(index, frame, p))
        for p in range(len(frame.persons)):
            if p not in taken_persons:
                active.append(_Track.start(order, _Sighting(index, frame, p)))
                order += 1
    finished.extend(active)
    finished.sort(key=lambda track: track.order)

    tracks = _fold_outliers(finished, max_outlier_frames, max_shift)
    moments = [_moment(track, min_garment_share) for track in tracks]
    moments.sort(key=lambda m: (m.start, m.persons[0].track_index))
    return moments


def _check_frames(frames: list[FrameLabels]) -> None:
    if not frames:
        return
    media = {frame.media_id for frame in frames}
    if len(media) > 1:
        raise ValueError(f"frames of one media expected, got {len(media)}: {', '.join(sorted(media))}")
    seen: set[str] = set()
    for previous, frame in zip([None, *frames], frames):
        if previous is not None and frame.timestamp < previous.timestamp:
            raise ValueError(
                f"frames must be sorted by timestamp: {frame.frame_id} at {frame.timestamp} s "
                f"follows {previous.frame_id} at {previous.timestamp} s"
            )
        if frame.frame_id in seen:
            raise ValueError(f"frame {frame.frame_id} appears twice")
        seen.add(frame.frame_id)


# --- linking ---------------------------------------------------------------------------------------


def _clothing(person: Person) -> Iterable[tuple[str, Garment]]:
    for garment in person.garments:
        region = GARMENT_CATEGORIES.get(garment.category.value)
        if region in _CLOTHING_REGIONS:
            yield region, garment


def _centre_shift(a: Box, b: Box) -> float:
    """Distance between box centres in box diagonals (the mean of both), so it holds at any zoom."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = ax - bx, ay - by
    diagonal = (math.hypot(a.x2 - a.x1, a.y2 - a.y1) + math.hypot(b.x2 - b.x1, b.y2 - b.y1)) / 2
    return math.hypot(dx, dy) / max(diagonal, 1.0)


def _geometry(previous: Box, box: Box, dt: float, max_shift: float) -> float | None:
    """Closeness in [0, 1] when `box` may be where `previous` went in `dt` seconds, else None."""
    allowed = max_shift * max(dt, 1.0)
    shift = _centre_shift(previous, box)
    if shift > allowed:
        return None
    return max(previous.iou(box), 1.0 - shift / allowed)


def _compatible(a: str, b: str) -> bool:
    return a == b or b in COLOR_NEIGHBOURS.get(a, ())


def _accepted(votes: dict[str, float], min_share: float) -> set[str]:
    total = sum(votes.values())
    return {colour for colour, weight in votes.items() if total > 0 and weight / total >= min_share}


def _outfit_agreement(track: _Track, person: Person, min_color_share: float) -> float | None:
    """Share of clothing regions both show (0 when a shared region's colour clashes); None: no evidence."""
    mine: dict[str, list[Garment]] = defaultdict(list)
    for region, garment in _clothing(person):
        mine[region].append(garment)
    if not mine or not track.regions:
        return None
    shared = mine.keys() & track.regions
    if not shared:
        return 0.0
    for region in shared:
        primaries = _accepted(track.primary[region], min_color_share)
        secondaries = _accepted(track.secondary[region], min_color_share)
        if not primaries:
            continue  # the track never had a colour here: nothing to clash with
        # A region agrees when any of its garments does (a shirt under a sweater is still there).
        if not any(_colour_agrees(garment, primaries, secondaries) for garment in mine[region]):
            return 0.0
    return len(shared) / len(mine.keys() | track.regions)


def _colour_agrees(garment: Garment, primaries: set[str], secondaries: set[str]) -> bool:
    if garment.color is None:
        return True
    colour = garment.color.value
    if any(_compatible(colour, known) for known in primaries):
        return True
    # Two-colour cloth (stripes, a print) can swap which colour dominates from frame to frame.
    if colour in secondaries:
        return True
    return garment.secondary_color is not None and garment.secondary_color.value in primaries


def _link_score(
    track: _Track, timestamp: float, person: Person, max_shift: float, min_color_share: float
) -> float | None:
    closeness = _geometry(track.last.person.box, person.box, timestamp - track.last.frame.timestamp, max_shift)
    if closeness is None:
        return None
    outfit = _outfit_agreement(track, person, min_color_share)
    if outfit == 0.0:
        return None
    return closeness + (0.5 if outfit is None else outfit)


def _fold_outliers(tracks: list[_Track], max_frames: int, max_shift: float) -> list[_Track]:
    """Fold short tracks that interrupt another track at its position back into it (see docstring)."""
    if max_frames == 0:
        return tracks
    # Which tracks span each frame (seen before and after it): the only possible hosts there.
    spanning: dict[int, list[_Track]] = defaultdict(list)
    for track in tracks:
        if len(track.sightings) > 1:
            for index in range(track.sightings[0].frame_index + 1, track.sightings[-1].frame_index):
                spanning[index].append(track)
    folded: set[int] = set()
    for short in tracks:
        if len(short.sightings) > max_frames:
            continue
        first, last = short.sightings[0], short.sightings[-1]
        best: tuple[float, int, _Track] | None = None
        for host in spanning.get(first.frame_index, ()):
            if host is short or host.order in folded or len(host.sightings) <= len(short.sightings):
                continue
            indices = [s.frame_index for s in host.sightings]
            cut = bisect.bisect_left(indices, first.frame_index)
            if cut == len(indices) or indices[cut] <= last.frame_index:
                continue  # host was seen during the interruption (another person), or ends inside it
            before, after = host.sightings[cut - 1], host.sightings[cut]
            into = _geometry(before.person.box, first.person.box, first.frame.timestamp - before.frame.timestamp,
                             max_shift)
            out = _geometry(last.person.box, after.person.box, after.frame.timestamp - last.frame.timestamp, max_shift)
            if into is None or out is None:
                continue
            candidate = (-(into + out), host.order, host)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
        if best is not None:
            host = best[2]
            for sighting in short.sightings:
                host.add(sighting)
            host.sightings.sort(key=lambda s: s.frame_index)
            folded.add(short.order)
    return [track for track in tracks if track.order not in folded]


# --- summaries -------------------------------------------------------------------------------------


# How many values a summarised label keeps as alternatives (the stages keep three per frame; over a
# track a few more can add up).
MOMENT_ALTERNATIVES = 5


def label_distribution(label: Label) -> dict[str, float]:
    """What one label says each value's probability is: its alternatives, and its own value at no less
    than its confidence (a label without alternatives, a human's say, is its value alone)."""
    distribution = {alt.value: alt.probability for alt in label.alternatives}
    distribution[label.value] = max(distribution.get(label.value, 0.0), label.confidence)
    return distribution


def _mean_alternatives(labels: list[Label]) -> list[Alternative]:
    """The track's alternatives: each value's probability averaged over the frames (a frame that did not
    consider a value gives it 0), best first, ties by name."""
    sums: dict[str, float] = defaultdict(float)
    for label in labels:
        for value, probability in label_distribution(label).items():
            sums[value] += probability
    ranked = sorted(sums.items(), key=lambda item: (-item[1], item[0]))[:MOMENT_ALTERNATIVES]
    # model_construct: the values are the labels' own and the means lie in [0, 1]; validating each of the
    # thousands a video makes cost more than building its moments
    return [Alternative.model_construct(value=v, probability=min(1.0, total / len(labels))) for v, total in ranked]


def _vote(labels: list[Label]) -> Label | None:
    """Confidence-weighted vote; human labels, when there are any, are the only voters (and then the
    value is certain: no alternatives)."""
    if not labels:
        return None
    human = [label for label in labels if label.model.startswith(_HUMAN_PREFIX)]
    voters = human or labels
    weights: dict[str, float] = defaultdict(float)
    for label in voters:
        weights[label.value] += label.confidence
    value = min(weights, key=lambda v: (-weights[v], v))
    winners = [label for label in voters if label.value == value]
    top = max(winners, key=lambda label: label.confidence)  # first of equals: stable
    confidence = top.confidence if human else weights[value] / len(voters)
    return Label(value=value, confidence=min(1.0, confidence), model=top.model, model_version=top.model_version,
                 alternatives=[] if human else _mean_alternatives(voters))


def _mean_label(labels: list[Label], with_alternatives: bool = True) -> Label:
    top = max(labels, key=lambda label: label.confidence)
    mean = sum(label.confidence for label in labels) / len(labels)
    human = any(label.model.startswith(_HUMAN_PREFIX) for label in labels)
    keep = with_alternatives and not human
    return Label(value=top.value, confidence=mean, model=top.model, model_version=top.model_version,
                 alternatives=_mean_alternatives(labels) if keep else [])


def _garment_by_category(person: Person) -> dict[str, Garment]:
    """The most confident garment of each category (two bags summarise as one)."""
    chosen: dict[str, Garment] = {}
    for garment in person.garments:
        current = chosen.get(garment.category.value)
        if current is None or garment.category.confidence > current.category.confidence:
            chosen[garment.category.value] = garment
    return chosen


def _summarise_garment(garments: list[Garment]) -> MomentGarment:
    colours = [g.color for g in garments if g.color is not None]
    secondaries = [g.secondary_color for g in garments if g.secondary_color is not None]
    # No secondary is a statement too ("one colour"): claim one only if most coloured frames had it.
    secondary = _vote(secondaries) if colours and 2 * len(secondaries) >= len(colours) else None
    return MomentGarment(
        category=_mean_label([g.category for g in garments]),
        frames=len(garments),
        color=_vote(colours),
        secondary_color=secondary,
        pattern=_vote([g.pattern for g in garments if g.pattern is not None]),
        sleeve=_vote([g.sleeve for g in garments if g.sleeve is not None]),
        embedding=_mean_embedding([g.embedding for g in garments if g.embedding is not None]),
    )


def _mean_embedding(embeddings: list[Embedding]) -> Embedding | None:
    """The direction of the sightings' mean (of the space most of them are in: a re-ingest half done
    never averages two models' vectors)."""
    if not embeddings:
        return None
    spaces = Counter((e.model, e.model_version, e.dim) for e in embeddings)
    space = min(spaces, key=lambda key: (-spaces[key], key))
    members = [e for e in embeddings if (e.model, e.model_version, e.dim) == space]
    if len(members) == 1:
        return members[0]
    mean = np.mean([e.unit() for e in members], axis=0)
    if not np.any(mean):
        return members[0]
    return Embedding.made_by(RuleSet(space[0], space[1]), mean)


def _quality(sighting: _Sighting, summary: list[MomentGarment], largest_area: float) -> float:
    """How well a frame shows the person as summarised: the rule for the best frame.

    person confidence x sqrt(box area / the track's largest) x (0.5 + 0.5 x evidence), where evidence
    is the mean over summarised garments of that garment's category confidence in this frame when it
    is there in the summarised colour (else 0; 1 with no garments). So the thumbnail is a large, sure
    view that shows the outfit the labels claim, not the one frame whose colour was misread.
    """
    person = sighting.person
    size = math.sqrt(person.box.area / largest_area) if largest_area > 0 else 1.0
    evidence = 1.0
    if summary:
        present = _garment_by_category(person)
        total = 0.0
        for item in summary:
            garment = present.get(item.category.value)
            if garment is None:
                continue
            if item.color is not None and (garment.color is None or garment.color.value != item.color.value):
                continue
            total += garment.category.confidence
        evidence = total / len(summary)
    return person.detection.confidence * size * (0.5 + 0.5 * evidence)


def _review_status(frames: list[FrameLabels]) -> str:
    statuses = {review_status(frame) for frame in frames}
    if statuses == {ReviewStatus.REVIEWED}:
        return ReviewStatus.REVIEWED.value
    return ReviewStatus.UNREVIEWED.value if statuses == {ReviewStatus.UNREVIEWED} else ReviewStatus.PARTIAL.value


def _moment(track: _Track, min_garment_share: float) -> Moment:
    sightings = track.sightings
    per_category: dict[str, list[Garment]] = defaultdict(list)
    for sighting in sightings:
        for category, garment in _garment_by_category(sighting.person).items():
            per_category[category].append(garment)
    summary = [
        _summarise_garment(garments)
        for garments in per_category.values()
        if len(garments) / len(sightings) >= min_garment_share
    ]
    summary.sort(key=lambda g: (_CATEGORY_ORDER.get(g.category.value, len(_CATEGORY_ORDER)), g.category.value))

    largest = max(s.person.box.area for s in sightings)
    qualities = [_quality(s, summary, largest) for s in sightings]
    best = sightings[max(range(len(sightings)), key=lambda i: (qualities[i], -i))]  # earliest of equals

    at_best = _garment_by_category(best.person)
    summary = [
        g.model_copy(update={"box": at_best[g.category.value].box if g.category.value in at_best else None})
        for g in summary
    ]
    faces = [s.person.face for s in sightings if s.person.face is not None]
    first = sightings[0]
    frame_ids = [s.frame.frame_id for s in sightings]
    person = MomentPerson(
        track_index=first.person_index,
        detection=_mean_label([s.person.detection for s in sightings], with_alternatives=False),
        box=best.person.box,
        frame_ids=frame_ids,
        person_indices=[s.person_index for s in sightings],
        garments=summary,
        expression=_vote([face.expression for face in faces if face.expression is not None]),
        frame_share=min(1.0, best.person.box.area / max(best.frame.width * best.frame.height, 1)),
    )
    return Moment(
        moment_id=moment_id(first.frame.media_id, first.frame.frame_id, first.person_index),
        media_id=first.frame.media_id,
        start=first.frame.timestamp,
        end=sightings[-1].frame.timestamp,
        best_frame_id=best.frame.frame_id,
        best_timestamp=best.frame.timestamp,
        review_status=_review_status([s.frame for s in sightings]),
        frame_ids=frame_ids,
        persons=[person],
    )
