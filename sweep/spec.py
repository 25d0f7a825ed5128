"""The `sweep:` section of experiments.yaml, validated like every other key.

It says what the study searches (`space`, keyed by the dotted config key each parameter sets),
how it samples and prunes, what it optimises (validation accuracy on a fixed hold-out of the
training images; the test set never chooses), where the study lives and how many finished trials
it needs. `load` validates it with the rest of the file, its overrides and environment, into a
`SweepSpec` (`experiments.section("sweep")`).
"""

import difflib
import inspect
import warnings
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from harness.config import (
    SEED_MAX,
    Bool,
    Experiments,
    Float,
    Int,
    Section,
    Str,
    TrainConfig,
    _fmt,
    deep_merge,
    flatten,
    unflatten,
)
from harness.errors import UserError, cut


def _no_quotes(v: str) -> str:
    # the name is matched in MLflow search filters ('...'): a quote would end the string there
    if any(c in v for c in "'\"\\"):
        raise ValueError("quotes and backslashes are not allowed in a study name")
    if not v.strip():
        raise ValueError("a study name cannot be empty")
    return v


StudyName = Annotated[Str, AfterValidator(_no_quotes)]


class ParamSpec(Section):
    """One searched parameter: `float` / `int` ranges (optionally log or stepped) or `categorical`."""

    type: Literal["float", "int", "categorical"]
    low: Float | None = None
    high: Float | None = None
    log: Bool = False
    step: Float | None = Field(None, gt=0)
    choices: list[Any] | None = None
    grid: list[Any] | None = None  # the values a grid sampler visits for a float/int range

    @model_validator(mode="after")
    def _consistent(self) -> "ParamSpec":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            if len(set(map(repr, self.choices))) != len(self.choices):
                raise ValueError("'choices' has duplicates")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("'log' and 'step' cannot be used together")
        if self.type == "int" and any(
            v is not None and float(v) != int(v) for v in (self.low, self.high, self.step)
        ):
            raise ValueError("an int parameter needs whole-number low, high and step")
        if self.grid is not None and not self.grid:
            raise ValueError("'grid' must list at least one value")
        return self

    def values_to_check(self) -> list[Any]:
        """Values that must each give a valid training config (range ends, choices, grid)."""
        if self.type == "categorical":
            return list(self.choices or [])
        ends = [self.low, self.high]
        if self.type == "int":
            ends = [int(v) for v in ends]
        return ends + list(self.grid or [])


SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler"}


class SamplerSpec(Section):
    """An Optuna sampler by short name; `args` go to its constructor (checked at load time)."""

    name: Literal["tpe", "random", "grid"] = "tpe"
    seed: Int | None = Field(0, ge=0, le=2**32 - 1)
    args: dict[str, Any] = {}

    @model_validator(mode="after")
    def _arguments_fit(self) -> "SamplerSpec":
        import optuna

        cls = getattr(optuna.samplers, SAMPLERS[self.name])
        taken = ("search_space", "seed") if self.name == "grid" else ("seed",)
        try:
            if any(k in taken for k in self.args):
                raise TypeError(f"set {', '.join(taken)} elsewhere, not in args")
            inspect.signature(cls).bind_partial(**self.args)
            if self.name != "grid":  # the grid sampler also needs the space: built by sweep/
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cls(**self.args)
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad arguments {self.args} for {cls.__name__}: {e}") from None
        return self


def _pruner_classes() -> dict[str, type]:
    import optuna

    base = optuna.pruners.BasePruner
    return {
        n: c
        for n, c in vars(optuna.pruners).items()
        if isinstance(c, type) and issubclass(c, base) and c is not base and n != "PatientPruner"
    }


