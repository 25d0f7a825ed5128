"""Scale: several workers on one study, killed workers, stores shared by many machines, hostile
input. Small subsets of the real MNIST, real Optuna and MLflow stores in temp folders; the
PostgreSQL test runs where S7_TEST_POSTGRES_URL names a server (`.ci/run` starts one).
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.errors import UserError
from harness.processes import pid_space
from harness.urls import with_driver
from sweep import grid
from sweep.loop import run_trials
from sweep.objective import suggest
from sweep.recovery import Requeue, fail_dead_here
from sweep.space import grid_values
from sweep.spec import load as load_sweep
from sweep.storage import open_storage
from sweep.study import TrialRuns, open_study
from sweep.workers import plan_workers
from tests.conftest import DATA_ROOT, dead_worker, experiments_doc, run_cli, write_experiments
from tracking import Tracker
from tracking.datasets import sweep_inputs

EPOCHS = 2
PG_URL = os.environ.get("S7_TEST_POSTGRES_URL")
STORE_ERRORS = ("database is locked", "Traceback", "OperationalError", "Cannot tell")
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds")


def _write_experiments(
    tmp: Path,
    n_trials: int,
    epochs: int = EPOCHS,
    storage: str | None = None,
    study: str = "scale",
    heartbeat: dict | None = None,
) -> str:
    doc = experiments_doc(tmp, epochs, train_subset=1000, test_subset=500)
    doc["sweep"] = {
        "study_name": study,
        "storage": storage or f"sqlite:///{tmp}/optuna.db",
        "n_trials": n_trials,
        "val_size": 500,
        "pruners": [],
        "log_models": False,
        "confirm": {"k": 0},  # the confirmation has its own tests (test_confirm.py)
        "heartbeat": heartbeat or {"interval": 2, "grace_period": 30, "max_retry": 1},
        "space": {
            "optimizer.lr": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
            "batch_size": {"type": "categorical", "choices": [64, 128]},
        },
    }
    return write_experiments(tmp, doc)


def _sweep_cmd(exp_file: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "sweep", "--file", exp_file, *args]


def _check_runs(client: MlflowClient, study: optuna.Study, experiment: str, epochs: int) -> dict:
    """Every trial has one terminal MLflow run with one metric point per epoch it ran."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert all(r.info.status != "RUNNING" for r in runs), [r.info.run_name for r in runs]
    (parent,) = [r for r in runs if r.data.tags.get("role") == "study"]
    assert parent.info.status == "FINISHED"
    children = {int(r.data.tags["trial_number"]): r for r in runs if r is not parent}
    assert sorted(children) == [t.number for t in study.trials]
    for t in study.trials:
        run = children[t.number]
        ran = len(t.intermediate_values)
        for key in METRICS:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            if t.state == TrialState.COMPLETE:
                assert steps == list(range(1, epochs + 1)), (t.number, key)
            else:  # killed: what it logged before it died, each epoch once
                assert steps == list(range(1, len(steps) + 1)), (t.number, key)
                assert len(steps) >= ran, (t.number, key)
    return children


# ---------------------------------------------------------------- no training


