"""The plan: one resolved training config per (setting, seed), each named by a config hash.

The hash is what lets a re-run do only what is missing: a FINISHED run in MLflow whose
`config_hash` tag matches is the same training, whichever setting name, store or machine it came
from. It covers every key that can change the result, and leaves out those that cannot (the hash
itself lives in the core, `harness.config_hash`, shared with the sweep's confirmation).
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from findings.claims import CLAIMS, FIGURES, SETTINGS
from findings.spec import FindingsSpec, setting_overrides
from findings.verdicts import ClaimFunction, Judge
from harness.config import Experiments, TrainConfig, deep_merge
from harness.config_hash import HASH_IGNORED, HASH_IGNORED_PREFIXES, config_hash
from harness.errors import UserError, cut

__all__ = ["HASH_IGNORED", "HASH_IGNORED_PREFIXES", "Job", "Plan", "build_plan", "config_hash"]


@dataclass(frozen=True)
class Job:
    """One training run the findings need: a setting at one seed."""

    setting: str
    seed: int
    cfg: TrainConfig
    config_hash: str


def _tracking(uri: str, artifact_root: str, experiment: str) -> dict[str, Any]:
    return {
        "tracking": {
            "uri": uri,
            "artifact_root": artifact_root,
            "experiment": experiment,
            "enabled": True,
        }
    }


@dataclass(frozen=True)
class Plan:
    """Every (setting, seed) the claims and figures need, resolved, plus where runs are tracked."""

    spec: FindingsSpec
    quick: bool
    only: tuple[str, ...] | None  # --claims: the names chosen (None: everything)
    jobs: dict[tuple[str, int], Job]
    tracking_uri: str
    artifact_root: str

    @property
    def claims(self) -> list[ClaimFunction]:
        """The claim functions chosen (all without `--claims`)."""
        return [fn for fn in CLAIMS if self.only is None or fn.__name__ in self.only]

    @property
    def tuned(self) -> bool:
        """The lr-by-batch study is part of it."""
        return self.spec.tuned_lr is not None and (self.only is None or "tuned_lr" in self.only)

    @property
    def mlflow_experiment(self) -> str:
        return self.spec.mlflow_experiment

    @property
    def report_path(self) -> Path:
        """The spec's report; a partial one (`--claims`) beside it as `<name>_partial.md`, so it
        never replaces the whole report."""
        path = Path(self.spec.quick.report if self.quick else self.spec.report)
        return path if self.only is None else path.with_name(f"{path.stem}_partial{path.suffix}")

    def tracking_overrides(self, experiment: str | None = None) -> dict[str, Any]:
        """Config overrides that track a run on the findings' store, in MLflow experiment
        `experiment` (default: the findings experiment)."""
        return _tracking(
            self.tracking_uri, self.artifact_root, experiment or self.spec.mlflow_experiment
        )

    @property
    def seeds(self) -> list[int]:
        """The seeds every setting is run and judged on: quick's in quick mode."""
        return list(self.spec.quick.seeds if self.quick else self.spec.seeds)

    @property
    def hashes(self) -> dict[tuple[str, int], str]:
        return {key: job.config_hash for key, job in self.jobs.items()}

    def setting_seeds(self, setting: str) -> list[int]:
        """Every seed planned for `setting`, ascending."""
        return sorted(seed for s, seed in self.jobs if s == setting)

    def unique_jobs(self) -> list[Job]:
        """One job per config hash, seed by seed, so an interrupted run leaves whole seeds done."""
        out: dict[str, Job] = {}
        for job in sorted(self.jobs.values(), key=lambda j: j.seed):
            out.setdefault(job.config_hash, job)
        return list(out.values())


def claim_names() -> list[str]:
    """What `--claims` can pick: every claim, and `tuned_lr` for the lr-by-batch study."""
    return [fn.__name__ for fn in CLAIMS] + ["tuned_lr"]


def build_plan(
    spec: FindingsSpec,
    experiments: Experiments,
    quick: bool = False,
    tracking_uri: str | None = None,
    artifact_root: str | None = None,
    only: list[str] | None = None,
) -> Plan:
    """Resolve every (setting, seed) the chosen claims need into a `Job`.

    Args:
        spec: the validated `findings:` section.
        experiments: the experiments file the settings name experiments of.
        quick: use the `quick:` seeds and overrides.
        tracking_uri, artifact_root: where runs are tracked; default: what the experiments file
            resolves to (its `defaults`, normally sqlite:///mlflow.db).
        only: the claims (names from `claim_names`) to run; None: all, with every figure's
            settings too.
    Returns:
        The plan; every job is tracked in `spec.mlflow_experiment` on one store.
    Raises:
        UserError: `only` names an unknown claim, or `tuned_lr` where the spec has none.
    """
    known = claim_names()
    for name in only or []:
        if name not in known:
            raise UserError(
                f"command line: --claims {cut(name)!r} is invalid: unknown claim; "
                f"known: {', '.join(known)}"
            )
    if only is not None and "tuned_lr" in only and spec.tuned_lr is None:
        raise UserError(
            "command line: --claims names tuned_lr, but the spec has no findings.tuned_lr"
        )
    base = experiments.resolve(next(iter(SETTINGS.values())).experiment).tracking
    uri = tracking_uri or base.uri
    root = artifact_root or base.artifact_root
    draft = Plan(spec, quick, None if only is None else tuple(only), {}, uri, root)
    seeds = draft.seeds
    wanted = {s for fn in draft.claims for s in fn(Judge({}, seeds)).settings}  # no runs: names
    if only is None:
        wanted |= {s for fig in FIGURES.values() for s in fig.settings}
    if draft.tuned:
        wanted.add(spec.tuned_lr.noise_setting)  # its seeds' spread is the tuned verdict's margin
    forced = _tracking(uri, root, spec.mlflow_experiment)
    jobs: dict[tuple[str, int], Job] = {}
    for name, setting in SETTINGS.items():  # keeps their order
        if name not in wanted:
            continue
        over = deep_merge(setting_overrides(spec, name, quick), forced)
        for seed in seeds:
            cfg = experiments.resolve(setting.experiment, {**over, "seed": seed})
            jobs[(name, seed)] = Job(name, seed, cfg, config_hash(cfg))
    return replace(draft, jobs=jobs)
