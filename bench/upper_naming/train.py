"""Scratch: upper-category head variants on the cached crops (extract.py); CCP held-out figures."""
from pathlib import Path
import sys
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.upper_naming.common import upper_labels
from vision.garment_heads import UPPER_CATEGORIES, GarmentHeads
from vision.training.train_garment_heads import fit_linear, fit_temperature, macro_f1, L2_GRID

torch.set_num_threads(1)
C = len(UPPER_CATEGORIES)
import os
SUF = os.environ.get("FEAT", "")
d = torch.load(f"/tmp/naming/ccp-crops{SUF}.pt", weights_only=False)
cl = torch.load(f"/tmp/naming/clothing-crops{SUF}.pt", weights_only=False)
F_ = d["features"].float()  # N,5,2,1280 ; roles: 0 true upper,1 true lower,2 stage upper,3 stage lower,4 person
have = d["have"]
rows = d["rows"]
CF = cl["features"].float()  # M,2,1280
crows = cl["rows"]
TU, TL, SU, SL, P = range(5)
upper, train, held, stage_truth, c_upper = upper_labels(rows, crows)


def ccp_x(role, view, ctx):
    """(N, D) features of role in view (0 plain, 1 mirror, 'avg'), with context roles appended."""
    def one(r, v):
        f = F_[:, r]
        if v == "avg":
            return f.mean(1)
        return f[:, v]
    parts = [one(role, view)]
    for c in ctx:
        if c == "L":
            c = TL if role == TU else SL
        elif c == "G":  # the garment's own box grown 1.6x (context_crops.py)
            c = 6 if role == TU else 7
        elif c == "U":  # the upper 55 % of the person's box (context_crops.py)
            c = 5
        g = one(c, view)
        # missing context (no lower garment): the garment's own features
        g = torch.where(have[:, c:c + 1], g, one(role, view))
        parts.append(g)
    return torch.cat(parts, 1)


def clothing_x(view, ctx, mode):
    f = CF[:, 0] if view != "avg" else CF.mean(1)
    if view == 1:
        f = CF[:, 1]
    parts = [f]
    for _ in ctx:
        parts.append(f if mode == "self" else torch.zeros_like(f))
    return torch.cat(parts, 1)


def run(name, ctx=(), stage_rows=False, clothing=True, clothing_mirror=False, ctx_mode="self", ccp_weight=3.0,
        stage_label="upper", quiet=False):
    xs, ys, ws = [], [], []
    for view in (0, 1):
        for role in ([TU, SU] if stage_rows else [TU]):
            lab = upper if (role == TU or stage_label == "upper") else stage_truth
            ok = train & have[:, role] & (lab >= 0)
            xs.append(ccp_x(role, view, ctx)[ok]); ys.append(lab[ok]); ws.append(torch.full((int(ok.sum()),), ccp_weight))
    if clothing:
        for view in ((0, 1) if clothing_mirror else (0,)):
            ok = c_upper >= 0
            xs.append(clothing_x(view, ctx, ctx_mode)[ok]); ys.append(c_upper[ok]); ws.append(torch.ones(int(ok.sum())))
    x, y, w = torch.cat(xs), torch.cat(ys), torch.cat(ws)
    counts = torch.bincount(y, minlength=C).float().clamp(min=1)
    w = w * (counts.sum() / (C * counts))[y]
    hv = held & have[:, TU] & (upper >= 0)
    xh, yh = ccp_x(TU, 0, ctx)[hv], upper[hv]
    best = None
    for l2 in L2_GRID:
        layer = fit_linear(x, y, w, C, l2)
        with torch.no_grad():
            loss = float(F.cross_entropy(layer(xh), yh))
        if best is None or loss < best[0]:
            best = (loss, l2, layer)
    loss, l2, layer = best
    out = dict(name=name, l2=l2, loss=loss)
    with torch.no_grad():
        out["true_plain"] = float((layer(xh).argmax(1) == yh).float().mean())
        out["true_f1"] = macro_f1(yh.numpy(), layer(xh).argmax(1).numpy(), C)
        out["true_avg"] = float((layer(ccp_x(TU, "avg", ctx)[hv]).argmax(1) == yh).float().mean())
        sv = held & have[:, SU] & (upper >= 0)
        ps = layer(ccp_x(SU, "avg", ctx)[sv]).argmax(1)
        out["stage_vs_label"] = float((ps == upper[sv]).float().mean())
        sv2 = held & have[:, SU] & (stage_truth >= 0)
        ps2 = layer(ccp_x(SU, "avg", ctx)[sv2]).argmax(1)
        out["stage_vs_majority"] = float((ps2 == stage_truth[sv2]).float().mean())
        out["n"] = (int(hv.sum()), int(sv.sum()), int(sv2.sum()))
    if not quiet:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()), flush=True)
    return layer, out


if __name__ == "__main__":
    # main's own heads on these features
    heads = GarmentHeads.from_files({"w": str(Path(__file__).resolve().parents[2] / "vision" / "weights" / "garment-heads.pt")})
    with torch.no_grad():
        hv = held & have[:, TU] & (upper >= 0)
        p = heads.logits("upper", F_[hv, TU, 0]).argmax(1)
        print("main heads: true_plain", float((p == upper[hv]).float().mean()), "n", int(hv.sum()))
        p = heads.logits("upper", F_[hv, TU].mean(1)).argmax(1)
        print("main heads: true_avg", float((p == upper[hv]).float().mean()))
        sv = held & have[:, SU] & (upper >= 0)
        p = heads.logits("upper", F_[sv, SU].mean(1)).argmax(1)
        print("main heads: stage_vs_label", float((p == upper[sv]).float().mean()), int(sv.sum()))
        sv2 = held & have[:, SU] & (stage_truth >= 0)
        p = heads.logits("upper", F_[sv2, SU].mean(1)).argmax(1)
        print("main heads: stage_vs_majority", float((p == stage_truth[sv2]).float().mean()), int(sv2.sum()))
    run("baseline")
    run("ctx person", ctx=(P,))
    run("ctx person zero", ctx=(P,), ctx_mode="zero")
    run("ctx lower", ctx=("L",))
    run("ctx person+lower", ctx=(P, "L"))
    run("stage rows", stage_rows=True)
    run("stage rows majority", stage_rows=True, stage_label="majority")
    run("ctx person + stage rows", ctx=(P,), stage_rows=True)
    run("no clothing", clothing=False)
    run("ctx person no clothing", ctx=(P,), clothing=False)


def save(layer, out, ctx_used, label="upper"):
    """Main's heads file with this upper head (and its temperature, fitted on held-out true crops)."""
    from vision.garment_heads import HEAD_CLASSES
    state = torch.load(str(Path(__file__).resolve().parents[2] / "vision" / "weights" / "garment-heads.pt"), weights_only=True)
    hv = held & have[:, TU] & (upper >= 0)
    with torch.no_grad():
        logits = layer(ccp_x(TU, 0, ctx_used)[hv])
    log_t = fit_temperature(logits, upper[hv])
    state["heads.upper.weight"] = layer.weight.detach().half()
    state["heads.upper.bias"] = layer.bias.detach().half()
    lt = state["log_temperature"].clone()
    lt[list(HEAD_CLASSES).index("upper")] = log_t
    state["log_temperature"] = lt
    torch.save(state, out)
    print("saved", out, "T", float(np.exp(log_t)))
