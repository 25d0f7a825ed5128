"""Shared fixtures: the real MNIST (provisioned by `make data`), tiny subsets of it, temp stores."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.config import Experiments
from harness.data import ensure_mnist, load_split, subset

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO / "data"

# What the command line sets for its process (cli.errors.MLFLOW_ENV), for tests that call the
# libraries in this process.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# The stores' environment variables win over experiments.yaml; a developer's must not send the
# tests' runs to a real store. Tests that need them set them themselves.
for _name in ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    ensure_mnist(DATA_ROOT)
    return DATA_ROOT


@pytest.fixture(scope="session")
def small_data(mnist_root):
    """2,000 training and 1,000 test images of the real MNIST, fixed subsets."""
    return (subset(load_split(mnist_root, True), 2000), subset(load_split(mnist_root, False), 1000))


@pytest.fixture(scope="session")
def experiments() -> Experiments:
    from findings.spec import load

    return load(REPO / "experiments.yaml")  # every section bound, as the commands read it


def quick_overrides(tmp: Path, **extra) -> dict:
    """Overrides for a fast run on a subset of the real data, tracked in a temp MLflow store."""
    over = {
        "epochs": 1,
        "progress": False,
        "device": "cpu",
        "data": {"root": str(DATA_ROOT), "train_subset": 2000, "test_subset": 1000},
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "artifact_root": str(tmp / "artifacts")},
    }
    over.update(extra)
    return over


def experiments_doc(tmp: Path, epochs: int, train_subset: int, test_subset: int) -> dict:
    """The repo's experiments.yaml with defaults for a small CPU run on real MNIST subsets,
    tracked in `tmp` (tests then set their own `sweep:` section and write it there)."""
    doc = yaml.safe_load((REPO / "experiments.yaml").read_text())
    doc["defaults"]["data"] = {
        "root": str(DATA_ROOT),
        "train_subset": train_subset,
        "test_subset": test_subset,
    }
    doc["defaults"]["tracking"] = {
        "uri": f"sqlite:///{tmp}/mlflow.db",
        "artifact_root": str(tmp / "artifacts"),
        "experiment": "train",
        "enabled": True,
    }
    doc["defaults"]["epochs"] = epochs
    doc["defaults"]["device"] = "cpu"
    return doc


def write_experiments(tmp: Path, doc: dict) -> str:
    path = tmp / "experiments.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def dead_worker() -> str:
    """`host:pid` of a process of this machine that has exited and been reaped: a dead owner."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid no longer exists
    return f"{socket.gethostname()}:{gone.pid}"


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m cli ARGS` the way `make` does, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1800,  # a hang guard: a training sharing the 2 cores slowed a sweep 20x
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
