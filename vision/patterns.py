"""Garment pattern from the garment's own pixels: solid, striped, plaid, floral, spotted or graphics.

    result = classify_pattern(rgb, mask)  # HxWx3 uint8, HxW bool -> PatternResult(label, confidence, scores)

No pattern-labelled photos may be trained on and no pretrained texture network can be fetched, so
the classifier is small and the knowledge is in its features: 55 texture measurements, each chosen
because it separates patterns that people name. They are computed on the mask's bounding box scaled
so that the mask covers `NORMALISED_AREA` pixels (a print's scale is relative to the garment, and
the cost stays fixed: about 10 ms on one CPU core), inside the mask eroded by `EROSION_PX` (leakage
and the garment's outline stay out). All of it works on log luminance, where the shading of folds
and light is a slow additive term that band-pass filtering removes; blurs are normalised
convolutions inside the eroded mask, so neither its border nor what lies beyond makes an edge.

- band energies at four scales, luminance and chroma, and the pixel noise: solid garments have
  little energy above the scale of folds, and noise on a dark garment is not a print;
- where the energy lies, and how much 3x3 cells of the garment differ: all-over prints are alike
  everywhere, a graphic is a compact textured region on an otherwise plain garment;
- gradient orientations: a 12-bin histogram rotated so its peak comes first, and the coherence of
  doubled and quadrupled angles over the garment and in neighbourhoods; stripes have one dominant
  orientation, plaid two orthogonal ones, and a garment's panels and folds turn them locally;
- periodicity: the two strongest peaks of the 2-D power spectrum, their share of the energy, their
  contrast to their frequency ring and the angle between them;
- blobs: the Hessian's isotropy where curvature is strong, and the density and evenness of the
  local extremes of band-pass images (above three times the noise); spots are many similar blobs;
- colours: how many coarse colour bins hold a real share of the garment, and their entropy.

The classifier (`weights/pattern-classifier.json`: standardisation, one hidden layer of 32 ReLUs,
softmax over `PATTERNS`, plus a +1 prior logit for solid because most garments are plain) was
fitted only on synthetic garments that `vision/training/train_pattern_classifier.py` renders
deterministically (its docstring has the recipe): stripes, checks, dots, flowers and printed
graphics/text, drawn in fabric coordinates cut into panels and bent like drape, multiplied by the
luminance of real plain CCP garments (a list checked by eye; they are also the solid class),
degraded (scale, blur, noise, JPEG) and cut with leaky masks. On CCP garments labelled by eye and
never fitted on (true masks) it gets 35/36 plain and 15/30 printed garments right (76%); on the
Clothing Attribute photos (bench/pattern_attributes_eval.py, which only measures) with a crude
torso box instead of a garment mask: accuracy 0.63 against 0.59 for always "solid", macro-F1 0.43
against 0.12. Known weaknesses: florals and graphics are often confused with each other and with
spots (real prints are richer than the synthetic ones); small square-grid dots and fine checks seen
at 45 degrees are confused; graphics that fill the whole mask look like all-over prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vision.garment_pixels import TooFewPixels, garment_pixel_count
from labels.vocabulary import PATTERNS

WEIGHTS = Path(__file__).resolve().parent / "weights" / "pattern-classifier.json"
MODEL_NAME = "vestis-pattern-texture"

# Below about 32x32 pixels a print is a handful of pixels wide: stripes and dots alias into noise.
MIN_MASK_PIXELS = 1024
# The mask is scaled to cover this many pixels (about 112x112): enough to resolve a pattern of 30
# repeats across the garment, small enough for ~10 ms on one CPU core.
NORMALISED_AREA = 112 * 112
# Segmentation masks leak a pixel or two over the garment's border; erosion drops that ring (and
# the garment's own outline, which is an edge but no pattern).
EROSION_PX = 2
_PAD = 16  # zero border: what a sigma-8 blur wraps around the FFT canvas is 4 sigma away
_EPS = 1e-6


@dataclass(frozen=True)
class PatternResult:
    label: str
    confidence: float
    scores: dict[str, float]


FEATURE_NAMES: tuple[str, ...] = (
    *(f"band_energy_{s}" for s in ("0-1", "1-2", "2-4", "4-8")),
    "chroma_band_energy", "chroma_std", "luminance_std", "noise_level",
    "textured_share_05", "textured_share_10", "textured_share_20",
    "energy_top20_share", "energy_spread", "energy_centroid_offset",
    *(f"orientation_bin_{k}" for k in range(12)),
    *(f"{m}_{b}" for b in ("fine", "coarse") for m in ("coherence2", "coherence4", "local_coherence", "local_coherence4")),
    "fft_peak1_share", "fft_peak2_share", "fft_peak_angle_sin", "fft_entropy", "fft_log_period",
    "fft_peak1_ring_contrast", "fft_peak2_ring_contrast",
    "blobness_1", "blobness_2", "blobness_4",
    "extrema_density_2", "extrema_evenness_2", "extrema_density_4", "extrema_evenness_4",
    "colour_bins", "colour_entropy", "colour_top1", "colour_top2",
    "cell_luminance_spread", "cell_energy_spread", "cell_colour_distance",
)


def classify_pattern(rgb: np.ndarray, mask: np.ndarray) -> PatternResult:
    """The pattern of the garment whose pixels `mask` marks in `rgb` (HxWx3 uint8, HxW bool)."""
    features = pattern_features(rgb, mask)
    scores = _classifier().probabilities(features)
    best = int(np.argmax(scores))
    return PatternResult(
        label=PATTERNS[best],
        confidence=float(scores[best]),
        scores={name: float(p) for name, p in zip(PATTERNS, scores)},
    )


def pattern_features(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The texture measurements (FEATURE_NAMES order, float64) of the masked garment."""
    pixels = garment_pixel_count(rgb, mask)
    if pixels < MIN_MASK_PIXELS:
        raise TooFewPixels(f"the garment mask has {pixels} pixels; a pattern needs at least {MIN_MASK_PIXELS}")
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    image, inner = _normalised_crop(rgb[box], mask[box])
    grid = _Grid(inner)
    rgbf = image.astype(np.float32) / 255.0
    logl = _log_luminance(rgbf)
    # Pixel noise as it appears in the scaled crop: measured there when the garment was scaled down
    # (which averaged it), but before scaling up, which would smear each noisy pixel into a blob.
    if len(ys) < NORMALISED_AREA:
        noise = _noise_sigma(_log_luminance(rgb[box].astype(np.float32) / 255.0), mask[box])
    else:
        noise = _noise_sigma(logl, inner)
    g = dict(zip((1, 2, 4, 8), grid.blurs(logl, 1, 2, 4, 8)))
    bands = [logl - g[1], g[1] - g[2], g[2] - g[4], g[4] - g[8]]

    opponent = (rgbf[..., 0] - rgbf[..., 1], 0.5 * (rgbf[..., 0] + rgbf[..., 1]) - rgbf[..., 2])
    chroma_band = sum(grid.mean((c - grid.blur(c, 4)) ** 2) for c in opponent)
    chroma_var = sum(grid.mean((c - grid.mean(c)) ** 2) for c in opponent)
    head = [np.log(np.sqrt(grid.mean(b**2)) + 1e-3) for b in bands]
    head += [np.log(np.sqrt(chroma_band) + 1e-3), np.sqrt(chroma_var), np.sqrt(grid.mean((logl - grid.mean(logl)) ** 2))]
    head.append(float(np.log(noise + 1e-3)))
    smooth_rgb = np.stack([grid.blur(rgbf[..., c], 1) for c in range(3)], axis=-1)

    return np.array(
        head
        + _energy_layout(grid, bands[1] ** 2 + bands[2] ** 2)
        + _orientation_histogram(grid, g[1] - g[8])
        + _coherence(grid, logl - g[2])
        + _coherence(grid, g[2] - g[8])
        + _periodicity(grid, g[1] - g[8])
        + [_blobness(grid, g[s]) for s in (1, 2, 4)]
        + _extrema(grid, bands[1], 2, noise)
        + _extrema(grid, bands[2], 4, noise)
        + _colours(grid, smooth_rgb)
        + _cell_differences(grid, logl, bands[1] ** 2 + bands[2] ** 2, smooth_rgb),
        dtype=np.float64,
    )


