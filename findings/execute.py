"""Train what the plan needs and MLflow does not hold yet, one tracked run per missing config.

Each run goes through `tracking.job.run_training`, exactly as `make train` would run it, into the
findings experiment, tagged with its config hash, setting, seed and mode. Before each run the
store is asked again, so a re-run skips everything finished and an interrupted one resumes; a run
that a killed process left RUNNING is ended KILLED first (`tracking.mlflow_store.end_orphans`).
"""

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from findings.plan import Job, Plan
from findings.store import HASH_TAG, MODE_TAG, SETTING_TAG, experiment_id, finished_run
from harness.trainer import DivergedError
from harness.urls import with_driver
from model_zoo import create_model
from tracking.job import run_training
from tracking.mlflow_store import end_orphans


@dataclass(frozen=True)
class ExecuteSummary:
    """What `run_missing` did: runs trained, found already finished, and diverged (left FAILED)."""

    ran: int
    skipped: int
    diverged: int


def _mode(plan: Plan) -> str:
    return "quick" if plan.quick else "full"


def n_params(job: Job) -> int:
    """Trainable parameters of the network the job trains (logged as tag `n_params`)."""
    model = create_model(job.cfg.model.name, dropout=job.cfg.model.dropout)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run_tags(plan: Plan, job: Job) -> dict[str, str | int]:
    """Tags that identify a findings run and the host it ran on (CPU count is not in provenance)."""
    return {
        HASH_TAG: job.config_hash,
        SETTING_TAG: job.setting,
        "seed": job.seed,
        MODE_TAG: _mode(plan),
        "n_params": n_params(job),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 0,
    }


def run_missing(plan: Plan, log: Callable[[str], None] = print) -> ExecuteSummary:
    """Run every unique job of `plan` that has no FINISHED run with its config hash.

    Args:
        plan: the plan to complete.
        log: where one progress line per job goes.
    Returns:
        Counts of runs trained, skipped (already finished) and diverged.
    """
    client = MlflowClient(tracking_uri=with_driver(plan.tracking_uri))
    jobs = plan.unique_jobs()
    exp_id = experiment_id(client, plan.mlflow_experiment)
    mode = f"tags.{MODE_TAG} = '{_mode(plan)}'"  # findings runs only, not a study's
    for line in end_orphans(client, exp_id, mode) if exp_id else []:
        log(line)
    ran = skipped = diverged = 0
    for i, job in enumerate(jobs, 1):
        head = f"[{i}/{len(jobs)}] {job.setting} seed {job.seed} ({job.config_hash})"
        # asked per job, not once up front: another process may have finished it meanwhile
        if finished_run(client, experiment_id(client, plan.mlflow_experiment), job.config_hash):
            skipped += 1
            log(f"{head}: already in MLflow, skipped")
            continue
        log(f"{head}: training {job.cfg.epochs} epochs, batch {job.cfg.batch_size}")
        try:
            outcome = run_training(job.cfg, tags=run_tags(plan, job))
        except DivergedError as e:  # the run is left FAILED; the report counts it as missing
            diverged += 1
            log(f"{head}: {e}")
            continue
        ran += 1
        log(f"{head}: best test accuracy {outcome.best_test_acc:.2f}%")
    return ExecuteSummary(ran, skipped, diverged)
