"""The tree's floors: each package imports only the packages below it, and no module imports
itself round a circle, even through an import inside a function. `make train` never loads optuna.

Floors, bottom up: model_zoo (the network), harness (the core: config, data, trainer,
statistics), tracking (MLflow), sweep (Optuna), findings (the seed's claims), cli (the command line).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, quick_overrides

FLOORS = {"model_zoo": 0, "harness": 1, "tracking": 2, "sweep": 3, "findings": 4, "cli": 5}


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    base = REPO.joinpath(*module.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every project module `path` imports, anywhere in it (functions and TYPE_CHECKING too):
    `from pkg import sub` counts as `pkg.sub` when `sub` is a module, else as `pkg`."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if _exists(f"{node.module}.{a.name}") else node.module
                for a in node.names
            ]
        else:
            continue
        out |= {n for n in names if n.split(".")[0] in FLOORS}
    return out


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in FLOORS for p in sorted((REPO / pkg).glob("*.py"))]
    return {_module(p): _imports(p) - {_module(p)} for p in files}


def test_every_package_has_a_floor():
    ours = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert ours == set(FLOORS), f"place the new package on a floor: {ours ^ set(FLOORS)}"


def test_no_package_imports_a_floor_above_it():
    upward = [
        f"{mod} imports {dep}"
        for mod, deps in _graph().items()
        for dep in deps
        if FLOORS[dep.split(".")[0]] > FLOORS[mod.split(".")[0]]
    ]
    assert upward == []


def test_no_import_circles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph.get(mod, ())):
            if state.get(dep) == 1:
                circles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert circles == []


def test_make_train_never_imports_optuna(tmp_path):
    over = quick_overrides(tmp_path)
    r = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "cli",
            "train",
            "--file",
            str(REPO / "experiments.yaml"),
            "epochs=1",
            "progress=false",
            "device=cpu",
            f"data.root={over['data']['root']}",
            "data.train_subset=500",
            "data.test_subset=500",
            f"tracking.uri={over['tracking']['uri']}",
            f"tracking.artifact_root={over['tracking']['artifact_root']}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "best test accuracy" in r.stdout  # it trained
    # into the store it was given and nowhere else (no process-wide MLflow default such as
    # ./mlruns or ./mlflow.db beside it)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "mlflow.db"]
    loaded = {ln.rsplit("|", 1)[-1].strip() for ln in r.stderr.splitlines() if "import time:" in ln}
    assert "mlflow" in loaded  # the run is tracked
    assert not {m for m in loaded if m.split(".")[0] == "optuna"}
