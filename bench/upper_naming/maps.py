"""Scratch: Lite0 maps after block 14 (7x7x192, the input of the last block) of the crops extract.py cut
(CCP true upper, stage upper, person; plain and mirrored) and of the clothing photos (plain, mirrored)."""
import csv, sys, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.upper_naming.common import both_views
from configs import Settings
from configs.manifest import load_manifest
from vision.backbone import GarmentBackbone
from vision.model_files import model_files

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
settings = Settings(vision={"device": "cpu", "batch_size": 2})
record = load_manifest(settings.models.manifest).get("efficientnet-lite0")
bb = GarmentBackbone.from_files(model_files(record, settings.models.cache_dir))
net = bb.network
SPLIT = 15  # blocks [0, SPLIT) frozen and cached


@torch.inference_mode()
def early(crops):
    x = ((crops - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)
    x = net._swish(net._bn0(net._conv_stem(x)))
    for block in net._blocks[:SPLIT]:
        x = block(x, drop_connect_rate=None)
    return x


d = torch.load("/tmp/naming/ccp-crops.pt", weights_only=False)
rows = d["rows"]
ROLES = (0, 2, 4)
maps = torch.zeros((len(rows), len(ROLES), 2, 192, 7, 7), dtype=torch.float16)
have = torch.zeros((len(rows), len(ROLES)), dtype=torch.bool)
start = time.time()
for k, r in enumerate(rows):
    image = np.asarray(Image.open(DATA / "ccp" / "images" / f"{r['stem']}.jpg").convert("RGB"))
    idx = [j for j, role in enumerate(ROLES) if r["boxes"][role] is not None]
    if not idx:
        continue
    crops = bb.crops(image, [r["boxes"][ROLES[j]] for j in idx])
    m = both_views(early, crops)
    for t, j in enumerate(idx):
        maps[k, j] = m[t].half()
        have[k, j] = True
    if k % 100 == 0:
        print(f"ccp {k} {time.time() - start:.0f} s", flush=True)
torch.save(dict(maps=maps, have=have, roles=ROLES), "/tmp/naming/ccp-maps.pt")
cl = torch.load("/tmp/naming/clothing-crops.pt", weights_only=False)
cm = torch.zeros((len(cl["rows"]), 2, 192, 7, 7), dtype=torch.float16)
for k, r in enumerate(cl["rows"]):
    image = np.asarray(Image.open(DATA / "clothing-dataset" / "images" / f"{r['image']}.jpg").convert("RGB"))
    h, w = image.shape[:2]
    crops = bb.crops(image, [[0.0, 0.0, float(w), float(h)]])
    m = early(torch.cat([crops, torch.flip(crops, dims=[3])]))
    cm[k] = m.half()
    if k % 500 == 0:
        print(f"clothing {k} {time.time() - start:.0f} s", flush=True)
torch.save(dict(maps=cm), "/tmp/naming/clothing-maps.pt")
print("done", time.time() - start, flush=True)
