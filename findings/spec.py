"""The `findings:` section: which of S7's claims to test, on which settings and seeds, how.

A *setting* is a named experiment of experiments.yaml plus dotted overrides (`batch_size=32`),
written exactly as on the command line. A *claim* names the settings it needs, the metrics to
show, S7's own numbers, and the comparisons (`decide`) whose 95% intervals decide it.
The section is validated once, when it is loaded: unknown keys name the closest known one, and a
bad value, an unknown setting or an override that gives no valid training config is one line
naming the file, the key path, the value and what is allowed.
"""

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from harness.config import (
    Experiments,
    Float,
    Int,
    Section,
    Str,
    check_keys,
    deep_merge,
    parse_overrides,
    validation_message,
)
from harness.errors import UserError
from harness.yamlio import read_yaml
from sweep.spec import PrunerSpec

# Per-run numbers a claim can be about; all but n_params are accuracies in percent.
Metric = Literal["best_test_acc", "final_test_acc", "best_train_acc", "gap", "n_params"]
METRICS: tuple[str, ...] = get_args(Metric)
METRIC_MEANING = {
    "best_test_acc": "best test accuracy over the epochs (%)",
    "final_test_acc": "test accuracy after the last epoch (%)",
    "best_train_acc": "best running train accuracy over the epochs (%, train mode, as S7)",
    "gap": "best train accuracy minus best test accuracy (percentage points)",
    "n_params": "trainable parameters of the network",
}
# Per-epoch metrics the trainer logs, for curve figures.
EPOCH_METRICS = ("test_acc", "train_acc", "test_loss", "train_loss", "lr")
Op = Literal[">", ">=", "<", "<="]


class Setting(Section):
    """One training setting: `experiment` from experiments.yaml, then `overrides` (key=value)."""

    experiment: Str
    overrides: list[Str] = []


