"""Garment heads: category, sleeve length and pattern of a whole garment from its backbone features.

Linear classifiers (one per question) over the pooled EfficientNet-Lite features of a garment's
crop (vision/backbone.py), each with a temperature fitted on photos it was not trained on, so that
its probabilities are calibrated: the label keeps its best alternatives with these probabilities.
Trained by vision/training/train_garment_heads.py; weights in vision/weights/garment-heads.pt
(record garment-heads). Model card: docs/models/garment-parsing.md
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vision.backbone import FEATURE_DIM
from labels.vocabulary import PATTERNS

# What each head answers, in the vocabulary's words. "upper" is the outermost garment of the upper
# body (a one-piece dress included); "lower" the garment below the waist.
UPPER_CATEGORIES: tuple[str, ...] = ("t-shirt", "shirt/blouse", "sweater", "tank top", "coat/jacket", "suit", "dress")
LOWER_CATEGORIES: tuple[str, ...] = ("skirt", "pants/jeans", "shorts")
SLEEVE_CLASSES: tuple[str, ...] = ("sleeveless", "short", "long")
HEAD_CLASSES: dict[str, tuple[str, ...]] = {"upper": UPPER_CATEGORIES, "lower": LOWER_CATEGORIES,
                                            "sleeve": SLEEVE_CLASSES, "pattern": PATTERNS}


class GarmentHeads(nn.Module):
    """One linear head per question. A head named in `context` reads the garment's features followed
    by those of its person's whole crop (2 x feature_dim): whether a top is a t-shirt, a shirt or part
    of a suit shows in the collar, the trousers and the rest of the outfit as much as in the top."""

    log_temperature: torch.Tensor

    def __init__(self, feature_dim: int = FEATURE_DIM, context: frozenset[str] | set[str] = frozenset()):
        super().__init__()
        self.context = frozenset(context)
        self.heads = nn.ModuleDict({name: nn.Linear(feature_dim * (2 if name in self.context else 1), len(classes))
                                    for name, classes in HEAD_CLASSES.items()})
        # log-temperature per head, fitted after training (calibration)
        self.register_buffer("log_temperature", torch.zeros(len(HEAD_CLASSES)))

    @classmethod
    def from_files(cls, files: dict[str, Path]) -> "GarmentHeads":
        [path] = [p for p in files.values() if Path(p).suffix == ".pt"]
        state = {k: v.float() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
        # a head whose weights read twice the features is a context head (the file says which by its shapes)
        context = {name for name in HEAD_CLASSES if state[f"heads.{name}.weight"].shape[1] == 2 * FEATURE_DIM}
        heads = cls(context=context)
        heads.load_state_dict(state)
        return heads.eval()

    def logits(self, name: str, features: torch.Tensor) -> torch.Tensor:
        return self.heads[name](features)

    def temperature(self, name: str) -> torch.Tensor:
        return self.log_temperature[list(HEAD_CLASSES).index(name)].exp()

    @torch.inference_mode()
    def probabilities(self, name: str, features: torch.Tensor) -> torch.Tensor:
        """(n, classes) calibrated probabilities."""
        return torch.softmax(self.logits(name, features.float()) / self.temperature(name), dim=-1)
