"""Layers our networks share: a dropout whose mask costs a quarter of `nn.Dropout`'s on a CPU.

`nn.Dropout` draws its mask with `bernoulli_`, one 32-bit Mersenne Twister draw and a float
conversion per element: on this 2-core CPU that was 30% of a training step of the seed's network
(`torch.profiler`, batch 128). Here one 32-bit draw feeds two elements: its halves are two
uniform 16-bit lanes, and an element is dropped when its lane falls below round(p * 65536), so
an element is dropped with probability round(p * 65536) / 65536 (0.0500031 for p = 0.05;
`nn.Dropout`'s own float draw has 24 bits), independently of every other (to within 2**-32:
the 32-bit draw is reduced modulo 2**32 - 1). The draws come from
torch's default generator, so the same seed gives the same run. The stream differs from
`nn.Dropout`'s.
"""

import torch
from torch import nn

LANES = 65536  # values of one 16-bit lane


class Dropout(nn.Module):
    """Zero each element with probability ~p in training and scale the rest by 1 / (1 - p);
    the identity in eval mode or at p = 0 (no draw at all)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * LANES) - LANES // 2  # on the lanes read as signed int16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == -(LANES // 2):
            return x
        n = x.numel()
        bits = torch.empty((n + 1) // 2, dtype=torch.int32, device=x.device)
        # a range below 2**32 takes one 32-bit draw per value (2**32 would take a 64-bit one)
        lanes = bits.random_(-(2**31), 2**31 - 1).view(torch.int16)[:n].view(x.shape)
        keep = (lanes >= self.threshold).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
