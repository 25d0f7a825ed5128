"""Several worker processes on one machine, all working the one study (`make sweep WORKERS=k`).

The sweep process (the parent) opens the study, enqueues its first trials and creates the MLflow
parent run, then starts k workers (`python -m harness.cli sweep-worker`) and watches them:
- each worker runs the same trial loop as a single-process sweep (`sweep.loop.work`);
- cores are split between workers (`torch.set_num_threads(cores // k)`), several GPUs are dealt
  round robin (`cuda:i`), one GPU is shared;
- with the embedded MLflow store (one SQLite file) the parent starts a loopback `mlflow server`
  and the workers log through it (`tracking.server`); a database or server URL is used as is;
- a worker that dies (SIGKILL, out of memory) is noticed at once: its trial is failed, queued
  again and its MLflow run ended KILLED (`sweep.recovery`); the other workers go on;
- Ctrl-C reaches the parent only (workers run in their own sessions), which forwards exactly one
  SIGINT to each worker, so each ends its trial cleanly (a second one would cut that short).
Settings reach the workers as JSON in an environment variable, not on the command line, because
they may hold a database password.
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from contextlib import ExitStack, suppress
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import TrialState

from harness.config import Experiments, deep_merge
from harness.device import resolve_device
from harness.errors import WorkersFailed
from harness.sweep_spec import SweepSpec
from sweep.loop import FINISHED, StartGate, count, work
from sweep.objective import Objective
from sweep.recovery import Recovery
from sweep.storage import open_storage, storage_url
from tracking import RunHandle, Tracker
from tracking.mlflow_store import is_local

PAYLOAD_ENV = "S7_SWEEP_WORKER"
POLL_S = 2.0  # how often the parent looks at its workers and the study
STOP_WAIT_S = 120.0  # how long a worker may take to end its trial after Ctrl-C


@dataclass(frozen=True)
class WorkerPlan:
    """Where worker `index` trains and how many CPU threads it may use."""

    index: int
    device: str
    threads: int


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_workers(k: int, device: str, cuda_count: int, cores: int) -> list[WorkerPlan]:
    """Split the machine between k workers.

    Args:
        k: number of workers.
        device: the resolved training device (`cpu`, `cuda`, `cuda:1`, `mps`).
        cuda_count: GPUs visible here.
        cores: CPU cores usable here.
    Returns:
        One plan per worker: with several GPUs and device `cuda`, worker i gets
        `cuda:{i % cuda_count}`; otherwise every worker uses `device` (one GPU is shared). Each
        worker gets `cores // k` threads (at least 1), so k workers do not oversubscribe the CPU.
    """
    threads = max(1, cores // k)
    return [
        WorkerPlan(
            i, f"cuda:{i % cuda_count}" if device == "cuda" and cuda_count > 1 else device, threads
        )
        for i in range(k)
    ]


def describe_exit(code: int) -> str:
    if code < 0:
        with suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


def describe_trial(trial: optuna.trial.FrozenTrial) -> str:
    """One line per finished trial, as a worker prints it."""
    if trial.state == TrialState.COMPLETE:
        return f"trial {trial.number} complete: {trial.value:.2f}"
    if trial.state == TrialState.PRUNED:
        return f"trial {trial.number} pruned at epoch {max(trial.intermediate_values, default=0)}"
    return f"trial {trial.number} failed: {trial.user_attrs.get('fail_reason', '?')}"


def _progress(study: optuna.Study, spec: SweepSpec) -> str:
    best = max(
        (t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
        default=None,
    )
    return (
        f"study: {count(study)}/{spec.n_trials} finished, "
        f"{count(study, (TrialState.RUNNING,))} running, "
        f"{count(study, (TrialState.FAIL,))} failed; best "
        + (f"{best:.2f}" if best is not None else "-")
    )


# ---------------------------------------------------------------- the parent


def run_workers(
    study: optuna.Study,
    spec: SweepSpec,
    experiments: Experiments,
    fixed: dict,
    base,
    device: torch.device,
    tracker: Tracker,
    parent: RunHandle,
    recovery: Recovery,
) -> None:
    """Start `spec.workers` worker processes on the study and wait for them.

    Args:
        study, spec, experiments, fixed, base, device: as resolved by `sweep.study.run_sweep`.
        tracker, parent: the MLflow experiment and the study's parent run (already created).
        recovery: fails dead workers' trials and ends their runs.
    Raises:
        WorkersFailed: workers failed and the study is short of its trials.
        KeyboardInterrupt: after every worker has ended its trial (Ctrl-C, SIGTERM).
    """
    plans = plan_workers(spec.workers, str(device), torch.cuda.device_count(), usable_cores())
    with ExitStack() as stack:
        with suppress(ValueError):  # not the main thread: leave SIGTERM alone
            old_term = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` cleans up too
            stack.callback(signal.signal, signal.SIGTERM, old_term)
        worker_uri = None
        if is_local(tracker.uri):
            from tracking.server import LocalServer

            server = stack.enter_context(LocalServer(tracker.uri, base.tracking.artifact_root))
            worker_uri = recovery.tracking_uri = server.url
            print(f"MLflow: workers log through {server.url} (pid {server.proc.pid})", flush=True)
        payload = {
            "file": str(experiments.path.resolve()),
            "spec": spec.model_dump(mode="json"),
            "fixed": fixed,
            "parent_run_id": parent.run_id,
            "tracking_uri": worker_uri,
            "parent_pid": os.getpid(),
        }
        procs = {p.index: _spawn(p, payload) for p in plans}
        print(
            f"{len(procs)} workers: "
            + ", ".join(f"{p.index}: pid {procs[p.index].pid} {p.device}" for p in plans)
            + f", {plans[0].threads} CPU threads each",
            flush=True,
        )
        try:
            codes = _supervise(procs, study, spec, recovery)
        except KeyboardInterrupt:
            _interrupt(procs)
            for line in recovery.check(study):
                print(line, flush=True)
            raise
        for line in recovery.check(study):
            print(line, flush=True)
    recovery.tracking_uri = tracker.uri
    bad = {i: c for i, c in codes.items() if c != 0}
    if bad and count(study) < spec.n_trials:
        raise WorkersFailed(
            f"{len(bad)} of {len(codes)} workers failed ("
            + ", ".join(f"worker {i} {describe_exit(c)}" for i, c in bad.items())
            + f"); the study has {count(study)}/{spec.n_trials} finished trials; "
            "run `make sweep` again to go on"
        )


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _spawn(plan: WorkerPlan, payload: dict) -> subprocess.Popen:
    env = {
        **os.environ,
        PAYLOAD_ENV: json.dumps({**payload, **plan.__dict__}),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "harness.cli", "sweep-worker", "--index", str(plan.index)]
    # Own session: the terminal's Ctrl-C reaches only the parent, which forwards it once.
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def _supervise(procs, study, spec, recovery) -> dict[int, int]:
    codes: dict[int, int] = {}
    last = ""
    while len(codes) < len(procs):
        time.sleep(POLL_S)
        for i, p in procs.items():
            if i not in codes and p.poll() is not None:  # poll() also reaps it: its pid is gone
                codes[i] = p.returncode
                if p.returncode != 0:
                    print(f"worker {i} (pid {p.pid}) {describe_exit(p.returncode)}", flush=True)
        for line in recovery.check(study):
            print(line, flush=True)
        line = _progress(study, spec)
        if line != last:
            print(line, flush=True)
            last = line
    return codes


def _interrupt(procs: dict[int, subprocess.Popen]) -> None:
    """One SIGINT to each live worker, then wait for them to end their trials; kill stragglers."""
    for p in procs.values():
        if p.poll() is None:
            with suppress(ProcessLookupError):
                p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_WAIT_S
    for p in procs.values():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- a worker


def worker_main(index: int) -> None:
    """The `sweep-worker` command: run trials on the study until it has its total.

    Args:
        index: this worker's number (0..k-1), for its device, sampler seed and messages.
    """
    from sweep.study import load_data, open_study

    payload = json.loads(os.environ[PAYLOAD_ENV])
    torch.set_num_threads(payload["threads"])
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's outcome is printed below
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    experiments = Experiments(payload["file"])
    spec = SweepSpec.model_validate_json(json.dumps(payload["spec"]))
    fixed = deep_merge(payload["fixed"], {"device": payload["device"]})
    base = experiments.resolve(spec.base_experiment, fixed)
    device = resolve_device(payload["device"])
    uri = payload["tracking_uri"] or base.tracking.uri
    recovery = Recovery(spec, uri)
    study = open_study(spec, open_storage(spec, on_stale=recovery), worker=index)
    tracker = Tracker(uri, spec.mlflow_experiment or spec.study_name, base.tracking.artifact_root)
    parent = RunHandle(tracker.client, payload["parent_run_id"])
    objective = Objective(
        spec, experiments, fixed, load_data(base, spec, device), device, tracker, parent
    )

    def say(line: str) -> None:
        print(f"[worker {index}] {line}", flush=True)

    def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        say(describe_trial(trial))

    work(
        study,
        objective,
        spec,
        recovery,
        StartGate(storage_url(spec), spec.study_name),
        on_trial=on_trial,
        say=say,
        # an orphaned worker (its parent killed) stops after its trial: nobody watches it
        keep_going=lambda: os.getppid() == payload["parent_pid"],
    )


__all__ = ["FINISHED", "WorkerPlan", "plan_workers", "run_workers", "worker_main"]
