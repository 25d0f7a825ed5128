"""`make sweep`: open (or resume) the study, run trials until it has enough finished ones.

The study lives in Optuna storage (default: a SQLite file under runs/, no server; a PostgreSQL
URL for many machines) and is mirrored in MLflow: one experiment per study, one parent run for
the study, one nested run per trial. Running it again resumes the same study and stops at the
configured total of finished (COMPLETE or PRUNED) trials.
"""

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from tqdm import tqdm

from harness.config import Experiments, TrainConfig, deep_merge
from harness.data import load_split, subset, train_val_split
from harness.device import resolve_device
from harness.errors import UserError
from harness.sweep_spec import SweepSpec
from harness.trainer import DivergedError
from sweep.objective import Objective, SweepData
from sweep.pruning import build_pruner
from sweep.space import baseline_params, grid_values
from sweep.summary import log_study_summary
from tracking import RunHandle, Tracker, provenance_tags

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DEFAULT_STORAGE = "sqlite:///runs/optuna.db"


def storage_url(spec: SweepSpec) -> str:
    url = spec.storage or DEFAULT_STORAGE
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def masked(url: str) -> str:
    """The URL with any password replaced by ***, for logs, tags and artifacts."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (e.g. an HTTP tracking server)
        return url


def build_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    s = spec.sampler
    try:
        if s.name == "grid":
            return optuna.samplers.GridSampler(grid_values(spec.space), seed=s.seed, **s.args)
        if s.name == "random":
            return optuna.samplers.RandomSampler(seed=s.seed, **s.args)
        return optuna.samplers.TPESampler(seed=s.seed, **s.args)
    except TypeError as e:
        raise UserError(
            f"key 'sweep.sampler.args' = {s.args} is invalid for {s.name}: {e}"
        ) from None


def open_study(spec: SweepSpec) -> optuna.Study:
    """Create the study, or load it when it exists (same name, same storage)."""
    try:
        return optuna.create_study(
            storage=storage_url(spec),
            study_name=spec.study_name,
            direction="maximize",
            sampler=build_sampler(spec),
            pruner=build_pruner(spec.pruners),
            load_if_exists=True,
        )
    except UserError:
        raise
    except Exception as e:  # unreachable server, bad URL, missing driver
        raise UserError(
            f"sweep.storage {masked(storage_url(spec))!r} cannot be opened: "
            f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        ) from None


def count(study: optuna.Study, states=FINISHED) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


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
        spec: the validated sweep section (with command-line overrides applied).
        fixed: training-config overrides applied to every trial (e.g. epochs=3 for a quick look).
    Returns:
        The Optuna study.
    """
    fixed = fixed or {}
    base = experiments.resolve(spec.base_experiment, fixed)
    device = resolve_device(base.device)
    storage = storage_url(spec)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial outcomes are reported below
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = open_study(spec)
    done = count(study)
    print(
        f"study {spec.study_name!r} at {masked(storage)}: {done}/{spec.n_trials} finished trials; "
        f"device {device}; objective {spec.objective.reduce} {spec.objective.metric}",
        flush=True,
    )
    if done >= spec.n_trials:
        print("nothing to do: the study already has its trials (raise N_TRIALS for more)")
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
    data = load_data(base, spec, device)
    objective = Objective(
        spec, experiments, deep_merge(fixed, {"device": str(device)}), data, device, tracker, parent
    )
    bar = tqdm(total=spec.n_trials, initial=done, desc="trials", unit="trial", dynamic_ncols=True)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished = count(study)
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
        if finished >= spec.n_trials:
            study.stop()

    status = "FINISHED"
    try:
        study.optimize(objective, catch=(DivergedError,), callbacks=[after_trial])
    except KeyboardInterrupt:
        status = "KILLED"
        print("\ninterrupted: the running trial is recorded as failed; `make sweep` resumes")
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        bar.close()
        try:
            log_study_summary(study, parent, spec)
        finally:
            parent.finish(status)
    _print_outcome(study)
    return study


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
