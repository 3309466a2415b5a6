"""What several of these scratch scripts share: the upper-category labels of the cached crops' rows, and
a network's outputs for crops seen plain and mirrored."""
import torch

from vision.garment_heads import UPPER_CATEGORIES


def upper_labels(rows: list[dict], clothing_rows: list[dict]):
    """(CCP upper label, train mask, held-out mask, the stage crop's true majority label or -1, the
    product photos' upper label), as tensors."""
    upper = torch.tensor([r["upper"] for r in rows])
    train = torch.tensor([r["split"] == "train" for r in rows])
    stage_truth = torch.tensor([UPPER_CATEGORIES.index(r["stage_upper_truth"])
                                if r["stage_upper_truth"] in UPPER_CATEGORIES else -1 for r in rows])
    return upper, train, ~train, stage_truth, torch.tensor([r["upper"] for r in clothing_rows])


def both_views(network, crops: torch.Tensor) -> torch.Tensor:
    """(n, 2, ...): the network's output for each crop (index 0) and its mirror image (index 1), one call."""
    both = network(torch.cat([crops, torch.flip(crops, dims=[3])]))
    return torch.stack([both[:len(crops)], both[len(crops):]], dim=1)
