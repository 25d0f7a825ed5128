"""A grid study's points, kept by their parameters rather than by Optuna's grid ids.

`GridSampler` numbers its points in an order shuffled by its seed and marks a trial with the
number (`grid_id`). A process whose sampler has another seed reads those numbers as other
points: a resumed grid study ran points twice and left others out, and then called itself
done. Here every point a study still needs is enqueued with its parameters (Optuna's queue
hands each to one worker), and a grid is done when its trials hold enough distinct points.
"""

import itertools
from typing import Any

import optuna
from optuna.trial import TrialState

from sweep.space import grid_values
from sweep.spec import SweepSpec

TRIED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # a diverged point stays tried


class QueuedGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its stop: it stops the study once its own grid ids are
    used up (and fails a queued trial, which has none, when one id is left); `done` decides."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of the grid, in the order the space lists its keys and values."""
    values = grid_values(spec.space)
    return [dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())]


def target(spec: SweepSpec) -> int:
    """How many distinct points the study wants: `n_trials`, at most the whole grid."""
    return min(spec.n_trials, len(points(spec)))


def params_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The point a trial holds: a queued one has only the parameters it was enqueued with (and
    a running one may not have suggested them all yet)."""
    return trial.system_attrs.get("fixed_params", trial.params)


def _held(study: optuna.Study, states: tuple[TrialState, ...] | None) -> list[dict[str, Any]]:
    return [params_of(t) for t in study.get_trials(deepcopy=False, states=states)]


def _holds(held: list[dict[str, Any]], point: dict[str, Any]) -> bool:
    return any(h.keys() == point.keys() and all(h[k] == v for k, v in point.items()) for h in held)


def tried(study: optuna.Study, spec: SweepSpec) -> int:
    """Distinct grid points with a finished trial (completed, pruned or failed)."""
    held = _held(study, TRIED)
    return sum(_holds(held, p) for p in points(spec))


def enqueue_missing(study: optuna.Study, spec: SweepSpec) -> int:
    """Queue the points no trial holds yet (in any state), as many as the study still wants.
    Returns how many were queued."""
    held, every = _held(study, None), points(spec)
    missing = [p for p in every if not _holds(held, p)]
    todo = missing[: max(0, target(spec) - (len(every) - len(missing)))]
    for p in todo:
        study.enqueue_trial(p)
    return len(todo)


def done(study: optuna.Study, spec: SweepSpec) -> bool:
    """Enough distinct points have been tried and no queued trial (a retry) waits."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return not waiting and tried(study, spec) >= target(spec)
