"""`make sweep WORKERS=k`: k processes of the same command, all working the one study.

The sweep checks everything, creates the study and its MLflow parent run, then starts its own
command line again k times with `--worker i` and waits. Each worker resolves the same config,
opens the same study and runs Optuna's loop (`sweep.loop.run_trials`); CPU threads are split
between workers and several GPUs dealt round robin (one GPU is shared). With the embedded MLflow
store (one SQLite file) the sweep starts a loopback `mlflow server` and the workers log through
it (`tracking.uri=` on their command line); a database or server URL is used as is.

A worker that dies (SIGKILL, out of memory) is seen at once: its trial is failed and queued
again, its MLflow run ended KILLED (`sweep.recovery`). Ctrl-C reaches only the sweep (workers
run in their own sessions), which forwards one SIGINT to each worker so each ends its trial.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import TrialState

from harness.errors import WorkersFailed
from sweep.loop import count
from sweep.recovery import Requeue, fail_dead_here
from sweep.spec import SweepSpec
from tracking.mlflow_store import is_local
from tracking.server import LocalServer

POLL_S = 1.0  # how often the sweep looks at its workers
STOP_WAIT_S = 120.0  # how long a worker may take to end its trial after Ctrl-C


@dataclass(frozen=True)
class WorkerPlan:
    """Where worker `index` trains and how many CPU threads it may use."""

    index: int
    device: str
    threads: int


def plan_workers(k: int, device: str, cuda_count: int, cores: int) -> list[WorkerPlan]:
    """Split the machine between k workers: with several GPUs and device `cuda`, worker i gets
    `cuda:{i % cuda_count}`, else every worker uses `device`; each gets `cores // k` threads
    (at least 1), so k workers do not oversubscribe the CPU."""
    threads = max(1, cores // k)
    multi = device == "cuda" and cuda_count > 1
    return [WorkerPlan(i, f"cuda:{i % cuda_count}" if multi else device, threads) for i in range(k)]


def describe_exit(code: int) -> str:
    if code < 0:
        with suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


def describe_trial(trial: optuna.trial.FrozenTrial) -> str:
    """One line per finished trial."""
    if trial.state == TrialState.COMPLETE:
        return f"trial {trial.number} complete: {trial.value:.2f}"
    if trial.state == TrialState.PRUNED:
        return f"trial {trial.number} pruned at epoch {max(trial.intermediate_values, default=0)}"
    return f"trial {trial.number} failed: {trial.user_attrs.get('fail_reason', '?')}"


def run_workers(
    command: list[str],
    spec: SweepSpec,
    device: str,
    study: optuna.Study,
    requeue: Requeue,
    tracking_uri: str,
    base,
) -> None:
    """Start `spec.workers` copies of `command` on the study and wait for them.

    Args:
        command: the sweep's own arguments (after `python -m cli`).
        spec, device, study: as resolved by `sweep.study.run_sweep`.
        requeue: fails dead workers' trials, queues them again and ends their runs.
        tracking_uri, base: the MLflow store and the base config (artifact folder).
    Raises:
        WorkersFailed: workers failed and the study is short of its trials.
        KeyboardInterrupt: after every worker has ended its trial (Ctrl-C, SIGTERM).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    plans = plan_workers(spec.workers, device, torch.cuda.device_count(), cores or 1)
    with ExitStack() as stack:
        extra = []
        if is_local(tracking_uri):
            server = stack.enter_context(LocalServer(tracking_uri, base.tracking.artifact_root))
            extra = [f"tracking.uri={server.url}"]
            print(f"MLflow: workers log through {server.url} (pid {server.proc.pid})", flush=True)
        procs = {}
        for p in plans:
            args = [*command, *extra, f"device={p.device}", "--worker", f"{p.index}:{p.threads}"]
            # own session: the terminal's Ctrl-C reaches only this process, which forwards it once
            procs[p.index] = subprocess.Popen(
                [sys.executable, "-m", "cli", *args],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        print(
            f"{len(procs)} workers: "
            + ", ".join(f"{p.index}: pid {procs[p.index].pid} {p.device}" for p in plans)
            + f", {plans[0].threads} CPU threads each",
            flush=True,
        )
        try:
            codes = _supervise(procs, study, requeue)
        except KeyboardInterrupt:
            _interrupt(procs)
            fail_dead_here(study, requeue, {p.pid for p in procs.values()})
            requeue.flush(_say)
            raise
    bad = {i: c for i, c in codes.items() if c != 0}
    finished = count(study)
    if bad and finished < spec.n_trials:
        raise WorkersFailed(
            f"{len(bad)} of {len(codes)} workers failed ("
            + ", ".join(f"worker {i} {describe_exit(c)}" for i, c in bad.items())
            + f"); the study has {finished}/{spec.n_trials} finished trials; "
            "run `make sweep` again to go on"
        )


def _say(line: str) -> None:
    print(line, flush=True)


def _supervise(procs: dict[int, subprocess.Popen], study, requeue: Requeue) -> dict[int, int]:
    old = signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` cleans up too
    codes: dict[int, int] = {}
    try:
        while len(codes) < len(procs):
            time.sleep(POLL_S)
            dead = set()
            for i, p in procs.items():
                if i not in codes and p.poll() is not None:
                    codes[i] = p.returncode
                    if p.returncode != 0:
                        print(f"worker {i} (pid {p.pid}) {describe_exit(p.returncode)}", flush=True)
                        dead.add(p.pid)
            if dead:  # fail its trial now, not after the heartbeat's grace period
                fail_dead_here(study, requeue, dead)
                requeue.flush(_say)
    finally:
        signal.signal(signal.SIGTERM, old)
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
