"""Scratch: the heads' upper-category probabilities times the parser's votes in the stage's upper region
to a power alpha; alpha chosen on CCP *train* photos with heads cross-fitted (5 folds by photo)."""
from pathlib import Path
import sys
exec(open(str(Path(__file__).resolve().parent / "train.py")).read().replace('if __name__ == "__main__":', 'if False:'))
from vision.garment_parser import PARSER_CLASSES

votes = torch.tensor(np.load("/tmp/naming/votes.npy"))
EPS = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
# parser class -> upper category; tank top (no pixel class) gets the mean of the tops'
V = torch.zeros((len(rows), C))
for j, c in enumerate(UPPER_CATEGORIES):
    if c == "tank top":
        V[:, j] = votes[:, [PARSER_CLASSES.index(t) for t in ("t-shirt", "shirt/blouse", "sweater")]].mean(1)
    else:
        V[:, j] = votes[:, PARSER_CLASSES.index(c)]
logV = torch.log(V + EPS)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def fit_on(mask, ctx, l2):
    xs, ys, ws = [], [], []
    for view in (0, 1):
        ok = mask & have[:, TU] & (upper >= 0)
        xs.append(ccp_x(TU, view, ctx)[ok]); ys.append(upper[ok]); ws.append(torch.full((int(ok.sum()),), 3.0))
    ok = c_upper >= 0
    xs.append(clothing_x(0, ctx, "self")[ok]); ys.append(c_upper[ok]); ws.append(torch.ones(int(ok.sum())))
    x, y, w = torch.cat(xs), torch.cat(ys), torch.cat(ws)
    counts = torch.bincount(y, minlength=C).float().clamp(min=1)
    w = w * (counts.sum() / (C * counts))[y]
    return fit_linear(x, y, w, C, l2)


def study(name, ctx, l2=0.03):
    photo = torch.arange(len(rows))
    tr_idx = train.nonzero().flatten()
    fold = torch.zeros(len(rows), dtype=torch.long) - 1
    fold[tr_idx] = torch.arange(len(tr_idx)) % 5
    logit_cv = torch.zeros((len(rows), C))
    for f in range(5):
        layer = fit_on(train & (fold != f), ctx, l2)
        with torch.no_grad():
            logit_cv[fold == f] = layer(ccp_x(SU, "avg", ctx)[fold == f])
    ok = train & have[:, SU] & (stage_truth >= 0)
    res = {}
    for a in ALPHAS:
        s = torch.log_softmax(logit_cv[ok], 1) + a * logV[ok]
        res[a] = (float((s.argmax(1) == stage_truth[ok]).float().mean()),
                  float((s.argmax(1) == upper[ok]).float().mean()))
    print(name, "train cross-fit stage acc (vs majority, vs label):", {a: tuple(round(v, 3) for v in r) for a, r in res.items()})
    best = max(ALPHAS, key=lambda a: res[a][0])
    layer = fit_on(train, ctx, l2)
    hv = held & have[:, SU] & (stage_truth >= 0)
    with torch.no_grad():
        lg = torch.log_softmax(layer(ccp_x(SU, "avg", ctx)[hv]), 1)
    for a in ALPHAS:
        s = lg + a * logV[hv]
        print(f"  held-out alpha={a}: vs majority {float((s.argmax(1) == stage_truth[hv]).float().mean()):.3f} "
              f"vs label {float((s.argmax(1) == upper[hv]).float().mean()):.3f}" + (" <- chosen on train" if a == best else ""))
    return best


pv = votes[held & have[:, SU] & (stage_truth >= 0)]
print("parser votes alone, held-out vs majority:",
      float((logV[held & have[:, SU] & (stage_truth >= 0)].argmax(1) == stage_truth[held & have[:, SU] & (stage_truth >= 0)]).float().mean()))
study("no ctx", ())
study("ctx person", (P,))
