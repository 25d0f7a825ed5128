"""The sweep's promises that need little or no training: the README's quick look completes and
exports, no trial is pruned at its last epoch, searched data keys reach the trainer, values
outside the space and mistyped study names are refused before anything is written, a study whose
trials keep failing stops, and findings read a PostgreSQL tracking store.
"""

import os
import re
import shlex
import subprocess
import sys

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweep.spec import load as load_sweep
from tests.conftest import DATA_ROOT, REPO, experiments_doc, run_cli, write_experiments


def _repo_doc(tmp) -> dict:
    """The repo's experiments.yaml as a new user has it, with the data and stores in `tmp`."""
    doc = yaml.safe_load((REPO / "experiments.yaml").read_text())
    doc["defaults"]["data"] = {"root": str(DATA_ROOT)}
    doc["defaults"]["device"] = "cpu"
    doc["defaults"]["tracking"] = {
        "uri": f"sqlite:///{tmp}/mlflow.db",
        "artifact_root": str(tmp / "artifacts"),
        "experiment": "train",
        "enabled": True,
    }
    return doc


def _quick_look() -> tuple[str, list[str]]:
    """The study name and ARGS of the README's quick look, exactly as a user copies them."""
    m = re.search(r'^make sweep STUDY=(\S+) ARGS="([^"]+)"', (REPO / "README.md").read_text(), re.M)
    assert m, 'the README shows a quick look as make sweep STUDY=... ARGS="..."'
    return m.group(1), shlex.split(m.group(2))


def test_readme_quick_look_completes_trials_and_exports(tmp_path):
    study_name, args = _quick_look()
    exp_file = write_experiments(tmp_path, _repo_doc(tmp_path))
    # what `make sweep STUDY=... ARGS=...` and `make export STUDY=...` run
    r = run_cli("sweep", "--file", exp_file, f"sweep.study_name={study_name}", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{tmp_path}/runs/optuna.db")
    n = yaml.safe_load(" ".join(a.replace("=", ": ", 1) for a in args if "n_trials" in a) or "{}")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == n.get("sweep.n_trials", len(complete)) and complete
    e = run_cli("export", "--file", exp_file, f"sweep.study_name={study_name}", cwd=tmp_path)
    assert e.returncode == 0, e.stdout + e.stderr
    assert yaml.safe_load((tmp_path / "best_config.yaml").read_text())["provenance"]["study"] == (
        study_name
    )
    # the default study was never touched
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path}/runs/optuna.db") == [study_name]


def _small_sweep(tmp, **sweep) -> str:
    doc = experiments_doc(tmp, 1, train_subset=600, test_subset=200)
    doc["sweep"] = {
        "study_name": "checks",
        "storage": f"sqlite:///{tmp}/runs/optuna.db",
        "n_trials": 2,
        "val_size": 300,
        "log_models": False,
        "enqueue_baseline": False,
        "confirm": {"k": 0},  # the confirmation has its own tests (test_confirm.py)
        "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2}},
        **sweep,
    }
    return write_experiments(tmp, doc)