def _log_luminance(rgbf: np.ndarray) -> np.ndarray:
    lum = rgbf @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # The offset is a dark floor: below it, differences (sensor noise, mostly) count for less.
    return np.log(lum + 0.08)


def _normalised_crop(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The crop scaled so the mask covers NORMALISED_AREA pixels, and the eroded mask there."""
    scale = np.sqrt(NORMALISED_AREA / mask.sum())
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    image = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    soft = Image.fromarray(mask.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    resized = np.asarray(soft) > 0.5
    inner = _erode(resized, EROSION_PX)
    # A thin garment (a strap, a sleeve seen edge-on) would vanish: keep its unshrunk mask.
    if inner.sum() < 0.3 * resized.sum():
        inner = resized
    return image, inner


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """The mask eroded `steps` times by the 3 x 3 cross; nothing beyond the crop is garment."""
    if steps == 0:
        return mask
    eroded = cv2.erode(mask.astype(np.uint8), _CROSS, iterations=steps, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return eroded.astype(bool)


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


class _Grid:
    """Normalised Gaussian blurs and masked means on one crop, via FFT on a zero-padded canvas.

    Single precision: the features need three digits, and float32 FFTs take half the time.
    """

    def __init__(self, inner: np.ndarray):
        self.inner = inner
        self.count = max(int(inner.sum()), 1)
        h, w = inner.shape
        self.shape = (h, w)
        self.canvas = (_fft_size(h + 2 * _PAD), _fft_size(w + 2 * _PAD))
        fy = np.fft.fftfreq(self.canvas[0])[:, None]
        fx = np.fft.rfftfreq(self.canvas[1])[None, :]
        self.freq2 = (fx**2 + fy**2).astype(np.float32)
        self.weight = inner.astype(np.float32)
        self._weight_fft = self.fft(self.weight)
        self._coverage: dict[float, np.ndarray] = {}

    def fft(self, values: np.ndarray) -> np.ndarray:
        canvas = np.zeros(self.canvas, dtype=np.float32)
        canvas[_PAD : _PAD + self.shape[0], _PAD : _PAD + self.shape[1]] = values
        return np.fft.rfft2(canvas)

    def _lowpass(self, spectrum: np.ndarray, sigma: float) -> np.ndarray:
        out = np.fft.irfft2(spectrum * np.exp(-2 * np.pi**2 * sigma**2 * self.freq2), s=self.canvas)
        return out[_PAD : _PAD + self.shape[0], _PAD : _PAD + self.shape[1]]

    def coverage(self, sigma: float) -> np.ndarray:
        """The Gaussian-weighted share of each pixel's neighbourhood that lies inside the mask."""
        if sigma not in self._coverage:
            self._coverage[sigma] = np.maximum(self._lowpass(self._weight_fft, sigma), _EPS)
        return self._coverage[sigma]

    def blurs(self, values: np.ndarray, *sigmas: float) -> list[np.ndarray]:
        """Gaussian blurs of `values` using only the pixels inside the mask, one per sigma."""
        spectrum = self.fft(values * self.weight)
        return [self._lowpass(spectrum, s) / self.coverage(s) for s in sigmas]

    def blur(self, values: np.ndarray, sigma: float) -> np.ndarray:
        return self.blurs(values, sigma)[0]

    def mean(self, values: np.ndarray) -> float:
        return float(values[self.inner].mean())

    def values(self, values: np.ndarray) -> np.ndarray:
        return values[self.inner]


def _fft_size(n: int) -> int:
    """The smallest 2^a * 3^b * 5^c >= n: pocketfft is quick on those."""
    best = 1 << (n - 1).bit_length()
    for a in (1, 3, 5, 9, 15, 25, 27, 45, 75):
        m = a
        while m < n:
            m *= 2
        best = min(best, m)
    return best


def _noise_sigma(logl: np.ndarray, mask: np.ndarray) -> float:
    """Pixel noise of log luminance inside the mask, so that sensor noise on a dark garment is not
    taken for fine dots. Immerkaer's Laplacian difference (blind to shading; its response to
    Gaussian noise has a standard deviation of 6 sigma), read at the lower quartile of its
    magnitudes (0.3186 of a standard deviation) so that the edges of a print do not count."""
    laplace = (
        4 * logl[1:-1, 1:-1] - 2 * (logl[:-2, 1:-1] + logl[2:, 1:-1] + logl[1:-1, :-2] + logl[1:-1, 2:])
        + logl[:-2, :-2] + logl[:-2, 2:] + logl[2:, :-2] + logl[2:, 2:]
    )
    inside = _erode(mask, 1)[1:-1, 1:-1]
    if not inside.any():
        return 0.0
    return float(np.quantile(np.abs(laplace[inside]), 0.25) / 0.3186 / 6)


def _energy_layout(grid: _Grid, energy: np.ndarray) -> list[float]:
    """How much of the garment is textured and how concentrated the texture is."""
    local = grid.values(grid.blur(energy, 4))
    shares = [float((local > t**2).mean()) for t in (0.05, 0.1, 0.2)]
    total = local.sum() + _EPS
    top = np.sort(local)[::-1][: max(1, len(local) // 5)].sum() / total
    ys, xs = np.nonzero(grid.inner)
    cy, cx = ys.mean(), xs.mean()
    spread_mask = np.sqrt(((ys - cy) ** 2 + (xs - cx) ** 2).mean()) + _EPS
    ey, ex = (local * ys).sum() / total, (local * xs).sum() / total
    spread_energy = np.sqrt((local * ((ys - ey) ** 2 + (xs - ex) ** 2)).sum() / total)
    offset = np.hypot(ey - cy, ex - cx) / spread_mask
    return shares + [float(top), float(spread_energy / spread_mask), float(offset)]


def _gradients(grid: _Grid, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gy, gx = np.gradient(band)
    return gx * grid.weight, gy * grid.weight


def _orientation_histogram(grid: _Grid, band: np.ndarray) -> list[float]:
    """Energy-weighted gradient orientations (mod 180 degrees), rotated so the strongest bin is first."""
    gx, gy = _gradients(grid, band)
    power = gx**2 + gy**2
    # Votes split linearly between the two nearest bins: no jump when an angle crosses a bin edge.
    position = (np.arctan2(gy, gx) % np.pi) * 12 / np.pi
    low = np.floor(position)
    upper = position - low
    low = low.astype(int) % 12
    hist = np.bincount(low.ravel(), (power * (1 - upper)).ravel(), 12)
    hist += np.bincount(((low + 1) % 12).ravel(), (power * upper).ravel(), 12)
    hist = hist / (hist.sum() + _EPS)
    return list(np.roll(hist, -int(np.argmax(hist))))


def _coherence(grid: _Grid, band: np.ndarray) -> list[float]:
    """Orientation coherence, 2-fold (one direction) and 4-fold (two orthogonal ones), over the whole
    garment and in neighbourhoods (sigma 2 and 5 px): a garment's panels and folds turn a print, so
    the global measures fail on real clothes where the local ones still hold."""
    gx, gy = _gradients(grid, band)
    z = gx + 1j * gy
    power = np.abs(z) ** 2
    z2, z4 = z**2, z**4 / np.maximum(power, _EPS)
    total = power.sum() + _EPS
    weights = grid.values(power)
    local_power: dict[float, np.ndarray] = dict(zip((2.0, 5.0), grid.blurs(power, 2, 5)))

    def local(z: np.ndarray, sigma: float) -> float:
        size = np.hypot(grid.blur(z.real, sigma), grid.blur(z.imag, sigma))
        return float((grid.values(size / (local_power[sigma] + _EPS)) * weights).sum() / (weights.sum() + _EPS))

    return [float(abs(z2.sum()) / total), float(abs(z4.sum()) / total), local(z2, 2), local(z4, 5)]


def _periodicity(grid: _Grid, band: np.ndarray) -> list[float]:
    """The two strongest peaks of the power spectrum of the (tapered) band inside the mask."""
    taper = grid.coverage(3) * grid.weight  # fades to zero at the border: no edge in the spectrum
    spectrum = np.abs(grid.fft(band * taper)) ** 2
    radius = np.sqrt(grid.freq2)
    garment = np.sqrt(grid.count)
    # From two repeats across the garment to a period of three pixels (finer is JPEG and noise).
    valid = (radius > 2.0 / garment) & (radius < 0.33)
    power = np.where(valid, spectrum, 0.0)
    total = power.sum() + _EPS
    p = power[valid] / total
    entropy = float(-(p * np.log(p + 1e-12)).sum() / np.log(max(len(p), 2)))

    fys, fxs = np.fft.fftfreq(grid.canvas[0])[:, None], np.fft.rfftfreq(grid.canvas[1])[None, :]
    peaks = []
    work = power.copy()
    for _ in range(2):
        iy, ix = np.unravel_index(int(np.argmax(work)), work.shape)
        rows = np.arange(iy - 1, iy + 2) % work.shape[0]
        cols = np.arange(max(ix - 1, 0), min(ix + 2, work.shape[1]))
        share = float(power[np.ix_(rows, cols)].sum() / total)
        r = radius[iy, ix]
        ring = valid & (np.abs(radius - r) < 1.5 / min(grid.canvas))
        contrast = float(power[iy, ix] / (power[ring].mean() + _EPS))
        fy, fx = fys[iy, 0], fxs[0, ix]
        peaks.append((share, contrast, np.array([fy, fx]), r))
        # Suppress the peak, its mirror (the half-plane holds both near fx = 0) and their harmonics,
        # so that the second peak is a new direction.
        for k in (1, -1, 2, -2, 3, -3):
            work[(fys - k * fy) ** 2 + (fxs - k * fx) ** 2 < (3.0 / min(grid.canvas)) ** 2] = 0.0
    (s1, c1, v1, r1), (s2, c2, v2, _) = peaks
    sin = abs(v1[0] * v2[1] - v1[1] * v2[0]) / (np.linalg.norm(v1) * np.linalg.norm(v2) + _EPS)
    log_period = float(np.log(1.0 / max(r1, _EPS) / garment))
    return [s1, s2, float(sin), entropy, log_period, float(np.log(c1 + 1)), float(np.log(c2 + 1))]


def _blobness(grid: _Grid, smooth: np.ndarray) -> float:
    """Share of the strongly curved pixels whose curvature is isotropic (a blob, not a ridge)."""
    gy, gx = np.gradient(smooth)
    hyy, hyx = np.gradient(gy)
    _, hxx = np.gradient(gx)
    trace = grid.values(hxx + hyy)
    det = grid.values(hxx * hyy - hyx**2)
    strong = np.abs(trace) >= np.quantile(np.abs(trace), 0.9)
    return float((4 * det[strong] / (trace[strong] ** 2 + _EPS) > 0.5).mean())


def _extrema(grid: _Grid, band: np.ndarray, scale: float, noise: float) -> list[float]:
    """Density (per scale^2 of area) and evenness of the local maxima of |band| that stand above a
    contrast floor and three times the pixel noise."""
    magnitude = np.abs(band) * grid.weight
    padded = np.pad(magnitude, 1)
    neighbours = np.stack(
        [padded[1 + dy : 1 + dy + band.shape[0], 1 + dx : 1 + dx + band.shape[1]]
         for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    )
    peaks = (magnitude > neighbours.max(axis=0)) & (magnitude > max(0.04, 3 * noise)) & grid.inner
    amplitudes = magnitude[peaks]
    density = len(amplitudes) * scale**2 / grid.count
    evenness = 1.0 - float(amplitudes.std() / amplitudes.mean()) if len(amplitudes) > 1 else 0.0
    return [float(density), evenness]


def _colour_bins(rgb: np.ndarray) -> np.ndarray:
    """Index of each pixel's coarse colour bin (4 levels per channel, 64 bins)."""
    levels = np.clip((rgb * 4).astype(int), 0, 3)
    return levels[..., 0] * 16 + levels[..., 1] * 4 + levels[..., 2]


def _colours(grid: _Grid, smooth_rgb: np.ndarray) -> list[float]:
    """Coarse colour histogram: bins above 5%, entropy, top one and two shares."""
    bins = grid.values(_colour_bins(smooth_rgb))
    share = np.sort(np.bincount(bins, minlength=64) / len(bins))[::-1]
    entropy = float(-(share * np.log(share + 1e-12)).sum() / np.log(64))
    return [float((share > 0.05).sum()), entropy, float(share[0]), float(share[0] + share[1])]


def _cell_differences(grid: _Grid, logl: np.ndarray, energy: np.ndarray, smooth_rgb: np.ndarray) -> list[float]:
    """How much 3x3 cells of the garment differ: all-over prints are alike everywhere, a graphic is not.

    Spread of the cells' mean log luminance (relative to the garment's own spread), spread of their
    log texture energy, and the mean total-variation distance of their colour histograms to the
    garment's.
    """
    ys, xs = np.nonzero(grid.inner)
    rows = np.minimum((3 * (ys - ys.min()) / (np.ptp(ys) + 1)).astype(int), 2)
    cols = np.minimum((3 * (xs - xs.min()) / (np.ptp(xs) + 1)).astype(int), 2)
    cell = rows * 3 + cols
    lum, tex, bins = logl[ys, xs], np.log(energy[ys, xs] + 1e-4), _colour_bins(smooth_rgb[ys, xs])
    overall = np.bincount(bins, minlength=64) / len(bins)
    means, energies, distances = [], [], []
    for k in range(9):
        inside = cell == k
        # Cells that barely touch the garment are mostly border and would add noise.
        if inside.sum() < 0.04 * len(cell):
            continue
        means.append(lum[inside].mean())
        energies.append(tex[inside].mean())
        distances.append(0.5 * np.abs(np.bincount(bins[inside], minlength=64) / inside.sum() - overall).sum())
    if len(means) < 2:
        return [0.0, 0.0, 0.0]
    spread = float(np.std(means) / (lum.std() + 1e-3))
    return [spread, float(np.std(energies)), float(np.mean(distances))]


class _Classifier:
    """Standardise, one ReLU layer, softmax; parameters from the weights JSON."""

    def __init__(self, params: dict):
        if tuple(params["classes"]) != PATTERNS or tuple(params["features"]) != FEATURE_NAMES:
            raise ValueError(f"{WEIGHTS.name} was made for other classes or features; regenerate it")
        self.version = str(params["version"])
        self.mean = np.asarray(params["mean"])
        self.scale = np.asarray(params["scale"])
        self.w1 = np.asarray(params["w1"])
        self.b1 = np.asarray(params["b1"])
        self.w2 = np.asarray(params["w2"])
        self.b2 = np.asarray(params["b2"])
        self.log_prior = np.asarray(params["log_prior"])

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        x = (features - self.mean) / self.scale
        logits = np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2 + self.log_prior
        e = np.exp(logits - logits.max())
        return e / e.sum()


@lru_cache(maxsize=1)
def _classifier() -> _Classifier:
    return _Classifier(json.loads(WEIGHTS.read_text()))


def model_version() -> str:
    """`vestis-pattern-texture@<version>`, for the provenance of pattern labels."""
    return f"{MODEL_NAME}@{_classifier().version}"
