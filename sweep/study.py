"""`make sweep`: open (or resume) the study, run trials until it has enough finished ones.

The study lives in Optuna storage (default: a SQLite file under runs/, no server; a PostgreSQL
URL for many machines, see `sweep.storage`) and is mirrored in MLflow: one experiment per study,
one parent run for the study, one nested run per trial. Running it again resumes the same study
and stops at the configured total of finished (COMPLETE or PRUNED) trials. With
`sweep.workers: 1` (the default) trials run in this process; with more, in worker processes
(`sweep.workers`), all working the one study.
"""

import warnings
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from harness.config import Experiments, TrainConfig, deep_merge
from harness.data import load_split, subset, train_val_split
from harness.device import resolve_device
from harness.errors import UserError
from harness.sweep_spec import SweepSpec
from harness.urls import masked, scrub
from sweep.loop import FINISHED, StartGate, count, grid_done, work
from sweep.objective import Objective, SweepData
from sweep.pruning import build_pruner
from sweep.recovery import Recovery
from sweep.space import baseline_params, grid_values
from sweep.storage import DEFAULT_STORAGE, open_storage, storage_url
from sweep.summary import log_study_summary
from tracking import RunHandle, Tracker, provenance_tags
from tracking.mlflow_store import check_reachable

__all__ = ["DEFAULT_STORAGE", "FINISHED", "count", "masked", "open_study", "run_sweep"]


