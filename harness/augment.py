"""The seed's RandomAffine, drawn per image and applied to a whole batch on its device.

torchvision's RandomAffine(degrees=20, translate=(0.1, 0.1), scale=(0.9, 1.1)) on a PIL image
draws one angle, one whole-pixel translation and one scale per image and resamples with nearest
interpolation, filling the outside with black. Here the same draws are made for every image of
a batch at once and applied with one `grid_sample`, on whatever device the batch lives on.
The fill is black in *normalised* units, (0 - mean) / std, since the data are normalised once.
"""

import math

import torch
import torch.nn.functional as F

from harness.data import MEAN, STD

BLACK = (0.0 - MEAN) / STD


def affine_theta(
    angle_deg: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, scale: torch.Tensor, size: int
) -> torch.Tensor:
    """(B, 2, 3) sampling matrices for `affine_grid` (align_corners=False) of a square image.

    Same geometry as torchvision's `F.affine` on tensors, angle for angle (rotation about the centre,
    translation in pixels, scale): output pixel p samples input pixel A (p - t), A = R(angle)^T / scale.
    """
    rot = angle_deg * (math.pi / 180.0)
    cos, sin = torch.cos(rot) / scale, torch.sin(rot) / scale
    a = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (B, 2, 2)
    t = torch.stack([tx, ty], -1).to(a.dtype) * (2.0 / size)  # pixels -> normalised units
    return torch.cat([a, -(a @ t.unsqueeze(-1))], dim=-1)


def random_affine(
    x: torch.Tensor,
    degrees: float,
    translate: float,
    scale: tuple[float, float],
    generator: torch.Generator,
    fill: float = BLACK,
) -> torch.Tensor:
    """Per-image random rotation/translation/scale of a (B, C, H, W) batch, nearest interpolation.

    Translations are whole pixels in [-round(translate*W), round(translate*W)], as torchvision draws
    them; angles are uniform in [-degrees, degrees]; scales uniform in `scale`.
    """
    b, _, h, w = x.shape
    u = torch.rand(b, 4, generator=generator, device=x.device)
    angle = (u[:, 0] * 2 - 1) * degrees
    max_dx, max_dy = translate * w, translate * h
    tx = torch.round((u[:, 1] * 2 - 1) * max_dx)
    ty = torch.round((u[:, 2] * 2 - 1) * max_dy)
    s = scale[0] + u[:, 3] * (scale[1] - scale[0])
    theta = affine_theta(angle, tx, ty, s, w)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x - fill, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out + fill
