"""The `findings:` section: seeds, overrides, where the report goes, and the lr-by-batch study.

The claims themselves are Python (`findings.claims`); this section says how to run them. It is
validated with the rest of experiments.yaml (`load`): unknown keys name the closest known one,
and a bad value, an unknown setting or an override that gives no valid training config is one
line naming the file, the key path, the value and what is allowed.
"""

import difflib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from findings.claims import SETTINGS
from harness.config import (
    Experiments,
    Float,
    Int,
    Section,
    Str,
    deep_merge,
    parse_overrides,
)
from harness.errors import UserError
from sweep import spec as sweep_spec
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

    @classmethod
    def precheck(cls, data: dict[str, Any], where: str) -> None:
        """The keys that moved to Python say where they went."""
        for key in ("settings", "claims", "figures"):
            if key in data:
                raise UserError(
                    f"{where}: key 'findings.{key}' is no longer read: the settings, claims and "
                    "figures are Python now, in findings/claims.py; remove it from the file"
                )

    def cross_check(self, experiments: Experiments) -> None:
        """The settings `tuned_lr` names exist, and every setting gives a valid training config
        in both modes, before anything is trained."""
        where = experiments.files["findings"]
        if self.tuned_lr is not None and experiments.file.sweep is None:
            raise UserError(
                f"{where}: key 'findings.tuned_lr' needs a 'sweep:' section in "
                f"{experiments.path}: its study runs on the sweep's storage, hold-out and objective"
            )
        for key in ("setting", "noise_setting") if self.tuned_lr else ():
            s = getattr(self.tuned_lr, key)
            if s not in SETTINGS:
                raise _unknown(where, f"findings.tuned_lr.{key}", s, list(SETTINGS), "setting")
        for name, setting in SETTINGS.items():
            for quick in (False, True):
                try:
                    experiments.resolve(setting.experiment, setting_overrides(self, name, quick))
                except UserError as e:
                    # the core words override errors for the command line; say where they are
                    src = f"{where} (overrides of setting '{name}'" + (
                        ", with quick's)" if quick else ")"
                    )
                    msg = str(e).replace(f"{experiments.path} (command-line override)", src)
                    msg = msg.replace("command line:", f"{src}:", 1)
                    raise UserError(msg if msg.startswith(where) else f"{src}: {msg}") from None


SECTIONS = {**sweep_spec.SECTIONS, "findings": FindingsSpec}  # what this floor reads


def load(
    path: Path | str = "experiments.yaml",
    overrides: dict[str, Any] | None = None,
    spec_file: Path | str | None = None,
) -> Experiments:
    """experiments.yaml with its `sweep:` and `findings:` sections, validated as one; the
    findings section from `spec_file` (a file with a top-level `findings:` key) where given."""
    return Experiments(path, overrides, SECTIONS, {"findings": spec_file})


def _unknown(where: str, path: str, name: str, known: list[str], what: str) -> UserError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return UserError(
        f"{where}: key '{path}' = {name!r} is invalid: unknown {what}; {hint}"
        f"known: {', '.join(known)}"
    )


def setting_overrides(spec: FindingsSpec, name: str, quick: bool) -> dict[str, Any]:
    """The nested overrides of setting `name`: the section's, the setting's, then quick's."""
    layers = [spec.overrides, list(SETTINGS[name].overrides)]
    if quick:
        layers.append(spec.quick.overrides)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, parse_overrides(layer))
    return merged