def build_sampler(spec: SweepSpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler. Worker i seeds it with seed + i: workers seeded alike would
    propose the same first (random start-up) trials."""
    s = spec.sampler
    seed = None if s.seed is None else s.seed + worker
    args = dict(s.args)
    if s.name == "tpe" and spec.workers > 1:
        # Optuna's advice for parallel TPE: treat running trials as bad so workers spread out.
        args.setdefault("constant_liar", True)
    try:
        if s.name == "grid":
            return optuna.samplers.GridSampler(grid_values(spec.space), seed=seed, **args)
        if s.name == "random":
            return optuna.samplers.RandomSampler(seed=seed, **args)
        return optuna.samplers.TPESampler(seed=seed, **args)
    except TypeError as e:
        raise UserError(
            f"key 'sweep.sampler.args' = {s.args} is invalid for {s.name}: {e}"
        ) from None


def open_study(
    spec: SweepSpec,
    storage: optuna.storages.BaseStorage | None = None,
    worker: int = 0,
) -> optuna.Study:
    """Create the study, or load it when it exists (same name, same storage).

    Args:
        spec: the sweep section.
        storage: an opened storage (default: open `spec`'s, with heartbeats, no recovery hook).
        worker: the worker's index, for the sampler's seed.
    Raises:
        UserError: the storage cannot be opened (one line, password masked).
    """
    storage = storage or open_storage(spec)
    try:
        return optuna.create_study(
            storage=storage,
            study_name=spec.study_name,
            direction="maximize",
            sampler=build_sampler(spec, worker),
            pruner=build_pruner(spec.pruners),
            load_if_exists=True,
        )
    except UserError:
        raise
    except Exception as e:  # the database went away between opening and creating
        url = storage_url(spec)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise UserError(
            f"study storage {masked(url)!r} cannot be used: {type(e).__name__}: {scrub(first, url)}"
        ) from None


def load_data(cfg: TrainConfig, spec: SweepSpec, device) -> SweepData:
    """Fixed hold-out of the 60k training images for validation; the test set only for reports."""
    full = load_split(cfg.data.root, train=True)
    tr, val = train_val_split(full, spec.val_size, seed=spec.split_seed)
    tr = subset(tr, cfg.data.train_subset)
    te = subset(load_split(cfg.data.root, train=False), cfg.data.test_subset)
    return SweepData(tr.to(device), val.to(device), te.to(device))


def parent_run(tracker: Tracker, spec: SweepSpec, storage: str, device: str) -> RunHandle:
    """The study's one parent run: found again on resume, or created."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.role = 'study' and tags.study_name = '{spec.study_name}'",
        max_results=1,
    )
    tags = {"role": "study", "study_name": spec.study_name, "storage": masked(storage)}
    if runs:
        handle = RunHandle(tracker.client, runs[0].info.run_id)
        tracker.client.update_run(handle.run_id, status="RUNNING")
        return handle
    handle = tracker.start_run(spec.study_name, {**tags, **provenance_tags(device)})
    handle.log_params({f"sweep.{k}": v for k, v in _flat_spec(spec).items()})
    return handle


def _flat_spec(spec: SweepSpec) -> dict[str, Any]:
    from harness.config import flatten

    data = spec.model_dump(mode="json")
    data["storage"] = masked(data["storage"]) if data["storage"] else None
    return flatten(data)


def run_sweep(
    experiments: Experiments,
    spec: SweepSpec,
    fixed: dict[str, Any] | None = None,
) -> optuna.Study:
    """Run the study until it holds `spec.n_trials` finished trials; log it all to MLflow.

    Args:
        experiments: the loaded experiments file.
        spec: the validated sweep section (with command-line and environment overrides applied).
        fixed: training-config overrides applied to every trial (e.g. epochs=3 for a quick look).
    Returns:
        The Optuna study.
    Raises:
        UserError: a store cannot be reached (nothing is written then), or workers failed
            before the study had its trials (`WorkersFailed`, exit code 1).
    """
    fixed = fixed or {}
    base = experiments.resolve(spec.base_experiment, fixed)
    device = resolve_device(base.device)
    storage = storage_url(spec)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial outcomes are reported below
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    check_reachable(base.tracking.uri)  # before the study is created or changed
    recovery = Recovery(spec, base.tracking.uri)
    study = open_study(spec, open_storage(spec, on_stale=recovery))
    messages = recovery.check(study)  # what a killed earlier run left RUNNING
    done = count(study)
    print(
        f"study {spec.study_name!r} at {masked(storage)}: {done}/{spec.n_trials} finished trials; "
        f"device {device}; objective {spec.objective.reduce} {spec.objective.metric}"
        + (f"; {spec.workers} workers" if spec.workers > 1 else ""),
        flush=True,
    )
    for line in messages:
        print(line, flush=True)
    if done >= spec.n_trials:
        print("nothing to do: the study already has its trials (raise N_TRIALS for more)")
        return study
    if grid_done(study):
        print("nothing to do: every point of the grid has been tried")
        return study
    if not study.trials:  # a new study: the baseline to beat first, then any fixed trials
        if spec.enqueue_baseline:
            study.enqueue_trial(baseline_params(spec.space, base), user_attrs={"baseline": True})
        for params in spec.enqueue:
            study.enqueue_trial(params)

    tracker = Tracker(
        base.tracking.uri, spec.mlflow_experiment or spec.study_name, base.tracking.artifact_root
    )
    parent = parent_run(tracker, spec, storage, str(device))
    status = "FAILED"
    try:
        if spec.workers == 1:
            _run_here(study, spec, experiments, fixed, base, device, tracker, parent, recovery)
        else:
            from sweep.workers import run_workers

            run_workers(study, spec, experiments, fixed, base, device, tracker, parent, recovery)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        print("\ninterrupted: running trials are recorded as failed; `make sweep` resumes")
        raise
    finally:
        recovery.tracking_uri = tracker.uri
        try:
            log_study_summary(study, parent, spec)
        finally:
            parent.finish(status)
    _print_outcome(study)
    return study


def _run_here(study, spec, experiments, fixed, base, device, tracker, parent, recovery) -> None:
    """One worker: trials run in this process, with a progress bar."""
    data = load_data(base, spec, device)
    objective = Objective(
        spec, experiments, deep_merge(fixed, {"device": str(device)}), data, device, tracker, parent
    )
    bar = tqdm(
        total=spec.n_trials, initial=count(study), desc="trials", unit="trial", dynamic_ncols=True
    )

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state in FINISHED:
            bar.update(1)
        if trial.state == TrialState.FAIL:
            bar.write(f"trial {trial.number} failed: {trial.user_attrs.get('fail_reason', '?')}")
        best = max((t.value for t in study.get_trials(states=(TrialState.COMPLETE,))), default=None)
        bar.set_postfix(
            best=f"{best:.2f}" if best is not None else "-",
            pruned=count(study, (TrialState.PRUNED,)),
            failed=count(study, (TrialState.FAIL,)),
        )

    gate = StartGate(storage_url(spec), spec.study_name)
    try:
        work(study, objective, spec, recovery, gate, on_trial=after_trial, say=bar.write)
    finally:
        bar.close()


def _print_outcome(study: optuna.Study) -> None:
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    print(
        f"trials: {len(complete)} complete, {count(study, (TrialState.PRUNED,))} pruned, "
        f"{count(study, (TrialState.FAIL,))} failed"
    )
    if complete:
        b = study.best_trial
        test = b.user_attrs.get("test_acc")
        print(
            f"best: trial {b.number}, validation accuracy {b.value:.2f}%"
            + (f" (test {test:.2f}%, reported only)" if test is not None else "")
            + f", params {b.params}"
        )