class PrunerSpec(Section):
    """Any Optuna pruner by class name, with its constructor's keyword arguments."""

    name: Str
    args: dict[str, Any] = {}

    @model_validator(mode="after")
    def _buildable(self) -> "PrunerSpec":
        classes = _pruner_classes()
        if self.name not in classes:
            raise ValueError(f"unknown pruner; known: {', '.join(sorted(classes))}")
        try:
            inspect.signature(classes[self.name]).bind(**self.args)
            self.build()
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad arguments {self.args} for {self.name}: {e}") from None
        return self

    def build(self):
        return _pruner_classes()[self.name](**self.args)


class ObjectiveSpec(Section):
    """What the study maximises: validation accuracy at the last epoch, or its best over epochs."""

    metric: Literal["val_acc"] = "val_acc"
    reduce: Literal["final", "best"] = "final"


class HeartbeatSpec(Section):
    """How a trial whose worker died (SIGKILL, OOM, a lost machine) is found and run again.

    A running trial's worker writes a heartbeat every `interval` seconds; a trial without one for
    `grace_period` seconds is failed and re-queued with the same parameters, at most `max_retry`
    times. The grace period must outlast the longest stall of a busy machine, or a live trial
    is declared dead.
    """

    interval: Int = Field(30, ge=1)
    grace_period: Int = Field(120, ge=2)
    max_retry: Int = Field(1, ge=0)

    @model_validator(mode="after")
    def _grace_outlasts_beats(self) -> "HeartbeatSpec":
        if self.grace_period <= self.interval:
            raise ValueError(
                f"grace_period ({self.grace_period} s) must be longer than interval "
                f"({self.interval} s), or every running trial looks dead"
            )
        return self


class ConfirmSpec(Section):
    """The confirmation that ends a sweep: the study's top `k` completed trials and the baseline,
    each trained again at every seed of `seeds` (paired: seed i of every config shares initial
    weights and data order) on the study's hold-out; `make export` ships the best mean. k = 0
    turns it off."""

    k: Int = Field(3, ge=0, le=100)
    # at least two: a 95% interval needs them. Not the trials' own seed (1 by default): a top
    # trial's run at that seed repeats, bit for bit, the lucky value it was chosen on.
    seeds: list[Annotated[int, Field(strict=True, ge=0, le=SEED_MAX)]] = Field(
        [2, 3, 4, 5, 6], min_length=2
    )

    @model_validator(mode="after")
    def _unique_seeds(self) -> "ConfirmSpec":
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(
                f"'seeds' has duplicates: {self.seeds}; each seed pairs the configs once"
            )
        return self


