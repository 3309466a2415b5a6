"""The input checks shared by what measures one garment from its pixels (colour names, pattern)."""

from __future__ import annotations

import numpy as np


class TooFewPixels(ValueError):
    """The garment mask is too small for the measurement asked of it."""


def garment_pixel_count(rgb: np.ndarray, mask: np.ndarray) -> int:
    """Refuse anything but an HxWx3 uint8 image with an HxW bool mask of its size; return the mask's
    pixel count (each measurement sets its own minimum)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be an HxWx3 uint8 array, got {_describe(rgb)}")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 2:
        # Not cast silently: an integer label map (class indices) is a likely mix-up, and != 0 would be wrong.
        raise ValueError(f"mask must be an HxW bool array, got {_describe(mask)}")
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image's {rgb.shape[:2]}")
    return int(mask.sum())


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"shape {value.shape} dtype {value.dtype}"
    return type(value).__name__
