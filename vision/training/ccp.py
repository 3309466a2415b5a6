"""The Clothing Co-Parsing (CCP) data set as the garment parser's training data.

Layout (../shared/data/ccp): images/NNNN.jpg, masks/NNNN.png (pixel = index into annotations.json
`label_names`), annotations.json. `CCP_TO_PARSER` folds CCP's 59 labels into the parser's classes
(vision.garment_parser.PARSER_CLASSES); the choices that are judgement calls are commented.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vision.garment_parser import PARSER_CLASSES

CCP_TO_PARSER: dict[str, str] = {
    "null": "background",
    "skin": "skin", "hair": "hair",
    "t-shirt": "t-shirt",
    "shirt": "shirt/blouse", "blouse": "shirt/blouse",
    # CCP's "top" is a generic top, mostly an inner layer (tees, camisoles, blouses alike).
    "top": "shirt/blouse",
    "sweater": "sweater", "jumper": "sweater", "cardigan": "sweater", "sweatshirt": "sweater",
    "hoodie": "sweater",
    "coat": "coat/jacket", "jacket": "coat/jacket", "blazer": "coat/jacket", "cape": "coat/jacket",
    # CCP's "vest" is a sleeveless outer layer (waistcoat, gilet), worn over a top.
    "vest": "coat/jacket",
    "suit": "suit",
    "dress": "dress", "romper": "dress", "bodysuit": "dress",
    "skirt": "skirt",
    "pants": "pants/jeans", "jeans": "pants/jeans", "leggings": "pants/jeans",
    "shorts": "shorts",
    "shoes": "shoes", "boots": "shoes", "clogs": "shoes", "flats": "shoes", "heels": "shoes",
    "loafers": "shoes", "pumps": "shoes", "sandals": "shoes", "sneakers": "shoes", "wedges": "shoes",
    "bag": "bag", "purse": "bag", "wallet": "bag",
    "hat": "hat",
    "scarf": "scarf",
}
# Everything else (belt, jewellery, glasses, socks, stockings, tights, underwear, ...) is "other".


@dataclass(frozen=True)
class CCPImage:
    image_id: str
    image_path: Path
    mask_path: Path


class CCP:
    def __init__(self, root: Path):
        self.root = Path(root)
        meta = json.loads((self.root / "annotations.json").read_text())
        names = meta["label_names"]
        self.lookup = np.array([PARSER_CLASSES.index(CCP_TO_PARSER.get(n, "other")) for n in names], dtype=np.uint8)
        self.images = [
            CCPImage(Path(entry["file"]).stem, self.root / entry["file"], self.root / entry["mask"])
            for entry in meta["images"]
        ]

    def parser_mask(self, item: CCPImage) -> np.ndarray:
        """The image's mask in parser classes (uint8, H x W)."""
        return self.lookup[np.asarray(Image.open(item.mask_path))]

    def split(self, validation_every: int = 5) -> tuple[list[CCPImage], list[CCPImage]]:
        """(train, validation): every `validation_every`-th image, by position, is held out."""
        train = [im for k, im in enumerate(self.images) if k % validation_every]
        validation = [im for k, im in enumerate(self.images) if not k % validation_every]
        return train, validation
