"""The validated `space` checked against the study it will run: the baseline trial, grid values,
and what cannot be searched. (A trial's suggestions are `sweep.objective.suggest`.)"""

from typing import Any

from harness.config import TrainConfig
from harness.errors import UserError
from sweep.spec import ParamSpec, SweepSpec


def baseline_params(space: dict[str, ParamSpec], base: TrainConfig) -> dict[str, Any]:
    """The base experiment's own values of the searched keys (the seed's File3 by default)."""
    flat = base.flat()
    return {key: flat[key] for key in space}


def grid_values(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """What a grid sampler visits: the choices of categoricals, the `grid` list of ranges."""
    return {k: list(p.choices if p.type == "categorical" else p.grid) for k, p in space.items()}


# read once per study (data.root, device) or not training settings at all: never searched
NOT_SEARCHABLE = ("name", "device", "progress", "data.root", "tracking.")


def _holds(p: ParamSpec, value: Any) -> bool:
    if p.type == "categorical":
        return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in p.choices)
    return isinstance(value, int | float) and p.low <= value <= p.high


def check_space(spec: SweepSpec, base: TrainConfig, where: str) -> None:
    """Refuse, before any store is written, a space the study could not run: a key that is not
    searchable, or a baseline / enqueued value outside the searched range or choices.

    Args:
        spec: the sweep section.
        base: the resolved base experiment (with the fixed overrides): the baseline's values.
        where: the experiments file, for messages.
    Raises:
        UserError: one line naming the key, the value and what is allowed.
    """
    for key in spec.space:
        if any(key == n or key.startswith(n) for n in NOT_SEARCHABLE):
            raise UserError(
                f"{where}: key 'sweep.space.{key}' cannot be searched: it is read once per study "
                "or does not change training; search training settings (optimizer.*, model.*, "
                "scheduler.*, batch_size, data.train_subset, ...)"
            )
    given = [(f"sweep.enqueue[{i}]", params) for i, params in enumerate(spec.enqueue)]
    if spec.enqueue_baseline:
        given.insert(
            0, (f"the baseline ({spec.base_experiment})", baseline_params(spec.space, base))
        )
    for who, params in given:
        for key, value in params.items():
            p = spec.space[key]
            if not _holds(p, value):
                allowed = (
                    f"choices {p.choices}" if p.type == "categorical" else f"[{p.low}, {p.high}]"
                )
                fix = (
                    "; widen the space or set sweep.enqueue_baseline: false"
                    if who.startswith("the baseline")
                    else ""
                )
                raise UserError(
                    f"{where}: key 'sweep.space.{key}' does not hold {who}'s value {value!r}: "
                    f"allowed {allowed}{fix}"
                )
