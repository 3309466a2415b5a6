"""Overlays for frame images and thumbnails, in the shape of supervision's annotators: one class, one
`annotate(image, frame)`, composed by calling one after another. Each scales the labels' frame
coordinates to the image it draws on.

Boxes are in pixels of the sampled frame as the labels describe it (FrameLabels.width x height),
not of the original video and not of the stored JPEG, which is smaller.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw

from labels import Box, FrameLabels
from labels.masks import decode_mask


Colour = tuple[int, int, int]
PERSON_COLOUR: Colour = (255, 196, 0)
GARMENT_COLOURS: list[Colour] = [(0, 200, 255), (255, 64, 160), (64, 220, 96), (160, 96, 255), (255, 120, 32), (0, 160, 160)]


def frame_scale(image: Image.Image, frame: FrameLabels) -> tuple[float, float]:
    return image.width / max(frame.width, 1), image.height / max(frame.height, 1)


def window_around(box: Box, scale: tuple[float, float], size: tuple[int, int], aspect: float,
                  margin: float = 0.15) -> tuple[int, int, int, int]:
    """A crop (left, top, right, bottom) of an image of `size` around `box` (label pixels, scaled by
    `scale`), `aspect` wide:high where the image allows, the box plus `margin` of its height inside it.

    Result cards show a 16:10 thumbnail: on a wide video a plain shrink makes the person a sliver
    and a centre crop can cut them out, so the crop follows the person."""
    sx, sy = scale
    width, height = size
    x1, y1, x2, y2 = box.x1 * sx, box.y1 * sy, box.x2 * sx, box.y2 * sy
    h = min(height, max((y2 - y1) * (1 + 2 * margin), (x2 - x1) * (1 + 2 * margin) / aspect))
    w = min(width, h * aspect)
    h = min(h, w / aspect) if w < h * aspect else h
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = min(max(0.0, cx - w / 2), width - w)
    top = min(max(0.0, cy - h / 2), height - h)
    return round(left), round(top), round(left + w), round(top + h)


def draw_box(draw: ImageDraw.ImageDraw, box: Box, scale: tuple[float, float], colour: Colour, width: int) -> None:
    sx, sy = scale
    draw.rectangle([box.x1 * sx, box.y1 * sy, max(box.x1, box.x2 - 1) * sx, max(box.y1, box.y2 - 1) * sy],
                   outline=colour, width=width)


class Annotator(Protocol):
    def annotate(self, image: Image.Image, frame: FrameLabels) -> Image.Image: ...


class BoxAnnotator:
    """Persons thick, their garments thin in a colour each, the garment's category written at its corner."""

    def annotate(self, image: Image.Image, frame: FrameLabels) -> Image.Image:
        draw = ImageDraw.Draw(image)
        scale = frame_scale(image, frame)
        width = max(2, round(image.width / 240))
        for person in frame.persons:
            draw_box(draw, person.box, scale, PERSON_COLOUR, width)
            for g, garment in enumerate(person.garments):
                colour = GARMENT_COLOURS[g % len(GARMENT_COLOURS)]
                draw_box(draw, garment.box, scale, colour, max(1, width // 2))
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
