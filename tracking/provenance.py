"""What ran: git commit, library versions and device, as MLflow tags."""

import platform
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "absent"


@cache
def git_commit() -> str:
    """HEAD's hash, with `-dirty` when the work tree has uncommitted changes; `unknown` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance_tags(device: str) -> dict[str, str]:
    """Tags every run carries: device, git commit, Python and library versions, host CPU."""
    tags = {
        "device": device,
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "machine": platform.machine(),
    }
    for pkg in ("torch", "torchvision", "optuna", "mlflow", "numpy"):
        tags[f"{pkg}_version"] = _version(pkg)
    return tags