def test_last_epoch_is_never_pruned_and_searched_subsets_are_used(tmp_path):
    """A pruner that prunes everything from epoch 1 on: 1-epoch trials still complete. Each
    trial trains on the data.train_subset it drew (the run's training dataset says how many)."""
    exp_file = _small_sweep(
        tmp_path,
        pruners=[{"name": "ThresholdPruner", "args": {"lower": 100.0, "n_warmup_steps": 0}}],
        space={
            "optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2},
            "data.train_subset": {"type": "categorical", "choices": [200, 400]},
        },
        enqueue=[{"data.train_subset": 200}, {"data.train_subset": 400}],
    )
    r = run_cli("sweep", "--file", exp_file, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    study = optuna.load_study(study_name="checks", storage=f"sqlite:///{tmp_path}/runs/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    for t in study.trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        (train,) = [d for d in run.inputs.dataset_inputs if d.dataset.name == "mnist-train"]
        assert yaml.safe_load(train.dataset.profile)["num_rows"] == t.params["data.train_subset"]


@pytest.mark.parametrize(
    "sweep, says",
    [
        (
            {"space": {"batch_size": {"type": "categorical", "choices": [64, 256]}}},
            "does not hold the baseline (s7_file3)'s value 128",
        ),
        ({"enqueue": [{"optimizer.lr": 0.5}]}, "does not hold sweep.enqueue[0]'s value 0.5"),
        (
            {"space": {"data.root": {"type": "categorical", "choices": ["a", "b"]}}},
            "'sweep.space.data.root' cannot be searched",
        ),
    ],
    ids=["baseline-outside-choices", "enqueued-outside-range", "data-root-searched"],
)
def test_a_space_the_study_cannot_run_is_refused_before_anything_is_written(tmp_path, sweep, says):
    enqueue_baseline = "batch_size" in str(sweep)
    exp_file = _small_sweep(tmp_path, enqueue_baseline=enqueue_baseline, **sweep)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_cli("sweep", "--file", exp_file, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert says in line and "Traceback" not in r.stderr, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/, no mlflow.db


def test_export_never_creates_a_storage_or_a_study(tmp_path):
    exp_file = _small_sweep(tmp_path)
    r = run_cli("export", "--file", exp_file, cwd=tmp_path)
    assert r.returncode == 2 and "run `make sweep` first" in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()
    storage = f"sqlite:///{tmp_path}/runs/optuna.db"
    (tmp_path / "runs").mkdir()
    optuna.create_study(study_name="checks", storage=storage)
    r = run_cli("export", "--file", exp_file, "sweep.study_name=chekcs", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "no study 'chekcs'" in line and "studies there: checks" in line, line
    assert optuna.get_all_study_names(storage) == ["checks"]


def test_a_study_whose_trials_keep_failing_stops(tmp_path):
    """Every trial diverges (a weight decay of 1e30 blows the weights up in one step): the sweep
    stops after 2 in a row with the reason, exit 1, instead of failing trials forever (they never
    count toward n_trials)."""
    exp_file = _small_sweep(tmp_path, max_consecutive_failures=2)
    r = run_cli("sweep", "--file", exp_file, "optimizer.weight_decay=1e30", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    line = r.stderr.strip().splitlines()[-1]  # after the progress bar's lines
    assert line.startswith("error: the last 2 trials failed") and "diverged" in line, line
    assert "Traceback" not in r.stderr
    study = optuna.load_study(study_name="checks", storage=f"sqlite:///{tmp_path}/runs/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2


def test_the_trainer_builds_no_float64_tensor(small_data):
    """Apple's MPS has no float64: the trainer's device path must not create any."""
    from torch.overrides import TorchFunctionMode

    from harness.config import TrainConfig
    from harness.trainer import train

    class Dtypes(TorchFunctionMode):
        seen: set = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if hasattr(out, "dtype"):
                self.seen.add(out.dtype)
            return out

    import torch

    cfg = TrainConfig(epochs=1, progress=False, device="cpu", batch_size=256)
    tr, te = small_data
    with Dtypes() as mode:
        train(cfg, tr, {"test": te})
    assert torch.float64 not in mode.seen


PG_URL = os.environ.get("S7_TEST_POSTGRES_URL")


@pytest.fixture
def pg_schema():
    """A PostgreSQL URL into a schema of its own: MLflow and Optuna both keep their schema
    version in a table named alembic_version, so they must not share one schema."""
    from sqlalchemy import create_engine, text

    from harness.urls import with_driver

    engine = create_engine(with_driver(PG_URL))
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA IF EXISTS s7_findings_test CASCADE"))
        c.execute(text("CREATE SCHEMA s7_findings_test"))
    yield PG_URL + "?options=-csearch_path%3Ds7_findings_test"
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA IF EXISTS s7_findings_test CASCADE"))
    engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="S7_TEST_POSTGRES_URL is not set (.ci/run sets it)")
def test_findings_read_a_postgresql_tracking_store(tmp_path, pg_schema):
    """`postgresql://` names no driver; SQLAlchemy's default is one we do not install. Every
    other command maps it to psycopg2; findings opened MLflow on the raw URL and failed."""
    exp_file = write_experiments(tmp_path, _repo_doc(tmp_path))
    r = subprocess.run(
        [sys.executable, "-m", "cli.findings", "--file", exp_file, "--quick", "--report-only"]
        + ["--tracking-uri", pg_schema],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "psycopg" not in r.stderr


def test_a_library_error_quoting_a_password_is_stored_masked(tmp_path, monkeypatch):
    """MLflow's exceptions quote the tracking URL with its credentials; the trial's fail_reason
    (Optuna attribute, MLflow tag, trials.csv) keeps only the masked text."""
    from sweep import objective, study
    from sweep.loop import TrialsKeepFailing

    def upload_fails(*args, **kwargs):
        raise RuntimeError("API request to http://alice:s3cret-pw@tracking:5000/api failed")

    monkeypatch.setattr(objective, "train", upload_fails)
    exps = load_sweep(_small_sweep(tmp_path, max_consecutive_failures=1, log_models=False))
    with pytest.raises(TrialsKeepFailing, match="alice:\\*\\*\\*@tracking"):
        study.run_sweep(exps, exps.section("sweep"))
    (trial,) = optuna.load_study(
        study_name="checks", storage=f"sqlite:///{tmp_path}/runs/optuna.db"
    ).trials
    assert "alice:***@tracking" in trial.user_attrs["fail_reason"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert "alice:***@tracking" in run.data.tags["fail_reason"]
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    table = client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path))
    stored = str(trial.user_attrs) + str(run.data.tags) + open(table).read()
    assert "s3cret-pw" not in stored
