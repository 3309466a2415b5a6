"""Scratch: the parser's votes inside the stage's upper region (shares of its pixels per upper class) and
lower region, for the main person of every CCP photo (same matching as extract.py)."""
import json, sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from configs import Settings
from labels import Box
from vision.garment_parser import PARSER_CLASSES
from vision.garments import GarmentStage, pixel_box, whole_garments, _enlarged, MIN_GARMENT_PIXELS, MIN_GARMENT_SHARE, UPPER, LOWER
from vision.person_detection import PersonDetectionStage
from vision.stage import Frame
from vision.training.ccp import CCP_TO_PARSER
torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
settings = Settings(vision={"device": "cpu", "batch_size": 2})
detector = PersonDetectionStage(settings); stage = GarmentStage(settings)
names = json.loads((DATA / "ccp" / "annotations.json").read_text())["label_names"]
lookup = np.array([PARSER_CLASSES.index(CCP_TO_PARSER.get(n, "other")) for n in names], dtype=np.uint8)
d = torch.load("/tmp/naming/ccp-crops.pt", weights_only=False)
out = np.zeros((len(d["rows"]), len(PARSER_CLASSES)), dtype=np.float32)
t = time.time()
for k, r in enumerate(d["rows"]):
    image = np.asarray(Image.open(DATA / "ccp" / "images" / f"{r['stem']}.jpg").convert("RGB"))
    truth = lookup[np.asarray(Image.open(DATA / "ccp" / "masks" / f"{r['stem']}.png"))]
    [frame] = detector([Frame.of_photo(image, r["stem"])])
    persons = frame.labels.persons
    if not persons:
        continue
    tb = pixel_box(truth > 0)
    tbox = Box(x1=tb[0], y1=tb[1], x2=tb[2], y2=tb[3])
    m = max(range(len(persons)), key=lambda i: persons[i].box.iou(tbox))
    [parse] = stage.parser.parse(image, [persons[m].box.xyxy])
    h, w = image.shape[:2]
    x0, y0, x1, y1 = _enlarged(persons[m].box, w, h)
    labels, conf = parse.region_labels(x0, y0, x1, y1)
    up = np.isin(labels, UPPER)
    if up.sum():
        out[k] = np.bincount(labels[up], minlength=len(PARSER_CLASSES)) / up.sum()
    if k % 100 == 0:
        print(k, time.time() - t, flush=True)
np.save("/tmp/naming/votes.npy", out)
print("done", time.time() - t)
