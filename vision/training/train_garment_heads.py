"""Fit the garment heads (vision/weights/garment-heads.pt) on backbone features of garment crops.

    python -m vision.training.garment_head_data --out /tmp/garment-head-features.pt     # ~12 min, CPU
    python -m vision.training.pattern_head_data --out /tmp/pattern-head-features.pt     # ~6 min
    python -m vision.training.train_garment_heads \
        --features /tmp/garment-head-features.pt /tmp/pattern-head-features.pt \
        [--out vision/weights/garment-heads.pt] [--report docs/models/garment-heads.json]
        [--head-features sleeve=/tmp/garment-head-features-parse.pt] [--context upper]
        [--only upper --keep vision/weights/garment-heads.pt]    # refit one head, keep the others

Each head (upper category, lower category, sleeve length, pattern) is a linear softmax classifier
fitted by full-batch L-BFGS on cross-entropy with L2, classes weighted to balance them, worn-garment
crops (CCP, ccp-tags) weighted above flat product photos (clothing-dataset), which differ from what
video shows. The CCP photos held out (every 5th) are never fitted on: they pick the L2 strength,
then fit each head's temperature (calibration), and give the figures printed at the end: accuracy,
macro-F1 and expected calibration error before and after scaling. The pattern head learns from
synthetic prints only (balanced classes), so a prior for "solid" is added to its bias: most real
garments are plain. It is checked on real CCP garments labelled by eye (`check`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vision.garment_heads import HEAD_CLASSES, GarmentHeads

REPO_ROOT = Path(__file__).resolve().parents[2]
WORN_WEIGHT = {"ccp": 3.0, "ccp-tags": 2.0, "clothing": 1.0, "synthetic": 1.0, "ccp-check": 1.0}
# log-odds added to "solid" in the pattern head, as the hand-feature classifier had (about 2.7 to 1
# against each print): synthetic training classes are balanced, real garments mostly plain.
SOLID_PRIOR_LOGIT = 1.0
L2_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
ECE_BINS = 10


def fit_linear(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, classes: int, l2: float) -> torch.nn.Linear:
    torch.manual_seed(0)
    layer = torch.nn.Linear(x.shape[1], classes)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=300, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (F.cross_entropy(layer(x), y, reduction="none") * weight).sum() / weight.sum()
        loss = loss + l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return layer


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach())


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> float:
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == y).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += float(inside.float().mean() * (confidence[inside].mean() - correct[inside].mean()).abs())
    return ece


def macro_f1(y: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    scores = []
    for c in range(classes):
        if not (y == c).any():
            continue
        tp = int(((y == c) & (predicted == c)).sum())
        fp = int(((y != c) & (predicted == c)).sum())
        fn = int(((y == c) & (predicted != c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def head_data(features: torch.Tensor, rows: list[dict], name: str, context: bool = False):
    """The rows labelled for this head: features, labels, which are training rows, source weights, rows.
    context: each row's features followed by its person crop's (the row of head "person" of the same
    photo and view, written by garment_head_data --context); a product photo is its own context."""
    index = [k for k, r in enumerate(rows) if r.get(name, -1) >= 0]
    y = torch.tensor([rows[k][name] for k in index], dtype=torch.long)
    train = torch.tensor([rows[k]["split"] == "train" for k in index])
    weight = torch.tensor([WORN_WEIGHT[rows[k]["source"]] for k in index], dtype=torch.float32)
    x = features[index]
    if context:
        person = {(r["source"], r["image"], r.get("mirrored", False)): k for k, r in enumerate(rows)
                  if r.get("head") == "person"}
        if not person:
            raise SystemExit(f"the {name} head reads context, but the features have no person rows "
                             "(garment_head_data --context)")
        x = torch.cat([x, features[[person.get((rows[k]["source"], rows[k]["image"], rows[k].get("mirrored", False)), k)
                                    for k in index]]], dim=1)
    return x, y, train, weight, [rows[k] for k in index]


def _load(paths: list[Path]) -> tuple[torch.Tensor, list[dict]]:
    loaded = [torch.load(path, weights_only=False) for path in paths]
    return torch.cat([data["features"].float() for data in loaded]), [row for data in loaded for row in data["rows"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "vision" / "weights" / "garment-heads.pt")
    parser.add_argument("--report", type=Path, default=None, help="write the held-out figures as JSON")
    parser.add_argument("--head-features", action="append", default=[], metavar="HEAD=FILE",
                        help="fit this head on this features file instead of --features (e.g. sleeve=...)")
    parser.add_argument("--context", action="append", default=[], choices=list(HEAD_CLASSES), metavar="HEAD",
                        help="this head also reads the person crop's features (needs garment_head_data --context)")
    parser.add_argument("--only", action="append", default=[], choices=list(HEAD_CLASSES), metavar="HEAD",
                        help="fit only this head; the others (weights and temperatures) are copied from --keep")
    parser.add_argument("--keep", type=Path, default=None, help="heads file the heads not named by --only come from")
    args = parser.parse_args()
    if args.only and args.keep is None:
        raise SystemExit("--only needs --keep FILE, the heads file the other heads are copied from")
    features, rows = _load(args.features)
    own: dict[str, tuple[torch.Tensor, list[dict]]] = {}
    for spec in args.head_features:
        name, _, path = spec.partition("=")
        if name not in HEAD_CLASSES or not path:
            raise SystemExit(f"--head-features wants HEAD=FILE with HEAD one of {', '.join(HEAD_CLASSES)}, got {spec!r}")
        own[name] = _load([Path(path)])
    heads = GarmentHeads(features.shape[1], context=set(args.context))
    report: dict = {"features": [path.name for path in args.features], "head_features": args.head_features,
                    "context": sorted(args.context), "heads": {}}
    temperatures = []
    kept_state: dict[str, torch.Tensor] = {}
    if args.only:
        kept_state = torch.load(args.keep, map_location="cpu", weights_only=True)
        report["kept_from"] = {"file": str(args.keep), "sha256": hashlib.sha256(args.keep.read_bytes()).hexdigest()}
        if args.report and args.report.is_file():  # the kept heads' figures stay those of the report
            report["heads"] = {k: v for k, v in json.loads(args.report.read_text())["heads"].items() if k not in args.only}
    for name, classes in HEAD_CLASSES.items():
        if args.only and name not in args.only:
            kept_layer = heads.heads[name]
            assert isinstance(kept_layer, torch.nn.Linear)
            kept_layer.load_state_dict({"weight": kept_state[f"heads.{name}.weight"].float(),
                                        "bias": kept_state[f"heads.{name}.bias"].float()})
            temperatures.append(float(kept_state["log_temperature"][list(HEAD_CLASSES).index(name)]))
            continue
        x, y, train, weight, kept = head_data(*own.get(name, (features, rows)), name, context=name in args.context)
        if not len(kept):
            raise SystemExit(f"no training data for the {name} head in {', '.join(map(str, args.features))}")
        # balance classes within the training set (each class's weight sums to the same)
        counts = torch.bincount(y[train], minlength=len(classes)).float().clamp(min=1)
        balanced = weight * (counts.sum() / (len(classes) * counts))[y]
        held = torch.tensor([r["split"] == "holdout" and not r["mirrored"] for r in kept])
        check = torch.tensor([r["split"] == "check" for r in kept])
        best: tuple[float, float, torch.nn.Linear] | None = None
        for l2 in L2_GRID:
            layer = fit_linear(x[train], y[train], balanced[train], len(classes), l2)
            with torch.no_grad():
                loss = float(F.cross_entropy(layer(x[held]), y[held]))
            if best is None or loss < best[0]:
                best = (loss, l2, layer)
        assert best is not None
        _, l2, layer = best
        if name == "pattern":
            with torch.no_grad():
                layer.bias[classes.index("solid")] += SOLID_PRIOR_LOGIT
        heads.heads[name].load_state_dict(layer.state_dict())
        with torch.no_grad():
            logits = layer(x[held])
        log_t = fit_temperature(logits, y[held])
        temperatures.append(log_t)
        raw = torch.softmax(logits, dim=1)
        scaled = torch.softmax(logits / np.exp(log_t), dim=1)
        predicted = raw.argmax(dim=1).numpy()
        truth = y[held].numpy()
        figures = {
            "train": int(train.sum()), "held_out": int(held.sum()), "l2": l2, "temperature": float(np.exp(log_t)),
            "held_out_accuracy": float((predicted == truth).mean()),
            "held_out_macro_f1": macro_f1(truth, predicted, len(classes)),
            "majority_share": float(np.bincount(truth).max() / len(truth)),
            "ece_before": expected_calibration_error(raw, y[held]),
            "ece_after": expected_calibration_error(scaled, y[held]),
            "train_counts": {c: int(n) for c, n in zip(classes, torch.bincount(y[train], minlength=len(classes)))},
        }
        if check.any():
            with torch.no_grad():
                checked = layer(x[check]).argmax(dim=1).numpy()
            figures["check_accuracy"] = float((checked == y[check].numpy()).mean())
            figures["check_macro_f1"] = macro_f1(y[check].numpy(), checked, len(classes))
            figures["check_n"] = int(check.sum())
            print(f"{name:7s} real garments labelled by eye: acc {figures['check_accuracy']:.3f} "
                  f"macro-F1 {figures['check_macro_f1']:.3f} n={figures['check_n']}")
        report["heads"][name] = figures
        print(f"{name:7s} l2={l2:g} T={figures['temperature']:.2f} held-out acc {figures['held_out_accuracy']:.3f} "
              f"(majority {figures['majority_share']:.3f}) macro-F1 {figures['held_out_macro_f1']:.3f} "
              f"ECE {figures['ece_before']:.3f} -> {figures['ece_after']:.3f}  n={figures['held_out']}")
    heads.log_temperature.copy_(torch.tensor(temperatures))  # the buffer's declared type is on GarmentHeads
    state = {k: v.half() if v.dtype == torch.float32 and k != "log_temperature" else v
             for k, v in heads.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    report["sha256"] = digest
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
