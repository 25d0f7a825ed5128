"""The `findings:` section: seeds, overrides, where the report goes, and the lr-by-batch study.

The claims themselves are Python (`findings.claims`); this section says how to run them. It is
validated once, when it is loaded: unknown keys name the closest known one, and a bad value, an
unknown setting or an override that gives no valid training config is one line naming the file,
the key path, the value and what is allowed.
"""

import difflib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from findings.claims import SETTINGS
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
from sweep.spec import PrunerSpec, StudyName


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
    study_name: StudyName = "findings-lr-by-batch"
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
    """Unknown keys, with the closest match, in the section and its `tuned_lr`; the keys that
    moved to Python say where they went."""
    body = raw.get("findings")
    for key in ("settings", "claims", "figures"):
        if isinstance(body, dict) and key in body:
            raise UserError(
                f"{where}: key 'findings.{key}' is no longer read: the settings, claims and "
                "figures are Python now, in findings/claims.py; remove it from the file"
            )
    check_keys(raw, SpecFile, where)
    tuned = body.get("tuned_lr") if isinstance(body, dict) else None
    if isinstance(tuned, dict):
        check_keys(tuned, TunedLr, where, "findings.tuned_lr.")


def _unknown(where: str, path: str, name: str, known: list[str], what: str) -> UserError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return UserError(
        f"{where}: key '{path}' = {name!r} is invalid: unknown {what}; {hint}"
        f"known: {', '.join(known)}"
    )


def _check_references(spec: FindingsSpec, where: str) -> None:
    """The settings `tuned_lr` names exist in `findings.claims.SETTINGS`."""
    if spec.tuned_lr is not None:
        for key in ("setting", "noise_setting"):
            s = getattr(spec.tuned_lr, key)
            if s not in SETTINGS:
                raise _unknown(where, f"findings.tuned_lr.{key}", s, list(SETTINGS), "setting")


def setting_overrides(spec: FindingsSpec, name: str, quick: bool) -> dict[str, Any]:
    """The nested overrides of setting `name`: the section's, the setting's, then quick's."""
    layers = [spec.overrides, list(SETTINGS[name].overrides)]
    if quick:
        layers.append(spec.quick.overrides)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, parse_overrides(layer))
    return merged


def _check_settings_resolve(spec: FindingsSpec, experiments: Experiments, where: str) -> None:
    """Every setting gives a valid training config, in both modes, before anything is trained."""
    for name, setting in SETTINGS.items():
        for quick in (False, True):
            try:
                experiments.resolve(setting.experiment, setting_overrides(spec, name, quick))
            except UserError as e:
                # the harness words override errors for the command line; say where they are here
                src = f"{where} (overrides of setting '{name}'" + (
                    ", with quick's)" if quick else ")"
                )
                msg = str(e).replace(f"{experiments.path} (command-line override)", src)
                msg = msg.replace("command line:", f"{src}:", 1)
                raise UserError(msg if msg.startswith(where) else f"{src}: {msg}") from None