class Check(Section):
    """One deciding comparison, judged by a 95% t-interval over seeds.

    kind `threshold`: mean of `metric` on `setting` `op` `value`.
    kind `paired`: `metric(setting) - metric(other)` `op` 0, differences taken seed by seed.
    kind `best`: `setting` has the highest `metric`: its paired difference to each of `over` > 0.
    """

    kind: Literal["threshold", "paired", "best"]
    metric: Metric
    setting: Str
    op: Op = ">"
    value: Float | None = None
    other: Str | None = None
    over: list[Str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _fields_match_kind(self) -> "Check":
        needs = {"threshold": "value", "paired": "other", "best": "over"}
        for kind, name in needs.items():
            given = getattr(self, name) is not None
            if kind == self.kind and not given:
                raise ValueError(f"kind '{self.kind}' needs '{name}'")
            if kind != self.kind and given:
                raise ValueError(f"'{name}' is for kind '{kind}', not '{self.kind}'")
        if self.kind == "best" and "op" in self.model_fields_set and self.op != ">":
            raise ValueError("kind 'best' always means higher is better; drop 'op'")
        return self

    def settings(self) -> list[str]:
        """Every setting this comparison reads."""
        return [self.setting, *([self.other] if self.other else []), *(self.over or [])]


class Claim(Section):
    """One claim of S7: its words and numbers, the settings it needs, what decides it."""

    statement: Str
    note: Str = ""  # how we test it, where that differs from what S7 compared
    reported: dict[Str, dict[Metric, Float]] = {}  # S7's reported numbers, per setting
    settings: list[Str] = Field(min_length=1)
    metrics: list[Metric] = ["best_test_acc", "final_test_acc"]
    seeds: list[Int] | None = Field(None, min_length=1)  # default: the section's `seeds`
    decide: dict[Str, Check] = Field(min_length=1)


class Figure(Section):
    """`interval`: mean and 95% interval of a per-run metric per setting (x labelled by config key
    `x` when given); `curves`: a per-epoch metric, mean and 95% band over seeds, per setting."""

    kind: Literal["interval", "curves"]
    title: Str
    metric: Str
    settings: list[Str] = Field(min_length=1)
    x: Str | None = None

    @field_validator("metric")
    @classmethod
    def _metric_for_kind(cls, v: str, info) -> str:
        allowed = METRICS if info.data.get("kind") == "interval" else EPOCH_METRICS
        if v not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return v


class Quick(Section):
    """`--quick`: a smoke test of the machinery on few seeds, few epochs and subsets."""

    seeds: list[Int] = Field([1, 2], min_length=1)
    overrides: list[Str] = ["epochs=2", "data.train_subset=2000", "data.test_subset=1000"]
    report: Str = "reports/findings_quick.md"


class TunedQuick(Section):
    """`--quick` for the lr-by-batch study: a smaller grid and hold-out (another study name)."""

    batch_sizes: list[Int] = Field([64, 128], min_length=2)
    lrs: list[Annotated[Float, Field(gt=0)]] = Field([0.05, 0.1], min_length=1)
    val_size: Int = Field(500, ge=1)
    extend: Int = Field(1, ge=0, le=6)


class TunedLr(Section):
    """Is `reference` still the best batch size once the learning rate is tuned per batch size?

    A grid study over `batch_sizes` x `lrs` at `setting`'s other values, run by the sweep (its
    storage, validation hold-out and objective from the `sweep:` section): each batch size's best
    lr is chosen on validation accuracy, never on the test set. The tuned batch sizes are then
    compared with a margin for run-to-run noise, taken from the spread over seeds of
    `noise_setting`'s final test accuracy (one 10k-image evaluation, like one validation score).
    A batch size whose best lr is the smallest (largest) it has tried is tried again at half
    (twice) that lr, at most `extend` steps past the grid, until its best lr is interior.
    """

    question: Str
    study_name: Str = "findings-lr-by-batch"
    setting: Str = "file3"
    reference: Int = 128
    batch_sizes: list[Int] = Field(min_length=2)
    lrs: list[Annotated[Float, Field(gt=0)]] = Field(min_length=1)
    extend: Int = Field(3, ge=0, le=6)  # halvings (doublings) past the grid's edge, at most
    pruners: list[PrunerSpec] = []  # only to stop hopeless trials: a pruned point is not compared
    noise_setting: Str = "file3"
    quick: TunedQuick = TunedQuick()

    @model_validator(mode="after")
    def _reference_in_grid(self) -> "TunedLr":
        grids = (("batch_sizes", self.batch_sizes), ("quick.batch_sizes", self.quick.batch_sizes))
        for where, sizes in grids:
            if self.reference not in sizes:
                raise ValueError(f"reference {self.reference} must be one of {where} {sizes}")
            if len(set(sizes)) != len(sizes):
                raise ValueError(f"{where} {sizes} has duplicates")
        return self


class FindingsSpec(Section):
    """The whole `findings:` section."""

    mlflow_experiment: Str = "findings"
    seeds: list[Int] = Field([1, 2, 3, 4, 5], min_length=1)
    overrides: list[Str] = []  # applied to every run, before each setting's own overrides
    report: Str = "reports/findings.md"
    quick: Quick = Quick()
    settings: dict[Str, Setting] = Field(min_length=1)
    claims: dict[Str, Claim] = Field(min_length=1)
    figures: dict[Str, Figure] = {}
    tuned_lr: TunedLr | None = None  # the view S7 could not take (see TunedLr)


class SpecFile(Section):
    """A file holding the section under a top-level `findings:` key (like experiments.yaml)."""

    findings: FindingsSpec


# ---------------------------------------------------------------- loading


def load_spec(experiments: Experiments, path: Path | str | None = None) -> tuple[FindingsSpec, str]:
    """Load and validate the `findings:` section, resolving every setting against `experiments`.

    Args:
        experiments: the loaded experiments.yaml the settings name experiments of.
        path: a file with a top-level `findings:` key; None means the experiments file's own
            `findings:` section.
    Returns:
        The validated spec and the file it came from (for messages).
    Raises:
        UserError: one line naming the file, key path, bad value and what is allowed.
    """
    if path is None:
        if experiments.file.findings is None:
            raise UserError(f"{experiments.path}: no 'findings:' section; add one (see README)")
        raw, where = {"findings": experiments.file.findings}, str(experiments.path)
    else:
        where = str(path)
        raw = read_yaml(Path(where))
    _check_all_keys(raw, where)
    try:
        spec = SpecFile.model_validate(raw).findings
    except ValidationError as e:
        raise UserError(validation_message(e, lambda _: where)) from None
    _check_references(spec, where)
    _check_settings_resolve(spec, experiments, where)
    return spec, where


def _check_all_keys(raw: dict[str, Any], where: str) -> None:
    """Unknown keys anywhere, with the closest match: check_keys on every section, mapping entry
    by mapping entry, so the key path names the setting, claim, part or figure."""
    check_keys(raw, SpecFile, where)
    body = raw.get("findings")
    if not isinstance(body, dict):
        return
    tuned = body.get("tuned_lr")
    if isinstance(tuned, dict):
        check_keys(tuned, TunedLr, where, "findings.tuned_lr.")
    for section, model in (("settings", Setting), ("claims", Claim), ("figures", Figure)):
        items = body.get(section)
        for name, item in items.items() if isinstance(items, dict) else []:
            check_keys(item, model, where, f"findings.{section}.{name}.")
            if section == "claims" and isinstance(item, dict):
                tests = item.get("decide")
                for part, check in tests.items() if isinstance(tests, dict) else []:
                    check_keys(check, Check, where, f"findings.claims.{name}.decide.{part}.")


def _unknown(where: str, path: str, name: str, known: list[str], what: str) -> UserError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return UserError(
        f"{where}: key '{path}' = {name!r} is invalid: unknown {what}; {hint}"
        f"known: {', '.join(known)}"
    )


def _check_references(spec: FindingsSpec, where: str) -> None:
    """Every setting a claim or figure names exists; every compared setting is in its claim."""
    known = list(spec.settings)
    for cid, claim in spec.claims.items():
        for s in claim.settings:
            if s not in spec.settings:
                raise _unknown(where, f"findings.claims.{cid}.settings", s, known, "setting")
        for s in claim.reported:
            if s not in claim.settings:
                raise _unknown(
                    where, f"findings.claims.{cid}.reported", s, claim.settings, "setting"
                )
        for part, check in claim.decide.items():
            for s in check.settings():
                if s not in claim.settings:
                    raise _unknown(
                        where,
                        f"findings.claims.{cid}.decide.{part}",
                        s,
                        claim.settings,
                        "setting (list it in the claim's settings)",
                    )
    for name, fig in spec.figures.items():
        for s in fig.settings:
            if s not in spec.settings:
                raise _unknown(where, f"findings.figures.{name}.settings", s, known, "setting")
    if spec.tuned_lr is not None:
        for key in ("setting", "noise_setting"):
            s = getattr(spec.tuned_lr, key)
            if s not in spec.settings:
                raise _unknown(where, f"findings.tuned_lr.{key}", s, known, "setting")


def setting_overrides(spec: FindingsSpec, name: str, quick: bool) -> dict[str, Any]:
    """The nested overrides of setting `name`: the section's, the setting's, then quick's."""
    layers = [spec.overrides, spec.settings[name].overrides]
    if quick:
        layers.append(spec.quick.overrides)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, parse_overrides(layer))
    return merged


def _check_settings_resolve(spec: FindingsSpec, experiments: Experiments, where: str) -> None:
    """Every setting gives a valid training config, in both modes, before anything is trained."""
    for name, setting in spec.settings.items():
        for quick in (False, True):
            try:
                experiments.resolve(setting.experiment, setting_overrides(spec, name, quick))
            except UserError as e:
                # the harness words override errors for the command line; say where they are here
                src = f"{where} (overrides of setting 'findings.settings.{name}'" + (
                    ", with quick's)" if quick else ")"
                )
                msg = str(e).replace(f"{experiments.path} (command-line override)", src)
                msg = msg.replace("command line:", f"{src}:", 1)
                raise UserError(msg if msg.startswith(where) else f"{src}: {msg}") from None
    for name, fig in spec.figures.items():
        leaves = experiments.resolve(spec.settings[fig.settings[0]].experiment).flat()
        if fig.x is not None and fig.x not in leaves:
            raise _unknown(where, f"findings.figures.{name}.x", fig.x, list(leaves), "config key")
