"""Scratch: ms per crop of Lite0 (224) and Lite2 (260) on one thread, batches of 6 crops (3 garments x 2 views)."""
import sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from configs import Settings
from configs.manifest import load_manifest
from vision.backbone import GarmentBackbone
from vision.model_files import model_files
torch.set_num_threads(1)
s = Settings()
b0 = GarmentBackbone.from_files(model_files(load_manifest(s.models.manifest).get("efficientnet-lite0"), s.models.cache_dir))
b2 = GarmentBackbone.from_files({"w": next(Path("/tmp/naming/wheels/lite2").rglob("*.pth"))}, variant="efficientnet-lite2", input_size=260)
for rep in range(2):
    for name, b in (("lite0", b0), ("lite2", b2)):
        x = torch.rand(6, 3, b.input_size, b.input_size) * 255
        b(x)
        t = time.time()
        for _ in range(10):
            b(x)
        print(rep, name, f"{(time.time() - t) / 60 * 1000:.1f} ms/crop", flush=True)