def test_workers_split_the_machine():
    assert [p.device for p in plan_workers(3, "cuda", 2, 16)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert {p.threads for p in plan_workers(3, "cuda", 2, 16)} == {5}
    assert [p.device for p in plan_workers(2, "cuda", 1, 8)] == ["cuda", "cuda"]  # one GPU: shared
    assert [p.device for p in plan_workers(2, "cuda:1", 4, 8)] == ["cuda:1", "cuda:1"]  # as asked
    assert [(p.device, p.threads) for p in plan_workers(4, "cpu", 0, 2)] == [("cpu", 1)] * 4


def test_environment_wins_over_the_file_and_passwords_are_masked(tmp_path, monkeypatch):
    exp_file = _write_experiments(tmp_path, 2)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:tr4cking-pw@127.0.0.1:5999")
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://bob:st0rage-pw@db.example:5432/s7")
    exps = load_sweep(exp_file)
    cfg = exps.resolve("s7_file3")
    assert cfg.tracking.uri == "http://alice:tr4cking-pw@127.0.0.1:5999"
    assert cfg.flat()["tracking.uri"] == "http://alice:***@127.0.0.1:5999"  # what gets logged
    assert "tr4cking-pw" not in str(cfg.public())
    assert exps.section("sweep").storage == "postgresql://bob:st0rage-pw@db.example:5432/s7"
    # a command-line override wins over both
    over = {"sweep": {"storage": "sqlite:///x.db"}}
    assert load_sweep(exp_file, over).section("sweep").storage == "sqlite:///x.db"
    assert exps.resolve("s7_file3", {"tracking": {"uri": "sqlite:///y.db"}}).tracking.uri == (
        "sqlite:///y.db"
    )


def test_sweep_settings_for_workers_and_heartbeats_are_validated(tmp_path):
    path = _write_experiments(tmp_path, 2)

    def resolve_sweep(over):
        return load_sweep(path, {"sweep": over}).section("sweep")

    spec = resolve_sweep({"workers": 3, "heartbeat": {"interval": 5, "grace_period": 60}})
    assert (spec.workers, spec.heartbeat.interval, spec.heartbeat.grace_period) == (3, 5, 60)
    with pytest.raises(UserError, match="grace_period .* must be longer than interval"):
        resolve_sweep({"heartbeat": {"interval": 30, "grace_period": 30}})
    with pytest.raises(UserError, match="sweep.workers' = 0 is invalid"):
        resolve_sweep({"workers": 0})
    with pytest.raises(UserError, match="did you mean 'sweep.heartbeat.interval'"):
        resolve_sweep({"heartbeat": {"intervall": 5}})


@pytest.mark.parametrize(
    "env",
    [
        {"OPTUNA_STORAGE": "postgresql://u:s3cret-pw@127.0.0.1:1/db"},
        {"MLFLOW_TRACKING_URI": "http://u:s3cret-pw@127.0.0.1:1"},
    ],
    ids=["storage", "tracking"],
)
def test_unreachable_store_is_one_line_and_exit_2_with_nothing_written(tmp_path, env):
    exp_file = _write_experiments(tmp_path, 2)
    r = run_cli("sweep", "--file", exp_file, cwd=tmp_path, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "127.0.0.1:1" in lines[0] and "u:***@" in lines[0]
    assert "s3cret-pw" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    # the environment won over the file, and neither the study nor MLflow was touched
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # trials by hand here
def test_stale_and_dead_workers_trials_are_failed_retried_and_their_runs_closed(tmp_path):
    """The recovery paths without training: a trial whose heartbeat stopped (another machine),
    one whose worker pid on this machine is gone, and one on a clone with the same host name."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    exp_file = _write_experiments(
        tmp_path, 5, heartbeat={"interval": 1, "grace_period": 2, "max_retry": 1}
    )
    exps = load_sweep(exp_file)
    spec = exps.section("sweep")
    base = exps.resolve(spec.base_experiment)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    runs = TrialRuns(spec, base)
    requeue = Requeue(1, 2, runs.close)
    storage = open_storage(spec, on_stale=requeue)
    study, _ = open_study(spec, base, storage)
    tracker = runs.tracker
    dead = dead_worker()

    def running_trial(worker: str, space: str = "another machine"):
        t = study.ask()
        t.suggest_float("optimizer.lr", 0.05, 0.3, log=True)
        t.set_user_attr("worker", worker)
        t.set_user_attr("pid_space", space)
        run = tracker.start_run(
            f"trial-{t.number}", {"study_name": "scale", "trial_number": t.number}
        )
        t.set_user_attr("mlflow_run_id", run.run_id)
        return t, run

    remote, remote_run = running_trial("elsewhere:4242")
    storage.record_heartbeat(remote._trial_id)  # what its worker's heartbeat thread wrote last
    local, local_run = running_trial(dead, pid_space())
    # same host name and a dead pid, but another machine (a clone) or container: left alone
    twin, _ = running_trial(dead)
    storage.record_heartbeat(twin._trial_id)

    fail_dead_here(study, requeue)
    states = {t.number: t.state for t in study.trials}
    assert states[remote.number] == TrialState.RUNNING  # its heartbeat is fresh: maybe alive
    assert states[twin.number] == TrialState.RUNNING
    assert states[local.number] == TrialState.FAIL  # its pid is gone: no need to wait
    assert client_status(uri, local_run.run_id) == "KILLED"

    time.sleep(4)  # past the grace period (SQLite's clock ticks in whole seconds)
    optuna.storages.fail_stale_trials(study)  # what study.optimize runs before each trial
    trials = study.trials
    assert trials[remote.number].state == TrialState.FAIL
    assert all(t.state != TrialState.RUNNING for t in trials)
    client = MlflowClient(uri)
    for run, why in ((remote_run, "no heartbeat"), (local_run, "died mid-trial")):
        got = client.get_run(run.run_id)
        assert got.info.status == "KILLED" and got.data.tags["state"] == "FAIL"
        assert why in got.data.tags["fail_reason"] and got.data.tags["closed_by"]
    retries = [t for t in trials if t.state == TrialState.WAITING]
    assert sorted(t.system_attrs["failed_trial"] for t in retries) == sorted(
        [remote.number, local.number, twin.number]
    )
    for t in retries:  # same parameters, none of the dead attempt's attrs
        assert t.params == trials[t.system_attrs["failed_trial"]].params
        assert "mlflow_run_id" not in t.user_attrs and "worker" not in t.user_attrs
    assert len(requeue.messages) == 3


def client_status(uri: str, run_id: str) -> str:
    return MlflowClient(uri).get_run(run_id).info.status


# ---------------------------------------------------------------- sweeps


def _log_the_same_new_dataset(uri: str, artifacts: str, ready, go, out) -> None:
    """A worker's first trial: a run that logs the sweep's datasets once `go` is set."""
    run = Tracker(uri, "scale", artifacts).start_run("trial")
    inputs = sweep_inputs(100, 50, 50, root=DATA_ROOT)
    ready.put(True)
    go.wait()
    try:
        run.log_inputs(inputs)
        out.put(run.run_id)
    except Exception as e:
        out.put(f"{type(e).__name__}: {e}")


def test_two_workers_logging_a_new_dataset_at_once_both_record_it(tmp_path):
    # MLflow's store looks the dataset up, then inserts it: both workers inserted it, one failed
    uri, ctx = f"sqlite:///{tmp_path}/mlflow.db", multiprocessing.get_context("spawn")
    Tracker(uri, "scale", str(tmp_path / "artifacts"))  # the store and experiment exist first
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    args = (uri, str(tmp_path / "artifacts"), ready, go, out)
    workers = [ctx.Process(target=_log_the_same_new_dataset, args=args) for _ in range(2)]
    for w in workers:
        w.start()
    for _ in workers:  # both have started their run and wait at the same line
        ready.get(timeout=120)
    go.set()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert not [r for r in results if ":" in r], results  # run ids, no error
    client = MlflowClient(uri)
    for run_id in results:
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert sorted(i.dataset.name for i in inputs) == ["mnist-test", "mnist-train", "mnist-val"]


def test_two_workers_share_one_study_on_the_embedded_stores(tmp_path):
    n = 4
    exp_file = _write_experiments(tmp_path, n + 5)
    # as make sweep N_TRIALS=... WORKERS=2 ARGS=... passes them: the workers get all three
    r = run_cli(
        "sweep",
        "--file",
        exp_file,
        "--n-trials",
        str(n),
        "--workers",
        "2",
        "progress=false",
        cwd=tmp_path,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "2 workers:" in out and "workers log through http://127.0.0.1:" in out
    assert not any(e in out for e in STORE_ERRORS), out
    study = optuna.load_study(study_name="scale", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = [t.state for t in study.trials]
    # each worker stops after its own trial once the study has its total: at most k - 1 over
    why = [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    assert set(states) == {TrialState.COMPLETE} and n <= len(states) <= n + 1, (why, out)
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both workers took trials
    children = _check_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), study, "scale", EPOCHS)
    for run in children.values():
        assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
        assert {"curves.png", "model_summary.txt"} <= {
            a.path
            for a in MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").list_artifacts(run.info.run_id)
        }
    assert not (tmp_path / "mlruns").exists()


def test_sigkilled_worker_leaves_nothing_running_and_the_study_completes(tmp_path):
    n = 3
    exp_file = _write_experiments(tmp_path, n, epochs=4)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        _sweep_cmd(exp_file, "--workers", "2"),
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    victim = None
    deadline = time.time() + 400
    while victim is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            running = optuna.load_study(study_name="scale", storage=storage).get_trials(
                states=(TrialState.RUNNING,)
            )
        except KeyError:
            continue
        for t in running:  # a trial that has reported an epoch: kill the worker running it
            if t.intermediate_values and "worker" in t.user_attrs:
                victim = t
                os.kill(int(t.user_attrs["worker"].rpartition(":")[2]), signal.SIGKILL)
                break
    assert victim is not None, "no trial reported an epoch"
    first = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, first
    assert "was killed by SIGKILL" in first and "queued again with the same parameters" in first

    again = subprocess.run(
        _sweep_cmd(exp_file), cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert not any(e in first + again.stdout + again.stderr for e in STORE_ERRORS)
    study = optuna.load_study(study_name="scale", storage=storage)
    states = [t.state for t in study.trials]
    assert n <= states.count(TrialState.COMPLETE) <= n + 1
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL  # the reason is on its MLflow run (checked below)
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    children = _check_runs(client, study, "scale", 4)
    run = children[victim.number]
    assert run.info.status == "KILLED" and run.data.tags["state"] == "FAIL"
    assert "died mid-trial" in run.data.tags["fail_reason"] and run.data.tags["closed_by"]


@pytest.mark.skipif(not PG_URL, reason="S7_TEST_POSTGRES_URL is not set (.ci/run sets it)")
def test_postgres_study_and_mlflow_server_for_many_machines(tmp_path):
    """Two workers on a PostgreSQL study, logging to an `mlflow server` over HTTP, as workers on
    other machines would; no password reaches the output or MLflow."""
    from sqlalchemy.engine import make_url

    from tracking.server import LocalServer

    n, study_name = 3, f"scale-{uuid.uuid4().hex[:8]}"
    exp_file = _write_experiments(tmp_path, n, study=study_name)
    pg_password = make_url(PG_URL).password
    assert pg_password, "S7_TEST_POSTGRES_URL should carry a password"
    try:
        with LocalServer(f"sqlite:///{tmp_path}/server.db", str(tmp_path / "served")) as server:
            tracking = server.url.replace("http://", "http://alice:tr4cking-pw@")
            env = {"OPTUNA_STORAGE": PG_URL, "MLFLOW_TRACKING_URI": tracking}
            r = run_cli("sweep", "--file", exp_file, "--workers", "2", cwd=tmp_path, env=env)
            out = r.stdout + r.stderr
            assert r.returncode == 0, out
            assert not any(e in out for e in STORE_ERRORS), out
            study = optuna.load_study(study_name=study_name, storage=with_driver(PG_URL))
            states = [t.state for t in study.trials]
            assert set(states) == {TrialState.COMPLETE} and n <= len(states) <= n + 1
            client = MlflowClient(server.url)
            _check_runs(client, study, study_name, EPOCHS)
            secrets = (pg_password, "tr4cking-pw")
            assert not any(s in out for s in secrets)
            exp = client.get_experiment_by_name(study_name)
            for run in client.search_runs([exp.experiment_id]):
                logged = str(run.data.params) + str(run.data.tags)
                assert not any(s in logged for s in secrets), run.info.run_name
                if run.data.tags.get("role") == "study":  # the URLs are there, masked
                    assert run.data.params["sweep.storage"] == make_url(PG_URL).render_as_string()
                else:
                    assert run.data.params["tracking.uri"].startswith("http://alice:***@")
                files = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
                for f in files.rglob("*"):
                    if f.is_file():
                        assert not any(s.encode() in f.read_bytes() for s in secrets), f
            for t in study.trials:  # the study keeps no MLflow password either
                assert "tr4cking-pw" not in str(t.user_attrs)
    finally:
        with suppress(KeyError):  # KeyError: the study was never created
            optuna.delete_study(study_name=study_name, storage=with_driver(PG_URL))


def test_a_grid_study_resumed_by_another_process_tries_every_point_once(tmp_path):
    """GridSampler numbers its points in an order shuffled by its seed: a process with another
    seed read an earlier process's numbers as other points, ran two points twice, left two out
    and called the grid done (the findings' lr grid, 2026-11-30). Points are queued by their
    parameters now: the resumed study runs exactly the missing ones, and a failed point (a
    diverged lr) counts as tried."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    exp_file = _write_experiments(tmp_path, 6)
    doc = yaml.safe_load(Path(exp_file).read_text())
    doc["sweep"]["sampler"] = {"name": "grid", "seed": 0}
    doc["sweep"]["space"] = {
        "batch_size": {"type": "categorical", "choices": [64, 128]},
        "optimizer.lr": {"type": "categorical", "choices": [0.1, 0.2, 0.4]},
    }
    exps = load_sweep(write_experiments(tmp_path, doc))
    spec = exps.section("sweep")
    base = exps.resolve(spec.base_experiment)
    storage = open_storage(spec)
    ran: list[tuple] = []

    class Stub:  # the objective without training: 0.4 diverges, the rest score 1
        lost = None

        def __call__(self, trial):
            p = suggest(trial, spec.space)
            ran.append((p["batch_size"], p["optimizer.lr"]))
            if p["optimizer.lr"] == 0.4:
                raise RuntimeError("diverged")
            return 1.0

    # two earlier processes, three trials each, their grid samplers seeded apart as every new
    # process's once was: the second reads the first's grid ids as other points
    for seed in (11, 12):
        study, _ = open_study(spec, base, storage)
        study.sampler = optuna.samplers.GridSampler(grid_values(spec.space), seed=seed)
        study.optimize(Stub(), n_trials=3, catch=(Exception,))
    every = {(b, lr) for b in (64, 128) for lr in (0.1, 0.2, 0.4)}
    missing = every - set(ran)
    assert len(ran) == 6 and len(missing) == 2  # two points twice, two never
    # the resumed sweep, as run_sweep's parent and run_trials do it: only the missing points
    study, _ = open_study(spec, base, storage)
    assert grid.enqueue_missing(study, spec) == len(missing) and not grid.done(study, spec)
    run_trials(study, Stub(), spec, Requeue(1, 30, lambda n, r: None), [])
    assert set(ran[6:]) == missing and len(ran) == 6 + len(missing)
    assert grid.done(study, spec) and grid.tried(study, spec) == 6
    # a third start finds nothing to run, the failed (diverged) points included
    study, _ = open_study(spec, base, storage)
    assert grid.enqueue_missing(study, spec) == 0 and grid.done(study, spec)
