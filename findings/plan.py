"""The plan: one resolved training config per (setting, seed), each named by a config hash.

The hash is what lets a re-run do only what is missing: a FINISHED run in MLflow whose
`config_hash` tag matches is the same training, whichever setting name, store or machine it came
from. It covers every key that can change the result, and leaves out those that cannot (the hash
itself lives in the core, `harness.config_hash`, shared with the sweep's confirmation).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from findings.spec import Claim, FindingsSpec, setting_overrides
from harness.config import Experiments, TrainConfig, deep_merge
from harness.config_hash import HASH_IGNORED, HASH_IGNORED_PREFIXES, config_hash

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
    jobs: dict[tuple[str, int], Job]
    tracking_uri: str
    artifact_root: str

    @property
    def mlflow_experiment(self) -> str:
        return self.spec.mlflow_experiment

    @property
    def report_path(self) -> Path:
        return Path(self.spec.quick.report if self.quick else self.spec.report)

    def tracking_overrides(self, experiment: str | None = None) -> dict[str, Any]:
        """Config overrides that track a run on the findings' store, in MLflow experiment
        `experiment` (default: the findings experiment)."""
        return _tracking(
            self.tracking_uri, self.artifact_root, experiment or self.spec.mlflow_experiment
        )

    def seeds(self, claim: Claim) -> list[int]:
        """The seeds a claim is judged on: quick's in quick mode, else its own or the section's."""
        if self.quick:
            return list(self.spec.quick.seeds)
        return list(claim.seeds or self.spec.seeds)

    def setting_seeds(self, setting: str) -> list[int]:
        """Every seed planned for `setting`, ascending."""
        return sorted(seed for s, seed in self.jobs if s == setting)

    def unique_jobs(self) -> list[Job]:
        """One job per config hash, seed by seed, so an interrupted run leaves whole seeds done."""
        out: dict[str, Job] = {}
        for job in sorted(self.jobs.values(), key=lambda j: j.seed):
            out.setdefault(job.config_hash, job)
        return list(out.values())


def build_plan(
    spec: FindingsSpec,
    experiments: Experiments,
    quick: bool = False,
    tracking_uri: str | None = None,
    artifact_root: str | None = None,
) -> Plan:
    """Resolve every (setting, seed) that a claim or figure needs into a `Job`.

    Args:
        spec: the validated `findings:` section.
        experiments: the experiments file the settings name experiments of.
        quick: use the `quick:` seeds and overrides.
        tracking_uri, artifact_root: where runs are tracked; default: what the experiments file
            resolves to for the first setting (its `defaults`, normally sqlite:///mlflow.db).
    Returns:
        The plan; every job is tracked in `spec.mlflow_experiment` on one store.
    """
    first = next(iter(spec.settings.values())).experiment
    base = experiments.resolve(first).tracking
    uri = tracking_uri or base.uri
    root = artifact_root or base.artifact_root
    all_seeds = list(spec.quick.seeds if quick else spec.seeds)
    wanted: dict[str, set[int]] = {}
    for claim in spec.claims.values():
        seeds = spec.quick.seeds if quick else (claim.seeds or spec.seeds)
        for s in claim.settings:
            wanted.setdefault(s, set()).update(seeds)
    for fig in spec.figures.values():
        for s in fig.settings:
            wanted.setdefault(s, set(all_seeds))

    forced = _tracking(uri, root, spec.mlflow_experiment)
    jobs: dict[tuple[str, int], Job] = {}
    for name in spec.settings:  # keeps the section's order
        if name not in wanted:
            continue
        over = deep_merge(setting_overrides(spec, name, quick), forced)
        for seed in sorted(wanted[name]):
            cfg = experiments.resolve(spec.settings[name].experiment, {**over, "seed": seed})
            jobs[(name, seed)] = Job(name, seed, cfg, config_hash(cfg))
    return Plan(spec, quick, jobs, uri, root)
