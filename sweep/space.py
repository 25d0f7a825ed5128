"""From the validated `space` to Optuna: suggestions, the baseline trial, grid values."""

from typing import Any

import optuna

from harness.config import TrainConfig
from harness.sweep_spec import ParamSpec


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """One value per searched key, named by the dotted config key it sets."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.type == "categorical":
            out[key] = trial.suggest_categorical(key, p.choices)
        elif p.type == "int":
            out[key] = trial.suggest_int(
                key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log
            )
        else:
            out[key] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
    return out


def baseline_params(space: dict[str, ParamSpec], base: TrainConfig) -> dict[str, Any]:
    """The base experiment's own values of the searched keys (the seed's File3 by default)."""
    flat = base.flat()
    return {key: flat[key] for key in space}


def grid_values(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """What a grid sampler visits: the choices of categoricals, the `grid` list of ranges."""
    return {k: list(p.choices if p.type == "categorical" else p.grid) for k, p in space.items()}
