"""Pick the torch device a worker's stages run on."""

from __future__ import annotations


def resolve_device(requested: str = "auto"):
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"vision.device is {requested!r} but this worker has no CUDA device")
    return device
