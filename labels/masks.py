"""Binary masks <-> the label model's run-length form (COCO's uncompressed RLE: column-major runs,
starting with a run of zeros), so masks travel in JSON, the index and COCO exports unchanged."""

from __future__ import annotations

import numpy as np

from labels import Mask


def encode_mask(mask: np.ndarray) -> Mask:
    if mask.ndim != 2:
        raise ValueError(f"a mask is 2-D, got shape {mask.shape}")
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    # positions where the value changes, plus both ends, give the run lengths
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return Mask(height=int(mask.shape[0]), width=int(mask.shape[1]), counts=[int(r) for r in runs])


def decode_mask(mask: Mask) -> np.ndarray:
    total = sum(mask.counts)
    if total != mask.height * mask.width:
        raise ValueError(f"mask runs cover {total} pixels, expected {mask.height}x{mask.width}")
    values = np.zeros(len(mask.counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, mask.counts)
    return flat.reshape((mask.height, mask.width), order="F")
