"""What a dead worker leaves behind: its trial failed and queued again, its MLflow run ended KILLED.

Optuna finds dead workers itself: with heartbeats on (RDB storage), `study.optimize` runs
`fail_stale_trials` before each trial and hands every trial whose heartbeat is older than
`sweep.heartbeat.grace_period` to the storage's stale-trial callback, Optuna's
`RetryHeartbeatStaleTrialCallback`, which queues it again with the same parameters. `Requeue` adds
what Optuna cannot know: the trial's MLflow run is ended KILLED with the reason, and the dead
attempt's user attributes (worker, run id, test accuracy) are not copied onto the retry.

On one machine there is no need to wait out the grace period: a worker whose pid is gone is dead.
`fail_dead_here` fails such trials at once (public `study.tell`), for the sweep that started the
worker and for the next `make sweep` after a SIGKILL.
"""

import copy
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.processes import pid_alive, pid_here

# user attrs that describe one attempt, not the parameters: a retry starts without them
ATTEMPT_ATTRS = ("mlflow_run_id", "worker", "pid_space", "config", "fail_reason", "test_acc")


class Requeue(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a dead worker's trial, plus ending its MLflow run with the reason.

    Args:
        max_retry: times one trial is queued again (`sweep.heartbeat.max_retry`).
        grace_period: seconds without a heartbeat that made the trial stale (for the reason).
        close_runs: `close_runs(trial_number, reason)` ends the trial's RUNNING MLflow runs KILLED.
    """

    def __init__(self, max_retry: int, grace_period: int, close_runs: Callable[[int, str], None]):
        with warnings.catch_warnings():  # "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(max_retry=max_retry)
        self.grace_period, self.close_runs = grace_period, close_runs
        self.messages: list[str] = []  # what was recovered, for the sweep to print

    def __call__(self, study: optuna.Study, trial: FrozenTrial, reason: str | None = None) -> None:
        who = trial.user_attrs.get("worker", "an unknown worker")
        reason = reason or f"no heartbeat from {who} for over {self.grace_period} s"
        self.close_runs(trial.number, reason)
        retry = copy.copy(trial)
        retry.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ATTEMPT_ATTRS}
        before = len(study.get_trials(deepcopy=False))
        super().__call__(study, retry)
        again = len(study.get_trials(deepcopy=False)) > before
        self.messages.append(
            f"trial {trial.number} failed ({reason})"
            + ("; queued again with the same parameters" if again else "; retries used up")
        )

    def flush(self, say: Callable[[str], None]) -> None:
        """Hand what was recovered since the last call to `say`, one line each."""
        for line in self.messages:
            say(line)
        self.messages.clear()


def fail_dead_here(study: optuna.Study, requeue: Requeue, pids: set[int] | None = None) -> None:
    """Fail (and queue again) the RUNNING trials of workers on this machine that are gone.

    Args:
        study: the study.
        requeue: the retry hook (also the storage's stale-trial callback).
        pids: only these worker pids (the sweep saw them exit); default: every dead pid.
    """
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = str(t.user_attrs.get("worker", ""))
        pid = pid_here(who, str(t.user_attrs.get("pid_space", "")))
        if pid is None or (pids is not None and pid not in pids):
            continue
        if pids is None and pid_alive(pid):
            continue
        try:
            failed = study.tell(t.number, state=TrialState.FAIL)
        except ValueError:  # another process failed it first
            continue
        requeue(study, failed, f"worker {who} died mid-trial")
