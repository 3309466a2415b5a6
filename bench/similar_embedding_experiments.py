"""What was tried for the garment embedding (vision/garment_embedding.py), on garment parts kept by
`vestis eval similar --cache FILE`, fitted on the CCP training photos only.

    vestis eval similar --data ../shared/data --cache /tmp/similar/parts.npz     # ~5 min, once
    .venv/bin/python bench/similar_embedding_experiments.py --parts /tmp/similar/parts.npz

The file holds every CCP photo's garments (the held-out photos are every 5th by name; the rest
trained the parser and the garment heads) and the shared videos'. Everything fitted here (LDA,
logistic regression) sees only the training photos' garments with a true category; figures are
printed for the training photos (5-fold cross-validated by photo where something is fitted) and for
the held-out ones, with the videos' same-person-first beside them. The measures are
evaluation/similar.py's own (`neighbour_shares`, `nearest_is_same_track`), on float vectors (the
eval's int8 rounding moves a share by a garment or so).

1. The colour part's power (shares ** p; 0.5 was the square roots, Hellinger) at the shipped
   weights: picks COLOR_POWER.
2. A learned appearance projection instead of the random one: LDA on the square-rooted features
   (shrunk within-class scatter), and PCA-k then LDA, judged alone by the category share.
3. Those learned parts, and a logistic-regression category part (features and the heads'
   probabilities -> the true categories), added to the embedding.
4. Bounds: ranking by the garment heads' top category alone, and by the true category (what a
   perfect category part could do with this colour part).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from evaluation.similar import nearest_is_same_track, neighbour_shares, read_parts
from labels.vocabulary import COLORS, GARMENT_CATEGORIES
from vision.garment_embedding import APPEARANCE_WEIGHT, CATEGORY_WEIGHT, COLOR_WEIGHT, appearance

CATEGORIES = tuple(GARMENT_CATEGORIES)
FOLDS = 5


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Parts:
    def __init__(self, arrays: dict[str, np.ndarray], holdout_every: int = 5):
        self.a = arrays
        self.photo = arrays["ccp_photo"]
        self.truth = arrays["ccp_true_category"]
        self.colour = arrays["ccp_color_label"]
        judged = self.truth != ""
        self.train = judged & (self.photo % holdout_every != 0)
        self.test = judged & (self.photo % holdout_every == 0)
        self.root = np.sqrt(np.maximum(arrays["ccp_features"].astype(np.float64), 0))
        self.video_root = np.sqrt(np.maximum(arrays["video_features"].astype(np.float64), 0))
        self.y = np.array([CATEGORIES.index(t) if t else 0 for t in self.truth])
        idx = np.nonzero(self.train)[0]
        self.folds = [(idx[(self.photo[idx] // holdout_every) % FOLDS != k], idx[(self.photo[idx] // holdout_every) % FOLDS == k])
                      for k in range(FOLDS)]

    def shares(self, vectors: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
        r = neighbour_shares(vectors[rows], self.photo[rows], {"category": self.truth[rows], "color": self.colour[rows]})
        return r["category"]["top10_same"], r["color"]["top10_same"]

    def video(self, vectors: np.ndarray) -> float:
        hits = n = 0.0
        for name in self.a["video_names"]:
            rows = (self.a["video_file"] == name) & (self.a["video_track"] != "")
            if rows.sum() < 2:
                continue
            r = nearest_is_same_track(vectors[rows], self.a["video_frame"][rows], self.a["video_track"][rows])
            if r["queries"]:
                hits += r["queries"] * r["same_person_first"]
                n += r["queries"]
        return round(hits / n, 4)


def random_appearance(features: np.ndarray) -> np.ndarray:
    return np.stack([appearance(f) for f in features.astype(np.float32)])


def lda(x: np.ndarray, y: np.ndarray, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection) of Fisher's LDA: whiten by the shrunk within-class scatter, then the
    principal axes of the class means (classes - 1 of them)."""
    mean = x.mean(0)
    xc = x - mean
    classes = sorted(set(y.tolist()))
    means = np.stack([xc[y == c].mean(0) for c in classes])
    within = xc - means[np.searchsorted(classes, y)]
    sw = within.T @ within / len(x)
    sw = (1 - shrink) * sw + shrink * np.trace(sw) / len(sw) * np.eye(len(sw))
    e, v = np.linalg.eigh(sw)
    whiten = v / np.sqrt(np.maximum(e, 1e-9))
    m = means @ whiten
    counts = np.array([(y == c).sum() for c in classes], dtype=float)
    e2, v2 = np.linalg.eigh((m * counts[:, None]).T @ m / len(x))
    return mean, whiten @ v2[:, np.argsort(-e2)[:len(classes) - 1]]


