"""One sweep process's trial loop, the same whether it is the only worker or one of many.

`n_trials` is a total for the study, shared by every worker on every machine. Before each trial
a worker counts finished (COMPLETE or PRUNED) trials and trials in flight: it stops when the
study has its total, waits while the trials in flight could still reach it (one of them may yet
fail and need replacing), and otherwise takes the next trial. On one machine the count and the
taking of the trial are one step under a file lock, so workers never overshoot the total; across
machines two workers may start at the same instant, so the study can end at most one trial per
extra machine over it.
"""

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from harness.sweep_spec import SweepSpec
from harness.trainer import DivergedError
from sweep.objective import Objective
from sweep.recovery import Recovery

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def count(study: optuna.Study, states=FINISHED) -> int:
    """How many trials of the study are in `states` (default: finished)."""
    return len(study.get_trials(deepcopy=False, states=states))


def in_flight(study: optuna.Study, grace_period: float) -> int:
    """RUNNING trials that may still finish: every one with a worker (dead workers' trials are
    failed by `Recovery`), and worker-less ones (from before heartbeats) younger than the grace
    period, so that an old trial stuck RUNNING cannot hold the study forever."""
    now = datetime.now()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        young = t.datetime_start and (now - t.datetime_start).total_seconds() < grace_period
        n += "worker" in t.user_attrs or bool(young)
    return n


class StartGate:
    """An exclusive lock file per study: one worker at a time counts and takes a trial."""

    def __init__(self, storage_url: str, study_name: str):
        if storage_url.startswith("sqlite:///") and not storage_url.startswith("sqlite:////"):
            # a relative file: the same URL in two checkouts is two studies
            storage_url = "sqlite:///" + os.path.abspath(storage_url.removeprefix("sqlite:///"))
        key = hashlib.sha256(f"{storage_url}\n{study_name}".encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"s7-sweep-{key}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def work(
    study: optuna.Study,
    objective: Objective,
    spec: SweepSpec,
    recovery: Recovery,
    gate: StartGate,
    on_trial: Callable | None = None,
    say: Callable[[str], None] = print,
    keep_going: Callable[[], bool] = lambda: True,
) -> None:
    """Run trials one at a time until the study holds `spec.n_trials` finished ones.

    Args:
        study, objective: the study and this process's trial objective.
        spec: the sweep section (`n_trials`, heartbeat settings).
        recovery: fails dead workers' trials and closes their runs, checked before each trial.
        gate: the lock that makes "count, then take a trial" one step on this machine.
        on_trial: Optuna callback after each trial (progress, messages).
        say: where recovery messages go (a progress bar's write, a prefixed print).
        keep_going: checked before each trial; False stops the loop (e.g. the parent is gone).
    """
    poll = min(5.0, float(spec.heartbeat.interval))

    def started(trial: optuna.Trial) -> float:
        gate.release()  # the trial is RUNNING now and counted by the others
        return objective(trial)

    callbacks = [on_trial] if on_trial else []
    while keep_going():
        for line in recovery.check(study):
            say(line)
        gate.acquire()
        try:
            finished = count(study)
            if finished >= spec.n_trials or grid_done(study):
                return
            if finished + in_flight(study, spec.heartbeat.grace_period) >= spec.n_trials:
                gate.release()
                time.sleep(poll)  # the trials in flight may finish the study, or fail
                continue
            study.optimize(started, n_trials=1, catch=(DivergedError,), callbacks=callbacks)
        except (ValueError, AssertionError):
            # Optuna could not record a trial that another process had already failed for lack
            # of heartbeat (it was queued again there); anything else is a real error.
            if not _lost(study, objective, recovery):
                raise
            say(f"trial {objective.last[0]} was declared dead while running; it runs again")
        finally:
            gate.release()


def grid_done(study: optuna.Study) -> bool:
    """A grid study whose every point has ended (a failed point counts: the grid sampler would
    only repeat points, so a diverged one can never be made up by a new trial)."""
    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


def _lost(study: optuna.Study, objective: Objective, recovery: Recovery) -> bool:
    if objective.last is None:
        return False
    number, decided = objective.last
    trial = study.get_trials(deepcopy=False)[number]
    if trial.state != TrialState.FAIL or decided not in ("COMPLETE", "PRUNED", "LOST"):
        return False
    if decided != "LOST":  # its MLflow run was ended FINISHED/KILLED here; the study says FAIL
        recovery.close_run(
            trial.user_attrs.get("mlflow_run_id"),
            number,
            "declared dead (no heartbeat) while still running",
            force=True,
        )
    return True
