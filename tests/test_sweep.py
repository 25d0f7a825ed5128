"""`make sweep` end to end on a small subset of the real MNIST, checked as a user would check it:
Optuna states, MLflow parent and child runs, metric histories, artifacts, Ctrl-C, resume (without
replaying earlier proposals), a study that refuses other settings, export.
"""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import experiments_doc, run_cli, write_experiments

EPOCHS = 3
N_TRIALS = 6


def _write_experiments(tmp) -> str:
    doc = experiments_doc(tmp, EPOCHS, train_subset=2000, test_subset=1000)
    doc["sweep"] = {
        "study_name": "test-study",
        "storage": f"sqlite:///{tmp}/optuna.db",
        "n_trials": N_TRIALS,
        "confirm": {"k": 0},  # the confirmation has its own tests (test_confirm.py)
        "val_size": 1000,
        "sampler": {"name": "tpe", "seed": 0},
        "pruners": [{"name": "ThresholdPruner", "args": {"lower": 30.0, "n_warmup_steps": 2}}],
        "enqueue": [
            {"optimizer.lr": 10.0},  # NaN loss in epoch 1: must fail, and the study go on
            {"optimizer.lr": 0.01, "batch_size": 512},  # 8 slow steps by epoch 2: the floor prunes
        ],
        "space": {
            "optimizer.lr": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
            "batch_size": {"type": "categorical", "choices": [64, 128, 512]},
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.1},
        },
    }
    return write_experiments(tmp, doc)


FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def _sweep_cmd(exp_file: str) -> list[str]:
    return [sys.executable, "-m", "cli", "sweep", "--file", exp_file]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Interrupt a sweep mid-trial with Ctrl-C, resume it part way, then to the end, run it once
    more, export."""
    tmp = tmp_path_factory.mktemp("sweep")
    exp_file = _write_experiments(tmp)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Started as a background job of a script is (SIGINT ignored, which Python inherits): a
    # sweep must still end its trial cleanly on SIGINT.
    proc = subprocess.Popen(
        _sweep_cmd(exp_file),
        cwd=tmp,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_ignore_sigint,
    )
    storage = f"sqlite:///{tmp}/optuna.db"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # trial 0 reports its first epoch
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name="test-study", storage=storage).trials
        except KeyError:
            continue
        if trials and trials[0].intermediate_values:
            break
    proc.send_signal(signal.SIGINT)
    interrupted_out = proc.communicate(timeout=120)[0]
    interrupted_rc = proc.returncode
    after_interrupt = optuna.load_study(study_name="test-study", storage=storage).trials

    part = subprocess.run(
        [*_sweep_cmd(exp_file), "--n-trials", str(N_TRIALS - 2)],
        cwd=tmp,
        env=env,
        text=True,
        capture_output=True,
        timeout=900,
    )
    resumed = subprocess.run(
        _sweep_cmd(exp_file), cwd=tmp, env=env, text=True, capture_output=True, timeout=900
    )
    again = subprocess.run(
        _sweep_cmd(exp_file), cwd=tmp, env=env, text=True, capture_output=True, timeout=300
    )
    export = run_cli("export", "--file", exp_file, cwd=tmp)
    return {
        "tmp": tmp,
        "exp_file": exp_file,
        "storage": storage,
        "interrupted": (interrupted_rc, interrupted_out, after_interrupt),
        "part": part,
        "resumed": resumed,
        "again": again,
        "export": export,
        "study": optuna.load_study(study_name="test-study", storage=storage),
        "client": MlflowClient(f"sqlite:///{tmp}/mlflow.db"),
    }


def test_ctrl_c_ends_the_running_trial_cleanly(swept):
    rc, out, trials = swept["interrupted"]
    assert rc == 130, out
    assert "make sweep` resumes" in out and "Traceback" not in out
    # trial 0 ended as failed and is queued again behind the two enqueued trials
    states = [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING, TrialState.WAITING]
    assert [t.state for t in trials] == states
    assert trials[3].user_attrs["retry_of"] == 0
    assert trials[0].user_attrs["fail_reason"] == "interrupted (Ctrl-C)"
    run = swept["client"].get_run(trials[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["state"] == "FAIL"


def test_resumed_study_reaches_its_total_of_finished_trials(swept):
    for run in (swept["part"], swept["resumed"]):
        assert run.returncode == 0, run.stdout + run.stderr
    study = swept["study"]
    states = [t.state for t in study.trials]
    finished = [s for s in states if s in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == N_TRIALS
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    # the baseline (File3's values) was enqueued first; interrupted, it ran again on resume
    baseline = {"optimizer.lr": 0.1, "batch_size": 128, "model.dropout": 0.05}
    assert study.trials[0].params == baseline and study.trials[0].state == TrialState.FAIL
    assert study.trials[3].params == baseline and study.trials[3].state in FINISHED_STATES
    diverged = [t for t in study.trials if t.params.get("optimizer.lr") == 10.0]
    assert [t.state for t in diverged] == [TrialState.FAIL]
    assert "diverged" in diverged[0].user_attrs["fail_reason"]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert any(
        t.params
        == {"optimizer.lr": 0.01, "batch_size": 512, "model.dropout": t.params["model.dropout"]}
        for t in pruned
    )
    for t in study.trials:
        if t.state == TrialState.COMPLETE:
            assert sorted(t.intermediate_values) == list(range(1, EPOCHS + 1))
            assert "test_acc" in t.user_attrs  # reported, never the objective


def test_a_resume_continues_the_search_instead_of_replaying_it(swept):
    """Three processes sampled trials (interrupted, part way, to the end): no two sampled trials
    share their parameters (each process used to restart the seeded sampler's stream)."""
    sampled = [t for t in swept["study"].trials if t.number >= 4 and t.params]  # 0-3: enqueued
    assert len(sampled) >= 3
    keys = [tuple(sorted(t.params.items())) for t in sampled]
    assert len(set(keys)) == len(keys), keys


def test_a_study_refuses_other_settings_in_one_line(swept):
    """Trials of another epoch count would mix into the study's medians and its best: refused,
    naming the key and how to start a separate study; nothing is added to the study."""
    before = len(swept["study"].trials)
    r = run_cli("sweep", "--file", swept["exp_file"], "epochs=2", cwd=swept["tmp"])
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "train.epochs: 3 -> 2" in line and "sweep.study_name=" in line, line
    study = optuna.load_study(study_name="test-study", storage=swept["storage"])
    assert len(study.trials) == before
    # a new name is a new study; the old one is untouched
    assert "test-study" in optuna.get_all_study_names(swept["storage"])


def test_second_run_resumes_instead_of_starting_over(swept):
    again = swept["again"]
    assert again.returncode == 0, again.stderr
    assert f"{N_TRIALS}/{N_TRIALS} finished trials" in again.stdout
    assert "nothing to do" in again.stdout
    assert len(swept["study"].trials) == len(
        optuna.load_study(study_name="test-study", storage=swept["storage"]).trials
    )


def test_mlflow_has_one_parent_and_a_terminal_child_per_trial(swept):
    client, study = swept["client"], swept["study"]
    exp = client.get_experiment_by_name("test-study")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("role") == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(study.trials)
    assert all(r.info.status != "RUNNING" for r in runs)
    by_trial = {int(r.data.tags["trial_number"]): r for r in children}
    expect = {
        TrialState.COMPLETE: ("FINISHED", "COMPLETE"),
        TrialState.PRUNED: ("KILLED", "PRUNED"),
        TrialState.FAIL: ("FAILED", "FAIL"),
    }
    for t in study.trials[1:]:  # trial 0 was the Ctrl-C one (KILLED, checked above)
        run = by_trial[t.number]
        assert (run.info.status, run.data.tags["state"]) == expect[t.state], t.number
        assert run.data.params["optimizer.lr"] == str(t.params["optimizer.lr"])
        assert run.data.params["epochs"] == str(EPOCHS) and run.data.tags["device"] == "cpu"
        assert run.data.tags["git_commit"] and run.data.tags["torch_version"]
        if t.state == TrialState.FAIL:
            assert "diverged" in run.data.tags["fail_reason"]
            continue
        epochs = EPOCHS if t.state == TrialState.COMPLETE else int(run.data.tags["pruned_at_epoch"])
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert steps == list(range(1, epochs + 1)), (t.number, key)
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"model_summary.txt", "curves.png"} <= arts
        if t.state == TrialState.COMPLETE:
            assert "test_acc" in run.data.metrics
            assert client.search_logged_models(
                [exp.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
            )
    parent_arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "trials.csv",
        "optimization_history.png",
        "parallel_coordinate.png",
        "slice_batch_size.png",
    } <= parent_arts
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    assert not (swept["tmp"] / "mlruns").exists()


def test_export_writes_a_retrainable_best_config(swept):
    export, study, tmp = swept["export"], swept["study"], swept["tmp"]
    assert export.returncode == 0, export.stderr
    doc = yaml.safe_load((tmp / "best_config.yaml").read_text())
    best = study.best_trial
    assert doc["provenance"]["trial"] == best.number
    assert doc["provenance"]["study"] == "test-study"
    assert doc["provenance"]["mlflow_run_id"] == best.user_attrs["mlflow_run_id"]
    assert doc["provenance"]["val_acc"] == pytest.approx(best.value, abs=1e-4)
    assert doc["searched"] == best.params
    assert doc["train"]["optimizer"]["lr"] == best.params["optimizer.lr"]
    assert doc["train"]["data"]["train_subset"] is None  # retrain on all 60k
    assert doc["train"]["device"] == "auto"  # not the device the trial happened to run on
    table = (tmp / "trials.csv").read_text().splitlines()
    assert len(table) == len(study.trials) + 1
    r = run_cli(
        "train",
        "--config",
        str(tmp / "best_config.yaml"),
        "epochs=1",
        "data.train_subset=1000",
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr
    client = swept["client"]
    (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run.data.tags["source_trial"] == str(best.number)
    assert run.data.tags["source_mlflow_run_id"] == best.user_attrs["mlflow_run_id"]
    assert "test_acc" in run.data.metrics