def pca_lda(x: np.ndarray, y: np.ndarray, k: int | None, shrink: float):
    """A function features -> unit LDA projection, fitted on (x, y); PCA to k first when k."""
    mean = x.mean(0)
    pca = np.linalg.svd(x - mean, full_matrices=False)[2][:k].T if k else np.eye(x.shape[1])
    m2, p2 = lda((x - mean) @ pca, y, shrink)
    return lambda z: unit(((z - mean) @ pca - m2) @ p2)


def logistic(x: np.ndarray, y: np.ndarray, l2: float):
    """A function inputs -> probabilities over the categories: multinomial logistic regression,
    L-BFGS on cross-entropy plus l2 * |W|^2; categories absent from y are never predicted."""
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    w = torch.zeros(x.shape[1], len(CATEGORIES), requires_grad=True)
    b = torch.zeros(len(CATEGORIES), requires_grad=True)
    absent = torch.full((len(CATEGORIES),), -1e4)
    absent[torch.unique(yt)] = 0.0
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b + absent, yt) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda z: torch.softmax(torch.tensor(z, dtype=torch.float32) @ w + b + absent, 1).detach().numpy()


def joined(parts: list[np.ndarray], weights: list[float]) -> np.ndarray:
    return unit(np.concatenate([np.sqrt(wt) * unit(p) for p, wt in zip(parts, weights) if wt > 0], 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", type=Path, required=True, help="a vestis eval similar --cache file")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arrays = read_parts(args.parts)
    if arrays is None or "video_features" not in arrays:
        raise SystemExit(f"{args.parts}: no parts file with CCP and video garments")
    p = Parts(arrays)
    a = p.a
    app, video_app = random_appearance(a["ccp_features"]), random_appearance(a["video_features"])
    heads, video_heads = a["ccp_category"], a["video_category"]
    head_top = np.array([CATEGORIES[i] for i in heads.argmax(1)])
    print(f"{len(p.photo)} garments; judged: {p.train.sum()} on training photos, {p.test.sum()} held out")
    print(f"garment heads' top category = true category: training photos {np.mean(head_top[p.train] == p.truth[p.train]):.3f}, "
          f"held out {np.mean(head_top[p.test] == p.truth[p.test]):.3f}")

    def colour(power: float, video: bool = False) -> np.ndarray:
        return np.power(np.maximum(a["video_color" if video else "ccp_color"], 0), power)

    weights = [APPEARANCE_WEIGHT, CATEGORY_WEIGHT, COLOR_WEIGHT]
    print("\n1. colour power at weights", weights, "(category, colour share: training photos | held out; videos)")
    for power in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0):
        e = joined([app, heads, colour(power)], weights)
        v = joined([video_app, video_heads, colour(power, True)], weights)
        print(f"  p={power:g}: {p.shares(e, p.train)} | {p.shares(e, p.test)}; videos {p.video(v)}")

    print("\n2. appearance part alone, category share (training photos cross-validated | held out)")

    def alone(make) -> tuple[float, float]:
        cv = []
        for fit, val in p.folds:
            rows = np.zeros(len(p.photo), bool)
            rows[val] = True  # the fold's garments judged among themselves
            cv.append(p.shares(make(p.root[fit], p.truth[fit])(p.root), rows)[0])
        return round(float(np.mean(cv)), 4), p.shares(make(p.root[p.train], p.truth[p.train])(p.root), p.test)[0]

    print(f"  random projection (shipped): {alone(lambda x, y: (lambda z: app))}")
    print(f"  garment heads' probabilities (the category part): {alone(lambda x, y: (lambda z: heads))}")
    for shrink in (0.1, 0.5, 0.8):
        print(f"  LDA on 1280 features, shrink {shrink}: {alone(lambda x, y: pca_lda(x, y, None, shrink))}")
    for k in (32, 64, 128, 256):
        print(f"  PCA-{k} then LDA, shrink 0.3: {alone(lambda x, y, k=k: pca_lda(x, y, k, 0.3))}")

    print("\n3. learned parts added (colour p=2; held out category, colour; videos)")
    project = pca_lda(p.root[p.train], p.truth[p.train], 64, 0.3)
    lda_part, video_lda = project(p.root), project(p.video_root)
    mean, sd = p.root[p.train].mean(0), p.root[p.train].std(0) + 1e-3

    def lr_inputs(root: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        return np.concatenate([(root - mean) / sd, 3 * probabilities], 1)

    cv_accuracy = {}
    for l2 in (1e-3, 1e-2, 3e-2):
        x = lr_inputs(p.root, heads)
        cv_accuracy[l2] = round(float(np.mean([np.mean(logistic(x[fit], p.y[fit], l2)(x[val]).argmax(1) == p.y[val])
                                         for fit, val in p.folds])), 3)
    l2 = max(cv_accuracy, key=cv_accuracy.__getitem__)
    classify = logistic(lr_inputs(p.root, heads)[p.train], p.y[p.train], l2)
    lr_part, video_lr = classify(lr_inputs(p.root, heads)), classify(lr_inputs(p.video_root, video_heads))
    print(f"  logistic regression: cross-validated accuracy {cv_accuracy} -> l2 {l2}; held-out accuracy "
          f"{np.mean(lr_part[p.test].argmax(1) == p.y[p.test]):.3f}")
    rows = {"shipped (random appearance, heads, colour)": ([app, heads, colour(2)], [video_app, video_heads, colour(2, True)],
                                                            [0.3, 0.3, 0.4]),
            "LDA appearance instead of random": ([lda_part, heads, colour(2)], [video_lda, video_heads, colour(2, True)],
                                                 [0.3, 0.3, 0.4]),
            "random and LDA appearance 0.15 each": ([app, lda_part, heads, colour(2)],
                                                    [video_app, video_lda, video_heads, colour(2, True)], [0.15, 0.15, 0.3, 0.4]),
            "heads and logistic category 0.15 each": ([app, heads, lr_part, colour(2)],
                                                      [video_app, video_heads, video_lr, colour(2, True)], [0.3, 0.15, 0.15, 0.4]),
            "logistic category instead of heads": ([app, lr_part, colour(2)], [video_app, video_lr, colour(2, True)],
                                                   [0.3, 0.3, 0.4])}
    for name, (ccp_parts, video_parts, wts) in rows.items():
        print(f"  {name}: {p.shares(joined(ccp_parts, wts), p.test)}; videos {p.video(joined(video_parts, wts))}")

    print("\n4. bounds (held out category, colour share): one-hot category + one-hot colour label, weights w, 1-w")
    colour_hot = np.stack([p.colour == c for c in COLORS], 1).astype(float)
    noise = 1e-3 * np.random.default_rng(0).standard_normal((len(p.photo), len(CATEGORIES) + len(COLORS)))
    for name, hot in (("heads' top category", np.eye(len(CATEGORIES))[heads.argmax(1)]),
                      ("true category", np.eye(len(CATEGORIES))[p.y])):
        for w in (0.5, 0.7, 1.0):
            e = unit(np.concatenate([np.sqrt(w) * hot, np.sqrt(1 - w) * colour_hot], 1) + noise)  # noise: ties at random
            print(f"  {name}, w={w}: {p.shares(e, p.test)}")


if __name__ == "__main__":
    main()
