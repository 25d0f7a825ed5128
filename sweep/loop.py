"""One sweep process's trials: Optuna's own loop (`study.optimize`) with the sweep's callbacks.

- `MaxTrialsCallback(n_trials, states=(COMPLETE, PRUNED))` holds the study's total, shared by
  every process on every machine. Each process checks it after its own trial, so k processes may
  end the study up to k - 1 trials over it (Optuna has no atomic "take a trial if the study is
  short"; we do not hold a lock around it).
- `FailureStreak`: `sweep.max_consecutive_failures` failed trials in a row stop the process with
  the last reason (exit 1); the study resumes once the cause is fixed.
- Every exception a trial raises fails that trial, and the study goes on (`catch=(Exception,)`);
  Ctrl-C fails the running trial and ends the process.
"""

from collections.abc import Callable

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from harness.errors import UserError
from sweep import grid
from sweep.objective import Objective
from sweep.recovery import Requeue, fail_dead_here
from sweep.spec import SweepSpec

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
Callback = Callable[[optuna.Study, FrozenTrial], None]


class TrialsKeepFailing(UserError):
    """The last trials all failed: more of the same would only burn time (exit code 1)."""

    exit_code = 1


def count(study: optuna.Study, states=FINISHED) -> int:
    """How many trials of the study are in `states` (default: finished)."""
    return len(study.get_trials(deepcopy=False, states=states))


def study_done(study: optuna.Study, spec: SweepSpec) -> bool:
    """The study has its total of finished trials; a grid study, its distinct points tried."""
    if spec.sampler.name == "grid":
        return grid.done(study, spec)
    return count(study) >= spec.n_trials


class FailureStreak:
    """Stops the study after `limit` failed trials in a row of this process."""

    def __init__(self, limit: int):
        self.limit, self.n, self.last = limit, 0, ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            self.n = 0
            return
        self.n, self.last = self.n + 1, str(trial.user_attrs.get("fail_reason", "unknown"))
        if self.n >= self.limit:
            study.stop()


def run_trials(
    study: optuna.Study,
    objective: Objective,
    spec: SweepSpec,
    requeue: Requeue,
    callbacks: list[Callback],
    say: Callable[[str], None] = print,
) -> None:
    """Run trials until the study holds `spec.n_trials` finished ones (or its grid is done).

    Args:
        study, objective: the study and this process's trial objective.
        spec: the sweep section (`n_trials`, `max_consecutive_failures`).
        requeue: the dead-worker hook; its messages are printed through `say`.
        callbacks: Optuna callbacks after each trial (progress, live study run).
        say: where recovery messages go (a progress bar's write, a worker's prefixed print).
    Raises:
        TrialsKeepFailing: `spec.max_consecutive_failures` trials in a row failed.
    """
    streak = FailureStreak(spec.max_consecutive_failures)

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        requeue.flush(say)

    every = [MaxTrialsCallback(spec.n_trials, states=FINISHED), streak, *callbacks, report]
    while True:
        fail_dead_here(study, requeue)  # a SIGKILLed sweep on this machine left its trial
        report(study, None)
        if study_done(study, spec):
            return
        before, n = count(study, grid.TRIED), None
        if spec.sampler.name == "grid":  # only queued points: the sampler's own pick may be a
            n = count(study, (TrialState.WAITING,))  # point another worker is running
            if n == 0:
                return
        try:
            study.optimize(
                objective, n_trials=n, catch=(Exception,), callbacks=every, gc_after_trial=False
            )
        except ValueError:
            # Optuna cannot record a trial that another process already failed for lack of
            # heartbeat (this machine stalled past the grace period); its retry is queued.
            if objective.lost is None:
                raise
            say(f"trial {objective.lost} was declared dead while it ran; its retry runs instead")
            objective.lost = None
            continue
        if streak.n >= streak.limit:
            raise TrialsKeepFailing(
                f"the last {streak.n} trials failed (sweep.max_consecutive_failures = "
                f"{streak.limit}); last reason: {streak.last}; fix it and run `make sweep` again"
            )
        if count(study, grid.TRIED) == before:
            return  # stopped before a trial ended: do not spin
        # else ask the study again: a retry may have been queued meanwhile
