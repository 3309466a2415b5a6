"""Scratch: partial fine-tuning of Lite0's last block(s) + a linear upper-category head on cached block-14
maps (maps.py). CCP held-out figures as train.py's.

    python ft.py MODE EPOCHS [LR] [--stage-rows] [--out FILE]
    MODE: head (conv_head + linear; block 15 frozen) | block (block 15 + conv_head + linear)
"""
from pathlib import Path
import argparse, copy, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from configs import Settings
from configs.manifest import load_manifest
from vision.backbone import GarmentBackbone
from bench.upper_naming.common import upper_labels
from vision.garment_heads import UPPER_CATEGORIES
from vision.model_files import model_files
from vision.training.train_garment_heads import macro_f1

torch.set_num_threads(1)
ap = argparse.ArgumentParser()
ap.add_argument("mode")
ap.add_argument("epochs", type=int)
ap.add_argument("--lr", type=float, default=3e-4)
ap.add_argument("--wd", type=float, default=1e-2, help="L2 toward the pretrained weights (L2-SP), per parameter mean")
ap.add_argument("--stage-rows", action="store_true")
ap.add_argument("--clothing-mirror", action="store_true")
ap.add_argument("--dropout", type=float, default=0.2)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", default=None)
args = ap.parse_args()
torch.manual_seed(args.seed)
C = len(UPPER_CATEGORIES)
settings = Settings(vision={"device": "cpu", "batch_size": 2})
record = load_manifest(settings.models.manifest).get("efficientnet-lite0")
net = GarmentBackbone.from_files(model_files(record, settings.models.cache_dir)).network

d = torch.load("/tmp/naming/ccp-crops.pt", weights_only=False)
rows = d["rows"]
cm = torch.load("/tmp/naming/ccp-maps.pt", weights_only=False)
M, MH = cm["maps"], cm["have"]  # N,3(TU,SU,P),2,192,7,7
clm = torch.load("/tmp/naming/clothing-maps.pt", weights_only=False)["maps"]  # K,2,192,7,7
crows = torch.load("/tmp/naming/clothing-crops.pt", weights_only=False)["rows"]
upper, train, held, stage_truth, c_upper = upper_labels(rows, crows)


class Tail(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = copy.deepcopy(net._blocks[15])
        self.conv_head = copy.deepcopy(net._conv_head)
        self.drop = nn.Dropout(args.dropout)
        self.fc = nn.Linear(1280, C)

    def features(self, x):  # x: block-14 maps
        x = self.block(x, drop_connect_rate=None)
        return F.relu6(self.conv_head(x)).mean((2, 3))

    def forward(self, x):
        return self.fc(self.drop(self.features(x)))


tail = Tail()
# start the linear layer from the linear probe on the frozen features (fast convergence)
with torch.no_grad():
    pass
frozen = {n: p.detach().clone() for n, p in tail.named_parameters()}
if args.mode == "head":
    for p in tail.block.parameters():
        p.requires_grad_(False)

# training set: (map source, index, view, label, weight)
items = []
for k in range(len(rows)):
    if not train[k]:
        continue
    if upper[k] >= 0 and MH[k, 0]:
        items.append(("ccp", k, 0, int(upper[k]), 3.0))
    if args.stage_rows and upper[k] >= 0 and MH[k, 1]:
        items.append(("ccp", k, 1, int(upper[k]), 3.0))
for k in range(len(crows)):
    if c_upper[k] >= 0:
        items.append(("cl", k, 0, int(c_upper[k]), 1.0))
ys = torch.tensor([it[3] for it in items])
counts = torch.bincount(ys, minlength=C).float().clamp(min=1)
bal = (counts.sum() / (C * counts))
weights = torch.tensor([it[4] for it in items]) * bal[ys]


def get(it, view):
    src, k, role, _, _ = it
    if src == "ccp":
        return M[k, role, view]
    return clm[k, view if args.clothing_mirror else 0]


def evaluate(model):
    model.eval()
    out = {}
    with torch.no_grad():
        hv = (held & MH[:, 0] & (upper >= 0)).nonzero().flatten()
        plain = model(M[hv, 0, 0].float())
        mirr = model(M[hv, 0, 1].float())
        y = upper[hv]
        out["loss"] = float(F.cross_entropy(plain, y))
        out["true_plain"] = float((plain.argmax(1) == y).float().mean())
        out["true_f1"] = macro_f1(y.numpy(), plain.argmax(1).numpy(), C)
        out["true_avg"] = float(((plain.softmax(1) + mirr.softmax(1)).argmax(1) == y).float().mean())
        sv = (held & MH[:, 1] & (upper >= 0)).nonzero().flatten()
        # at ingest the features are averaged over the two views before the linear head
        fs = (model.features(M[sv, 1, 0].float()) + model.features(M[sv, 1, 1].float())) / 2
        ps = model.fc(fs).argmax(1)
        out["stage_vs_label"] = float((ps == upper[sv]).float().mean())
        ok = stage_truth[sv] >= 0
        out["stage_vs_majority"] = float((ps[ok] == stage_truth[sv][ok]).float().mean())
        ft = (model.features(M[hv, 0, 0].float()) + model.features(M[hv, 0, 1].float())) / 2
        out["true_featavg"] = float((model.fc(ft).argmax(1) == y).float().mean())
    model.train()
    return out


params = [p for p in tail.parameters() if p.requires_grad]
opt = torch.optim.AdamW([{"params": [p for n, p in tail.named_parameters() if p.requires_grad and not n.startswith("fc")], "lr": args.lr},
                         {"params": tail.fc.parameters(), "lr": args.lr * 10}], weight_decay=0.0)
steps_per_epoch = (len(items) + 31) // 32
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, args.lr * 10], total_steps=args.epochs * steps_per_epoch,
                                            pct_start=0.15)
print(f"{len(items)} training crops, mode {args.mode}", flush=True)
start = time.time()
best = None
for epoch in range(args.epochs):
    tail.train()
    order = torch.randperm(len(items))
    for b in range(0, len(order), 32):
        idx = order[b:b + 32]
        views = torch.randint(0, 2, (len(idx),))
        x = torch.stack([get(items[i], int(v)) for i, v in zip(idx.tolist(), views)]).float()
        y, w = ys[idx], weights[idx]
        loss = (F.cross_entropy(tail(x), y, reduction="none") * w).sum() / w.sum()
        sp = sum(((p - frozen[n]) ** 2).sum() for n, p in tail.named_parameters() if p.requires_grad and not n.startswith("fc"))
        loss = loss + args.wd * sp + 1e-3 * tail.fc.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    e = evaluate(tail)
    print(f"epoch {epoch + 1} {time.time() - start:.0f} s " + " ".join(f"{k}={v:.3f}" for k, v in e.items()), flush=True)
if args.out:
    torch.save({k: v.half() for k, v in tail.state_dict().items()}, args.out)
    print("saved", args.out)
