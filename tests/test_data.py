"""Offline MNIST: the canonical files, what happens to corrupt ones, and the torchvision reader."""

import os
import shutil

import pytest
from torchvision.datasets import MNIST

from harness.data import MD5, ensure_mnist, load_split, md5, raw_dir, train_val_split
from harness.errors import UserError
from tests.conftest import run_cli


def test_provisioned_files_have_the_canonical_md5s(mnist_root):
    for name, digest in MD5.items():
        assert md5(raw_dir(mnist_root) / name) == digest


def test_torchvision_reads_them_without_download(mnist_root):
    train, test = MNIST(str(mnist_root), train=True), MNIST(str(mnist_root), train=False)
    assert len(train) == 60000 and len(test) == 10000
    assert train.targets[:5].tolist() == [5, 0, 4, 1, 9]  # the canonical first labels


def test_normalised_like_the_seed(mnist_root):
    x = load_split(mnist_root, False).x
    assert x.shape == (10000, 1, 28, 28)
    assert abs(x.min().item() - (0 - 0.1307) / 0.3081) < 1e-6  # black pixels


@pytest.fixture
def copy_root(tmp_path, mnist_root):
    dst = raw_dir(tmp_path)
    dst.mkdir(parents=True)
    for name in MD5:
        shutil.copy2(raw_dir(mnist_root) / name, dst / name)
    return tmp_path


def test_a_flipped_byte_is_caught_with_the_file_and_the_fix(copy_root):
    path = raw_dir(copy_root) / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte: corrupt or truncated.*delete it"):
        ensure_mnist(copy_root)
    assert path.read_bytes() == bytes(data)  # reported, not overwritten


def test_a_truncated_file_fails_make_data_with_exit_2(copy_root):
    path = raw_dir(copy_root) / "train-images-idx3-ubyte"
    with open(path, "r+b") as f:
        f.truncate(1000)
    r = run_cli("data", "--root", str(copy_root))
    assert r.returncode == 2
    assert "train-images-idx3-ubyte: corrupt or truncated" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_files_are_rebuilt_and_good_ones_left_alone(copy_root):
    raw = raw_dir(copy_root)
    (raw / "train-labels-idx1-ubyte").unlink()
    keep = raw / "t10k-images-idx3-ubyte"
    os.utime(keep, (1, 1))
    ensure_mnist(copy_root)
    assert md5(raw / "train-labels-idx1-ubyte") == MD5["train-labels-idx1-ubyte"]
    assert keep.stat().st_mtime == 1  # a good copy is never rewritten
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]  # no temp files left


def test_validation_split_is_fixed_and_disjoint(mnist_root):
    full = load_split(mnist_root, True)
    tr1, va1 = train_val_split(full, 10000, seed=0)
    tr2, va2 = train_val_split(full, 10000, seed=0)
    assert len(tr1) == 50000 and len(va1) == 10000
    assert (va1.y == va2.y).all() and (va1.x == va2.x).all() and (tr1.y == tr2.y).all()
