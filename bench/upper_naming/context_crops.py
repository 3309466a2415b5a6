"""Other context crops for the upper head (Lite0, plain and mirrored), from extract.py's boxes: the
upper 55 % of the person's box, and the stage's / true upper-garment box grown 1.6x around its centre.
Writes ccp-crops-ctx2.pt: roles 0-4 as extract.py, 5 = upper body, 6 = true upper x1.6, 7 = stage upper x1.6."""
import sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from configs import Settings
from configs.manifest import load_manifest
from vision.backbone import GarmentBackbone
from vision.model_files import model_files
torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
s = Settings()
bb = GarmentBackbone.from_files(model_files(load_manifest(s.models.manifest).get("efficientnet-lite0"), s.models.cache_dir))
d = torch.load("/tmp/naming/ccp-crops.pt", weights_only=False)
rows = d["rows"]
F = torch.zeros((len(rows), 8, 2, 1280), dtype=torch.float16)
F[:, :5] = d["features"]
have = torch.zeros((len(rows), 8), dtype=torch.bool)
have[:, :5] = d["have"]


def grown(b, f):
    cx, cy, w, h = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) * f, (b[3] - b[1]) * f
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


t = time.time()
for k, r in enumerate(rows):
    image = np.asarray(Image.open(DATA / "ccp" / "images" / f"{r['stem']}.jpg").convert("RGB"))
    b = r["boxes"]
    boxes = {}
    if b[4] is not None:
        p = b[4]
        boxes[5] = [p[0], p[1], p[2], p[1] + 0.55 * (p[3] - p[1])]
    if b[0] is not None:
        boxes[6] = grown(b[0], 1.6)
    if b[2] is not None:
        boxes[7] = grown(b[2], 1.6)
    if not boxes:
        continue
    idx = list(boxes)
    crops = bb.crops(image, [boxes[i] for i in idx])
    f = bb(torch.cat([crops, torch.flip(crops, dims=[3])]))
    for j, i in enumerate(idx):
        F[k, i, 0] = f[j].half(); F[k, i, 1] = f[len(idx) + j].half(); have[k, i] = True
    if k % 100 == 0:
        print(k, f"{time.time() - t:.0f} s", flush=True)
torch.save(dict(features=F, have=have, rows=rows), "/tmp/naming/ccp-crops-ctx2.pt")
print("done", time.time() - t)
