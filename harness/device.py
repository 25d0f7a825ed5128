"""Pick the training device: CUDA when present, else Apple's MPS, else the CPU; overridable."""

import torch

from harness.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` -> cuda / mps / cpu, in that order. An explicit device that is absent is a `UserError`."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device={name!r} requested but CUDA is not available here; use device=auto"
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device='mps' requested but MPS is not available here; use device=auto")
    return torch.device(name)
