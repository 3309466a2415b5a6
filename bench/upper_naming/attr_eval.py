"""Scratch: evaluate_attributes with the garment stage's heads swapped for HEADS.pt (argv[1])."""
import json, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
torch.set_num_threads(1)
from configs import Settings
import vision.garments as G
from vision.garment_heads import GarmentHeads
from evaluation.runner import evaluate_attributes
heads = sys.argv[1]
init = G.GarmentStage.__init__
def patched(self, settings):
    init(self, settings)
    if heads != "main":
        self.classifier = GarmentHeads.from_files({"w": Path(heads)})
G.GarmentStage.__init__ = patched
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "attributes-dev"
r = evaluate_attributes(Settings(vision={"device": "cpu", "batch_size": 2}), DATA / "images", DATA / "labels.csv")
Path(sys.argv[2]).write_text(json.dumps(r, indent=1))
def show(r):
    out = {}
    for k in ("category", "sleeve", "pattern"):
        v = r.get("attributes", r).get(k) if isinstance(r.get("attributes", r), dict) else None
        out[k] = v
    return out
print(json.dumps(r)[:1500])
