"""Batch RandomAffine: the same geometry as torchvision's affine, black outside, per-image draws."""

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from harness.augment import BLACK, affine_theta, random_affine


def _apply(x, angle, tx, ty, scale):
    theta = affine_theta(
        torch.tensor([angle]),
        torch.tensor([tx]),
        torch.tensor([ty]),
        torch.tensor([scale]),
        x.shape[-1],
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - BLACK, grid, mode="nearest", align_corners=False) + BLACK


def test_whole_pixel_shift_fills_black(small_data):
    x = small_data[1].x[:1]
    out = _apply(x, 0.0, 3.0, -2.0, 1.0)
    # moved right 3 and up 2; values equal up to float rounding of (x - fill) + fill
    assert torch.allclose(out[..., :-2, 3:], x[..., 2:, :-3], atol=1e-6)
    assert torch.allclose(out[..., :, :3], torch.tensor(BLACK)) and torch.allclose(
        out[..., -2:, :], torch.tensor(BLACK)
    )


def test_matches_torchvision_affine_nearest(small_data):
    x = small_data[1].x[:1]
    for angle, tx, ty, scale in [(17.0, 2, -3, 1.07), (-12.5, -1, 1, 0.92), (5.0, 0, 3, 1.0)]:
        ours = _apply(x, angle, float(tx), float(ty), scale)
        ref = TF.affine(
            x,
            angle,
            [tx, ty],
            scale,
            [0.0, 0.0],
            interpolation=InterpolationMode.NEAREST,
            fill=[BLACK],
        )
        agree = (ours - ref).abs().lt(1e-5).float().mean().item()
        assert agree > 0.999, (angle, tx, ty, scale, agree)


def test_random_affine_draws_per_image_and_is_seeded(small_data):
    x = small_data[1].x[:64]
    a = random_affine(x, 20.0, 0.1, (0.9, 1.1), torch.Generator().manual_seed(3))
    b = random_affine(x, 20.0, 0.1, (0.9, 1.1), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    same = random_affine(
        x[:1].expand(64, -1, -1, -1), 20.0, 0.1, (0.9, 1.1), torch.Generator().manual_seed(4)
    )
    assert len({tuple(v.flatten()[::7].tolist()) for v in same}) > 60  # one image, 64 draws
    assert a.shape == x.shape and a.min() >= BLACK - 1e-6


def test_disabled_ranges_are_the_identity(small_data):
    x = small_data[1].x[:8]
    out = random_affine(x, 0.0, 0.0, (1.0, 1.0), torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-6)
