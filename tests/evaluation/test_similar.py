"""The measures of `vestis eval similar` on hand-made vectors, where the right answer is known."""

from __future__ import annotations

import numpy as np

from evaluation.similar import neighbour_shares, same_person_first
from labels import Embedding, RuleSet
from tests.indexer.test_search import black_jacket_blue_jeans, frames, red_striped_dress

SPACE = RuleSet("garment-embedding", "test-1")


def test_neighbour_shares_and_their_random_baseline():
    # two categories, three photos each; a vector per photo pointing at its category's axis
    vectors = np.array([[1, 0], [1, 0.1], [1, -0.1], [0, 1], [0.1, 1], [-0.1, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    groups = np.arange(6)
    categories = np.array(["dress"] * 3 + ["skirt"] * 3)
    report = neighbour_shares(vectors, groups, {"category": categories}, top=2)
    assert report["category"]["top10_same"] == 1.0
    assert report["category"]["random"] == 0.4  # 2 of the 5 other photos share the category
    # the same photo never counts as a neighbour of itself
    report = neighbour_shares(vectors, np.array([0, 0, 0, 1, 1, 1]), {"category": categories}, top=2)
    assert report["category"]["top10_same"] == 0.0


def test_same_person_first_over_tracks():
    def with_vectors(labels, seeds):
        for frame in labels:
            for person in frame.persons:
                for k, garment in enumerate(person.garments):
                    garment.embedding = Embedding.made_by(SPACE, np.random.default_rng(seeds[k]).standard_normal(8))
        return labels

    # a dress for 3 s, then (after a gap that ends the track) a man in a jacket for 3 s
    labels = with_vectors(frames("v", [0.0, 1.0, 2.0], red_striped_dress()), [1]) + \
        with_vectors(frames("v", [10.0, 11.0, 12.0], black_jacket_blue_jeans()), [2, 3])
    result = same_person_first(labels)
    assert result["tracks"] == 2 and result["queries"] == 9
    assert result["same_person_first"] == 1.0
    assert 0 < result["random"] < 1