class SweepSpec(Section):
    HELP: ClassVar[str] = "see README, 'The sweep'"  # where a missing section is explained
    study_name: StudyName = "s7-sweep"
    storage: Str | None = None  # None: sqlite:///runs/optuna.db; env OPTUNA_STORAGE wins
    workers: Int = Field(1, ge=1, le=256)  # processes on this machine working the one study
    base_experiment: Str = "s7_file3"  # fixed settings: backbone, epochs, augmentation, momentum
    n_trials: Int = Field(20, ge=1)  # total finished (COMPLETE or PRUNED) trials of the study
    max_consecutive_failures: Int = Field(5, ge=1)  # failed trials in a row that stop the sweep
    val_size: Int = Field(10000, ge=1, le=59999)  # held out of the 60k training images
    split_seed: Int = 0
    objective: ObjectiveSpec = ObjectiveSpec()
    sampler: SamplerSpec = SamplerSpec()
    pruners: list[PrunerSpec] = []  # all must agree not to prune; empty = no pruning
    enqueue_baseline: Bool = True  # the base experiment's own values are trial 0
    enqueue: list[dict[Annotated[str, Field(min_length=1)], Any]] = []  # more fixed first trials
    space: dict[str, ParamSpec]
    show_epochs: Bool = False
    evaluate_test: Bool = True  # completed trials report test accuracy (never optimised)
    log_models: Bool = True
    mlflow_experiment: Str | None = None  # None: the study name
    heartbeat: HeartbeatSpec = HeartbeatSpec()
    confirm: ConfirmSpec = ConfirmSpec()

    @model_validator(mode="after")
    def _grid_needs_values(self) -> "SweepSpec":
        if self.sampler.name == "grid":
            missing = [k for k, p in self.space.items() if p.type != "categorical" and not p.grid]
            if missing:
                raise ValueError(f"the grid sampler needs a 'grid' list for {', '.join(missing)}")
        if not self.space:
            raise ValueError("'space' must name at least one parameter")
        return self

    @classmethod
    def precheck(cls, data: dict[str, Any], where: str) -> None:
        """Before the keys are checked: a searched key written with dots (see check_space_keys)."""
        check_space_keys(data.get("space"), where)

    def cross_check(self, experiments: Experiments) -> None:
        """Every searched key is a config key, and every range end, choice, grid value and enqueued
        value gives a valid training config, so a bad range fails when the file is loaded, before
        any trial is written to the study."""
        experiments.resolve(self.base_experiment)  # names a known experiment
        leaves = list(TrainConfig().flat())
        for key, param in self.space.items():
            if key not in leaves:
                close = difflib.get_close_matches(key, leaves, n=1, cutoff=0.5)
                hint = f"did you mean '{close[0]}'?" if close else "expected a dotted config key"
                where = experiments.where_of(f"sweep.space.{key}")
                raise UserError(f"{where}: unknown searched key 'sweep.space.{key}'; {hint}")
            for value in param.values_to_check():
                _check_value(experiments, self, f"sweep.space.{key}", key, value)
        for i, params in enumerate(self.enqueue):
            for key, value in params.items():
                if key not in self.space:
                    raise UserError(
                        f"{experiments.where_of(f'sweep.enqueue[{i}]')}: key "
                        f"'sweep.enqueue[{i}].{key}' is not a searched key; "
                        f"searched: {', '.join(self.space)}"
                    )
                _check_value(experiments, self, f"sweep.enqueue[{i}].{key}", key, value)


# ---------------------------------------------------------------- its relations to the file


def check_space_keys(space: Any, where: str) -> None:
    """Refuse `sweep.space.optimizer.lr.high=...` (read as a searched key 'optimizer') with the
    spelling that works: a searched key holds dots, so it is written in brackets."""
    if not isinstance(space, dict):
        return
    leaves = set(TrainConfig().flat())
    for key, value in space.items():
        if key in leaves or not isinstance(value, dict):
            continue
        for sub, v in flatten(value).items():
            full = f"{key}.{sub}".split(".")
            for n in range(len(full) - 1, 0, -1):
                leaf, rest = ".".join(full[:n]), ".".join(full[n:])
                if leaf in leaves:
                    raise UserError(
                        f"{where}: key 'sweep.space.{cut(key, 80)}.{cut(sub, 80)}' is read as "
                        f"searched key '{cut(key, 80)}'; searched keys hold dots, so write "
                        f"sweep.space[{leaf}].{rest}={_fmt(v)}"
                    )


SECTIONS = {"sweep": SweepSpec}  # what this floor reads of experiments.yaml


def load(path: Path | str = "experiments.yaml", overrides: dict[str, Any] | None = None):
    """experiments.yaml with its `sweep:` section, validated with the overrides and environment."""
    return Experiments(path, overrides, SECTIONS)


def _check_value(
    experiments: Experiments, spec: SweepSpec, path: str, key: str, value: Any
) -> None:
    """`value` at searched `key` over the base experiment (with the file's overrides and the
    environment, as a trial resolves it) gives a valid training config, or a one-line error."""
    overrides = deep_merge(experiments.overrides, unflatten({key: value}))
    data = experiments.merged(spec.base_experiment, overrides)
    try:
        TrainConfig.model_validate(data)
    except ValidationError as e:
        msg = e.errors()[0]["msg"].removeprefix("Value error, ")
        raise UserError(
            f"{experiments.where_of(path)}: key '{path}' = {_fmt(value)} is invalid for '{key}': "
            f"{msg[0].lower() + msg[1:]}"
        ) from None
