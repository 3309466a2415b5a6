"""Moments from hand-built frame labels: when frames merge, when they split, and what the summary says."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from indexer.moments import Moment, MomentPerson, build_moments, moment_id
from labels import Box, Face, FrameLabels, Garment, Label, Person

MEDIA = "vid"


def label(value: str, confidence: float = 0.9, model: str = "test") -> Label:
    return Label(value=value, confidence=confidence, model=model, model_version="1")


def garment(
    category: str, color: str | None = None, *, box: tuple[float, float, float, float] = (0, 0, 10, 10),
    confidence: float = 0.9, color_confidence: float = 0.8, secondary: str | None = None,
    pattern: str | None = None, sleeve: str | None = None, color_model: str = "test",
) -> Garment:
    return Garment(
        category=label(category, confidence), box=Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3]),
        color=label(color, color_confidence, color_model) if color else None,
        secondary_color=label(secondary, 0.5) if secondary else None,
        pattern=label(pattern, 0.7) if pattern else None,
        sleeve=label(sleeve, 0.7) if sleeve else None,
    )


def person(x: float, *garments: Garment, y: float = 100, w: float = 100, h: float = 300,
           confidence: float = 0.9, expression: str | None = None) -> Person:
    face = None
    if expression:
        face = Face(detection=label("face"), box=Box(x1=x + 30, y1=y, x2=x + 70, y2=y + 40),
                    expression=label(expression, 0.8))
    return Person(detection=label("person", confidence), box=Box(x1=x, y1=y, x2=x + w, y2=y + h),
                  garments=list(garments), face=face)


def frame(t: float, *persons: Person, reason: str = "rate", media: str = MEDIA) -> FrameLabels:
    return FrameLabels(frame_id=f"{media}-{round(t * 1000):09d}", media_id=media, timestamp=t, reason=reason,
                       width=1280, height=720, persons=list(persons))


def fid(t: float) -> str:
    return f"{MEDIA}-{round(t * 1000):09d}"


def red_dress(x: float = 500, color: str = "red", **kw) -> Person:
    return person(x, garment("dress", color, sleeve="short"), **kw)


def black_jacket(x: float = 500, **kw) -> Person:
    return person(x, garment("coat/jacket", "black", sleeve="long"), garment("pants/jeans", "blue"), **kw)


def colour_of(m: Moment, category: str) -> str | None:
    [g] = [g for g in m.persons[0].garments if g.category.value == category]
    return g.color.value if g.color else None


def test_one_person_walking_for_ten_seconds_is_one_moment_with_its_best_frame():
    frames = []
    for t in range(11):
        # Walks 40 px/s to the right; at 6 s the detector is surest and the person largest.
        sure = t == 6
        frames.append(frame(t, person(100 + 40 * t, garment("dress", "red", box=(0, 0, 5, 5 + t)),
                                      confidence=0.99 if sure else 0.8, h=320 if sure else 300, expression="happy")))
    [m] = build_moments(frames)
    assert (m.start, m.end) == (0.0, 10.0)
    assert (m.best_frame_id, m.best_timestamp) == (fid(6), 6.0)
    assert m.frame_ids == [fid(t) for t in range(11)]
    [p] = m.persons
    assert p.frame_ids == m.frame_ids and p.person_indices == [0] * 11 and p.track_index == 0
    assert p.box == frames[6].persons[0].box
    [dress] = p.garments
    assert dress.category.value == "dress" and dress.frames == 11
    assert dress.box == Box(x1=0, y1=0, x2=5, y2=11)  # the garment's box in the best frame
    assert dress.color.value == "red" and dress.color.confidence == pytest.approx(0.8)
    assert p.expression.value == "happy"
    assert p.detection.confidence == pytest.approx((0.8 * 10 + 0.99) / 11)


def test_a_person_walking_fast_with_one_missed_sample_still_links():
    # 80 px/s with a 100 x 300 box (diagonal 316 px); the person is missed at 3 s.
    frames = [frame(t, red_dress(100 + 80 * t)) if t != 3 else frame(t) for t in range(7)]
    [m] = build_moments(frames)
    assert len(m.frame_ids) == 6


def test_two_people_side_by_side_are_two_moments():
    frames = [frame(t, red_dress(300 + 5 * t), black_jacket(420 + 5 * t)) for t in range(5)]
    first, second = build_moments(frames)
    assert colour_of(first, "dress") == "red" and first.persons[0].person_indices == [0] * 5
    assert colour_of(second, "coat/jacket") == "black" and second.persons[0].person_indices == [1] * 5
    assert first.start == second.start == 0 and first.end == second.end == 4
    assert first.moment_id != second.moment_id


def test_two_people_in_the_same_outfit_side_by_side_stay_apart_and_in_order():
    # Uniforms: only position tells them apart; the list order of persons changes in between.
    frames = []
    for t in range(6):
        left, right = red_dress(300 + 10 * t), red_dress(420 - 10 * t)
        frames.append(frame(t, *((left, right) if t % 2 == 0 else (right, left))))
    first, second = build_moments(frames)
    assert len(first.frame_ids) == len(second.frame_ids) == 6
    assert (first.persons[0].box.x1, second.persons[0].box.x1) == (300, 420)  # earliest of equal frames
    assert first.persons[0].person_indices == [0, 1, 0, 1, 0, 1]
    assert second.persons[0].person_indices == [1, 0, 1, 0, 1, 0]


def test_outfit_change_at_the_same_place_splits():
    frames = [frame(t, black_jacket()) for t in range(5)] + [frame(t, red_dress()) for t in range(5, 10)]
    jacket, dress = build_moments(frames)
    assert (jacket.start, jacket.end, dress.start, dress.end) == (0, 4, 5, 9)
    assert [g.category.value for g in jacket.persons[0].garments] == ["coat/jacket", "pants/jeans"]
    assert colour_of(dress, "dress") == "red"


def test_same_garment_in_a_far_colour_splits_but_a_neighbouring_name_does_not():
    far = [frame(t, red_dress(color="black" if t >= 4 else "red")) for t in range(8)]
    assert [(m.start, m.end) for m in build_moments(far)] == [(0, 3), (4, 7)]
    # Red and orange are neighbours for the colour namer: a dress on that boundary is one garment.
    near = [frame(t, red_dress(color="orange" if t % 2 else "red")) for t in range(8)]
    assert len(build_moments(near)) == 1


def test_a_gap_longer_than_max_gap_splits():
    frames = [frame(t, red_dress()) for t in range(5)] + [frame(t, red_dress()) for t in range(10, 15)]
    first, second = build_moments(frames)
    assert (first.start, first.end, second.start, second.end) == (0, 4, 10, 14)
    assert len(build_moments(frames, max_gap=6.0)) == 1


def test_a_shot_change_splits_unless_told_not_to():
    frames = [frame(t, red_dress()) for t in range(5)]
    frames += [frame(4.5, red_dress(), reason="shot")] + [frame(t, red_dress()) for t in range(5, 9)]
    first, second = build_moments(frames)
    assert (first.end, second.start, second.end) == (4, 4.5, 8)
    assert second.frame_ids[0] == fid(4.5)
    [whole] = build_moments(frames, split_on_shot=False)
    assert (whole.start, whole.end, len(whole.frame_ids)) == (0, 8, 10)


def test_one_noisy_frame_neither_splits_nor_flips_the_colour():
    # At 5 s the colour namer misreads the dress as green, surer than ever: still one moment, red,
    # and the thumbnail is not the misread frame.
    frames = [frame(t, red_dress(color="green" if t == 5 else "red", confidence=0.99 if t == 5 else 0.9))
              for t in range(10)]
    [m] = build_moments(frames)
    assert (m.start, m.end, len(m.frame_ids)) == (0, 9, 10)
    assert colour_of(m, "dress") == "red"
    assert m.persons[0].garments[0].color.confidence == pytest.approx(0.8 * 9 / 10)
    assert m.best_frame_id != fid(5)
    # The fold is what keeps it whole: without it, the misread frame is a moment of its own.
    whole, misread = build_moments(frames, max_outlier_frames=0)
    assert len(whole.frame_ids) == 9 and misread.frame_ids == [fid(5)]


def test_a_one_frame_garment_misread_is_folded_and_left_out_of_the_summary():
    frames = [frame(t, black_jacket()) for t in range(10)]
    frames[4] = frame(4, person(500, garment("dress", "black")))  # jacket and jeans read as a dress once
    [m] = build_moments(frames)
    assert [g.category.value for g in m.persons[0].garments] == ["coat/jacket", "pants/jeans"]


def test_empty_frames_are_ignored():
    assert build_moments([]) == []
    assert build_moments([frame(t) for t in range(5)]) == []
    frames = [frame(0), frame(1, red_dress()), frame(2), frame(3, red_dress()), frame(4)]
    [m] = build_moments(frames)
    assert m.frame_ids == [fid(1), fid(3)] and (m.start, m.end) == (1, 3)


def test_refuses_unsorted_mixed_or_repeated_frames():
    with pytest.raises(ValueError, match="sorted by timestamp"):
        build_moments([frame(2, red_dress()), frame(1, red_dress())])
    with pytest.raises(ValueError, match="one media"):
        build_moments([frame(1, red_dress()), frame(2, red_dress(), media="other")])
    with pytest.raises(ValueError, match="twice"):
        build_moments([frame(1, red_dress()), frame(1, red_dress())])


def test_ids_are_stable_and_depend_only_on_where_the_moment_starts():
    frames = [frame(t, red_dress(300), black_jacket(700)) for t in range(4)] + [frame(9, red_dress())]
    first = build_moments(frames)
    again = build_moments([f.model_copy(deep=True) for f in frames])
    assert [m.model_dump() for m in first] == [m.model_dump() for m in again]
    assert len({m.moment_id for m in first}) == 3
    assert first[0].moment_id == moment_id(MEDIA, fid(0), 0) and first[1].moment_id == moment_id(MEDIA, fid(0), 1)
    # Frames added after a moment ends do not change its id.
    longer = build_moments(frames + [frame(t, red_dress()) for t in range(10, 13)])
    assert longer[0].moment_id == first[0].moment_id
    assert moment_id(MEDIA, fid(0), 0) != moment_id(MEDIA, fid(0), 1) != moment_id("other", fid(0), 1)


def test_summary_votes_aggregate_and_human_labels_win():
    frames = [frame(t, person(500, garment("t-shirt", "white", secondary="blue" if t < 3 else None,
                                           pattern="striped", sleeve="short"))) for t in range(8)]
    # A reviewer corrected one frame: that label decides, though every other frame says white.
    frames[4] = frame(4, person(500, garment("t-shirt", "yellow", color_model="human:ann", color_confidence=1.0)))
    [m] = build_moments(frames)
    [shirt] = m.persons[0].garments
    assert shirt.color.value == "yellow" and shirt.color.model == "human:ann" and shirt.color.confidence == 1.0
    assert shirt.secondary_color is None  # 3 of 8 frames had one: not the garment's summary
    assert shirt.pattern.value == "striped" and shirt.sleeve.value == "short"
    assert shirt.frames == 8 and shirt.pattern.confidence == pytest.approx(0.7)


def test_a_person_without_garment_labels_still_makes_a_moment():
    [m] = build_moments([frame(t, person(200, expression="neutral")) for t in range(3)])
    assert m.persons[0].garments == [] and m.persons[0].expression.value == "neutral"
    assert m.best_frame_id == fid(0)  # all equal: the earliest


def test_models_refuse_unknown_fields():
    [m] = build_moments([frame(0, red_dress())])
    with pytest.raises(ValidationError, match="extra"):
        Moment(**m.model_dump(), score=1.0)
    with pytest.raises(ValidationError, match="extra"):
        MomentPerson(**m.persons[0].model_dump(), name="x")
