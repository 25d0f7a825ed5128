"""Close what dead workers leave behind: trials stuck RUNNING in Optuna, runs stuck RUNNING in MLflow.

A worker killed with SIGKILL (or out of memory, or on a machine that went away) cannot end its
own trial or its MLflow run. Three checks find them, run by every sweep process on start, while
it waits and at the end:
- heartbeats, any machine: Optuna fails a RUNNING trial whose heartbeat is older than
  `sweep.heartbeat.grace_period` (`optuna.storages.fail_stale_trials`, also run by each worker
  before each trial) and calls `Recovery` as the storage's stale-trial callback;
- this machine: a RUNNING trial whose worker ran where this process's pids are meaningful (same
  kernel boot and pid namespace, `pid_space`) under a pid that no longer exists is failed at
  once, without waiting out the grace period;
- MLflow: a trial run of this study still RUNNING whose Optuna trial is no longer RUNNING is
  ended KILLED, tagged with why.
A trial failed this way is queued again with the same parameters, at most `max_retry` times
(Optuna's `RetryHeartbeatStaleTrialCallback`, the Optuna 5 name of `RetryFailedTrialCallback`).
"""

import copy
import functools
import os
import socket
import warnings
from contextlib import suppress
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from harness.sweep_spec import SweepSpec
from harness.urls import with_driver

# user attrs that describe one attempt, not the parameters: a retry starts without them
ATTEMPT_ATTRS = ("mlflow_run_id", "worker", "pid_space", "config", "fail_reason", "test_acc")


def worker_id() -> str:
    """`host:pid` of this process, stored with each trial it runs (for people and messages)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@functools.cache
def pid_space() -> str:
    """Where this process's pid means this process: the kernel's boot id and the pid namespace.

    Host names are not enough: cloned machines share them, and containers on one kernel share a
    boot id but each numbers its processes anew. Outside Linux: the host name.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class Recovery(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Fails dead workers' trials (and re-queues them), and ends their MLflow runs.

    Pass it as the storage's stale-trial callback (`sweep.storage.open_storage(on_stale=...)`) and
    call `check(study)` whenever a sweep process starts, waits or ends.
    """

    def __init__(self, spec: SweepSpec, tracking_uri: str):
        """
        Args:
            spec: the sweep section (`heartbeat.max_retry`, `heartbeat.grace_period`, names).
            tracking_uri: the MLflow store the trial runs live in; the sweep sets `tracking_uri`
                again when it moves to a local `mlflow server`.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__(max_retry=spec.heartbeat.max_retry)
        self.spec = spec
        self.tracking_uri = tracking_uri
        self.experiment = spec.mlflow_experiment or spec.study_name
        self.messages: list[str] = []  # what was recovered, for the sweep to print

    # -- Optuna's stale-trial callback -------------------------------------------------------

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """`trial` was just failed for lack of heartbeat (or by `fail_dead_local`): end its
        MLflow run and queue it again."""
        who = trial.user_attrs.get("worker", "unknown worker")
        reason = trial.user_attrs.get("fail_reason") or (
            f"no heartbeat from {who} for over {self.spec.heartbeat.grace_period} s"
        )
        self.close_run(trial.user_attrs.get("mlflow_run_id"), trial.number, reason)
        retry = copy.copy(trial)  # the same parameters, without the dead attempt's attrs
        retry.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ATTEMPT_ATTRS}
        before = len(study.get_trials(deepcopy=False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__call__(study, retry)
        again = len(study.get_trials(deepcopy=False)) > before
        self.messages.append(
            f"trial {trial.number} failed ({reason})"
            + ("; queued again with the same parameters" if again else "; retries used up")
        )

    # -- the three checks ----------------------------------------------------------------------

    def check(self, study: optuna.Study) -> list[str]:
        """Run all three checks; return (and forget) what was recovered, one line each."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optuna.storages.fail_stale_trials(study)
        self.fail_dead_local(study)
        self.close_orphan_runs(study)
        out, self.messages = self.messages, []
        return out

    def fail_dead_local(self, study: optuna.Study, reason: str | None = None) -> list[int]:
        """Fail the RUNNING trials whose worker ran on this host and is gone; return their numbers."""
        here = pid_space()
        failed = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            who = str(t.user_attrs.get("worker", ""))
            pid = who.rpartition(":")[2]
            if t.user_attrs.get("pid_space") != here or not pid.isdigit() or _pid_alive(int(pid)):
                continue
            why = reason or f"worker {who} died mid-trial"
            # The reason goes on the trial before it is failed (a finished trial is read-only);
            # private storage calls, as in Optuna's own fail_stale_trials.
            with suppress(optuna.exceptions.UpdateFinishedTrialError):
                study._storage.set_trial_user_attr(t._trial_id, "fail_reason", why)
            try:
                if not study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
                continue
            failed.append(t.number)
            self(study, study._storage.get_trial(t._trial_id))
        return failed

    def close_orphan_runs(self, study: optuna.Study) -> int:
        """End KILLED the MLflow trial runs of this study left RUNNING by a dead worker."""
        client = MlflowClient(with_driver(self.tracking_uri))
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            return 0
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=(
                f"tags.study_name = '{self.spec.study_name}' and attributes.status = 'RUNNING'"
            ),
            max_results=1000,
        )
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        closed = 0
        for run in runs:
            number = run.data.tags.get("trial_number")
            if number is None or not number.isdigit():
                continue  # the study's own parent run
            if states.get(int(number)) == TrialState.RUNNING:
                continue  # its worker may still be at it (here or on another machine)
            self.close_run(run.info.run_id, int(number), "its worker died mid-trial", client)
            self.messages.append(f"MLflow run of trial {number} was left RUNNING; ended KILLED")
            closed += 1
        return closed

    def close_run(
        self,
        run_id: str | None,
        number: int,
        reason: str,
        client: MlflowClient | None = None,
        force: bool = False,
    ) -> None:
        """End one trial's MLflow run KILLED (its worker was killed) with the reason as tags.

        Args:
            run_id: the run (None when the worker died before creating it: nothing to do).
            number: the trial number, for messages.
            reason: why, as the run's `fail_reason` tag.
            client: an MLflow client to reuse (default: one on `self.tracking_uri`).
            force: also re-end a run that has already ended (the study says FAIL, the run not).
        """
        if not run_id:
            return
        client = client or MlflowClient(with_driver(self.tracking_uri))
        if not force and client.get_run(run_id).info.status != "RUNNING":
            return
        for key, value in {
            "state": "FAIL",
            "fail_reason": reason[:500],
            "closed_by": f"sweep recovery on {socket.gethostname()}",
        }.items():
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id, "KILLED")
