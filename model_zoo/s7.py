"""The seed's Model_7: an 8,000-parameter MNIST CNN (no biases, no padding), dropout p as an argument.

Layer order follows the seed's notebook exactly (Conv -> ReLU -> BatchNorm -> Dropout), so that
`torchsummary`-style tables line up row for row with the seed's README. Dropout is
`model_zoo.layers.Dropout`: the same distribution as `nn.Dropout` at a quarter of its mask's cost.
"""

import torch
import torch.nn.functional as F
from torch import nn

from model_zoo.layers import Dropout
from model_zoo.registry import register_model


def _conv_block(c_in: int, c_out: int, dropout: float) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, bias=False),
        nn.ReLU(),
        nn.BatchNorm2d(c_out),
        Dropout(dropout),
    ]


class S7Net(nn.Module):
    """28x28x1 -> 10 log-probabilities; receptive field 28x28 at the output."""

    def __init__(self, dropout: float = 0.05):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_block(1, 8, dropout),  # 26x26x8
            *_conv_block(8, 14, dropout),  # 24x24x14
            nn.Conv2d(14, 10, 1, bias=False),  # transition: 24x24x10
            nn.MaxPool2d(2, 2),  # 12x12x10
            *_conv_block(10, 14, dropout),  # 10x10x14
            *_conv_block(14, 16, dropout),  # 8x8x16
            *_conv_block(16, 20, dropout),  # 6x6x20
            nn.AvgPool2d(6),  # 1x1x20
            nn.Conv2d(20, 16, 1, bias=False),
            nn.Conv2d(16, 10, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.features(x).flatten(1), dim=1)


@register_model
def s7_net(dropout: float = 0.05) -> nn.Module:
    """The seed's Model_7 (S7_File1..3): 8,000 parameters."""
    return S7Net(dropout=dropout)
