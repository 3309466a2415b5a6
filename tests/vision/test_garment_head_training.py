"""vision.training.train_garment_heads: a context head's rows read the garment's features followed by
those of its person's crop from the same photo and view; a product photo is its own context."""

from __future__ import annotations

import torch

from vision.training.train_garment_heads import head_data


def test_context_rows_pair_each_garment_with_its_persons_crop_of_the_same_view():
    rows = [
        dict(source="ccp", image="0001", split="train", head="upper", upper=4, lower=-1, sleeve=2, mirrored=False),
        dict(source="ccp", image="0001", split="train", head="lower", upper=-1, lower=1, sleeve=-1, mirrored=False),
        dict(source="ccp", image="0001", split="train", head="person", upper=-1, lower=-1, sleeve=-1, mirrored=False),
        dict(source="ccp", image="0001", split="train", head="upper", upper=4, lower=-1, sleeve=2, mirrored=True),
        dict(source="ccp", image="0001", split="train", head="lower", upper=-1, lower=1, sleeve=-1, mirrored=True),
        dict(source="ccp", image="0001", split="train", head="person", upper=-1, lower=-1, sleeve=-1, mirrored=True),
        dict(source="clothing", image="abc", split="train", head="upper", upper=0, lower=-1, sleeve=1),
    ]
    features = torch.arange(len(rows), dtype=torch.float32).unsqueeze(1).repeat(1, 3)  # row k: all k
    x, y, train, weight, kept = head_data(features, rows, "upper", context=True)
    assert x.shape == (3, 6) and y.tolist() == [4, 4, 0]
    assert x[:, 0].tolist() == [0, 3, 6]  # the garments' own features
    assert x[:, 3].tolist() == [2, 5, 6]  # then their person's, same view; the product photo's own
    plain, _, _, _, _ = head_data(features, rows, "upper")
    assert plain.shape == (3, 3)
    assert head_data(features, rows, "lower", context=True)[0][:, 3].tolist() == [2, 5]
