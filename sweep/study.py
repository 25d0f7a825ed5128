"""`make sweep`: check everything, open (or resume) the study, run trials until it has enough.

The study lives in Optuna storage (default: a SQLite file under runs/, no server; a PostgreSQL
URL for many machines) and is mirrored in MLflow: one experiment per study, one parent run for
the study, one nested run per trial. Before anything is written, the config, the search space,
the data and the tracking store are checked. A study knows what it is: when it is created, a
fingerprint of everything that makes its trials comparable is stored with it, and resuming it
with other settings is refused. With `sweep.workers: k > 1`, k processes of the same command
work the study (`sweep.workers`).
"""

import functools
import hashlib
import json
import warnings
from typing import Any

import numpy as np
import optuna
import torch
from tqdm import tqdm

from harness.config import Experiments, TrainConfig, deep_merge, flatten
from harness.data import ensure_mnist
from harness.device import resolve_device
from harness.errors import UserError
from harness.processes import owner
from harness.urls import masked, scrub_text
from sweep import grid
from sweep.confirm import describe as describe_confirmation
from sweep.confirm import run_confirmation
from sweep.loop import FINISHED, count, run_trials, study_done
from sweep.objective import Objective, load_data
from sweep.pruning import build_pruner
from sweep.recovery import Requeue
from sweep.space import baseline_params, check_space, grid_values
from sweep.spec import SweepSpec
from sweep.storage import DEFAULT_STORAGE, open_storage, storage_url
from sweep.summary import finish_study_run, log_invocation, pruning_savings, update_study_run
from sweep.workers import WorkerPlan, describe_trial, run_workers
from tracking import RunHandle, Tracker, provenance_tags
from tracking.mlflow_store import check_reachable

__all__ = [
    "DEFAULT_STORAGE",
    "FINISHED",
    "confirm_study",
    "count",
    "load_data",
    "load_study",
    "open_study",
    "run_sweep",
]

# config keys that do not change what a trial computes: left out of the study's fingerprint
NOT_COMPARED = ("name", "device", "progress", "data.root", "tracking.")


def study_settings(spec: SweepSpec, base: TrainConfig) -> dict[str, Any]:
    """Everything that makes the study's trials comparable, as flat `{key: value}`."""
    train = {
        k: v
        for k, v in base.flat().items()
        if not any(k == n or k.startswith(n) for n in NOT_COMPARED) and k not in spec.space
    }
    space = {k: p.model_dump(mode="json", exclude_none=True) for k, p in spec.space.items()}
    return flatten(
        {
            "train": train,
            "space": space,
            "objective": spec.objective.model_dump(mode="json"),
            "val_size": spec.val_size,
            "split_seed": spec.split_seed,
        }
    )


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def sampler_seed(seed: int | None, n_trials: int, worker: int) -> int | None:
    """The sampler's seed for a process that finds `n_trials` trials in the study: a new stream
    for every start and every worker, so a resumed or parallel process never replays the
    proposals of an earlier one, and the same history gives the same seed."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, n_trials, worker]).generate_state(1)[0])


def build_sampler(spec: SweepSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    """The configured sampler (arguments already checked by the config loader)."""
    s, args = spec.sampler, dict(spec.sampler.args)
    if s.name == "grid":
        # the seed shuffles the grid's ids: every process must share it (sweep/grid.py)
        return grid.QueuedGridSampler(grid_values(spec.space), seed=s.seed, **args)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed, **args)
    if spec.workers > 1:  # Optuna's advice for parallel TPE: running trials count as bad
        args.setdefault("constant_liar", True)
    return optuna.samplers.TPESampler(seed=seed, **args)


def load_study(spec: SweepSpec, storage: optuna.storages.BaseStorage | None = None):
    """The existing study named in `spec` (for readers such as `make export`); never creates.

    Raises:
        UserError: no storage or no such study (the message lists the studies there).
    """
    storage = storage or open_storage(spec, create=False)
    try:
        return optuna.load_study(study_name=spec.study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise UserError(
            f"no study {spec.study_name!r} in {masked(storage_url(spec))}; "
            + (f"studies there: {', '.join(names)}" if names else "it holds no study yet")
            + " (set sweep.study_name=NAME)"
        ) from None


def open_study(
    spec: SweepSpec, base: TrainConfig, storage: optuna.storages.BaseStorage, worker: int = 0
) -> tuple[optuna.Study, bool]:
    """Load the study, or create it with its fingerprint; refuse one made with other settings.

    Args:
        spec, base: the sweep section and the resolved base config (fixed overrides applied).
        storage: the opened storage.
        worker: this process's worker index (for the sampler's seed).
    Returns:
        The study, with this process's sampler and pruner, and whether it was created now.
    Raises:
        UserError: the study exists with another fingerprint (names the keys that differ), or
            the storage failed (password masked).
    """
    settings = study_settings(spec, base)
    created = False
    try:
        try:
            study = optuna.load_study(study_name=spec.study_name, storage=storage)
        except KeyError:
            study = optuna.create_study(
                storage=storage,
                study_name=spec.study_name,
                direction="maximize",
                load_if_exists=True,  # another machine may create it at the same moment
            )
            created = not study.trials
        if study.user_attrs.get("fingerprint") is None:  # new, or made before studies knew
            study.set_user_attr("fingerprint", fingerprint(settings))  # what they are: adopt it
            study.set_user_attr("settings", settings)
        check_settings(study, spec, base)
        n = len(study.trials)
    except UserError:
        raise
    except Exception as e:  # the database went away between opening and using it
        raise UserError(
            f"study storage {masked(storage_url(spec))!r} cannot be used: "
            f"{type(e).__name__}: {scrub_text(str(e).strip().splitlines()[0][:300])}"
        ) from None
    study.sampler = build_sampler(spec, sampler_seed(spec.sampler.seed, n, worker))
    study.pruner = build_pruner(spec.pruners)
    return study, created


def check_settings(study: optuna.Study, spec: SweepSpec, base: TrainConfig) -> None:
    """Refuse a study created with other settings than `spec` and `base`.

    Raises:
        UserError: one line naming the keys that differ and how to start a separate study.
    """
    settings = study_settings(spec, base)
    stored = study.user_attrs.get("fingerprint")
    if stored is not None and stored != fingerprint(settings):
        _refuse(spec, study.user_attrs.get("settings", {}), settings)


def _refuse(spec: SweepSpec, stored: dict[str, Any], now: dict[str, Any]) -> None:
    keys = sorted(k for k in stored.keys() | now.keys() if stored.get(k) != now.get(k))
    shown = "; ".join(f"{k}: {stored.get(k)!r} -> {now.get(k)!r}" for k in keys[:6])
    more = f" (and {len(keys) - 6} more)" if len(keys) > 6 else ""
    raise UserError(
        f"study {spec.study_name!r} was created with other settings ({shown}{more}); its trials "
        "would not be comparable: start a separate study with sweep.study_name=NAME"
    )


class TrialRuns:
    """The study's MLflow experiment, opened on first use (opening a SQLite store creates it)."""

    def __init__(self, spec: SweepSpec, base: TrainConfig, uri: str | None = None):
        self.spec, self.base = spec, base
        self.uri = uri or base.tracking.uri

    @functools.cached_property
    def tracker(self) -> Tracker:
        name = self.spec.mlflow_experiment or self.spec.study_name
        return Tracker(self.uri, name, self.base.tracking.artifact_root)

    def parent(self, device: str, create: bool = True) -> RunHandle | None:
        """The study's one parent run: found again (set RUNNING) or created."""
        t, name = self.tracker, self.spec.study_name
        found = t.client.search_runs(
            [t.experiment_id],
            filter_string=f"tags.role = 'study' and tags.study_name = '{name}'",
            max_results=1,
        )
        if found:
            handle = RunHandle(t.client, found[0].info.run_id)
            t.client.update_run(handle.run_id, status="RUNNING")
            handle.set_tags(owner())  # its owner now
            return handle
        if not create:
            return None
        tags = {"role": "study", "study_name": name, "storage": masked(storage_url(self.spec))}
        handle = t.start_run(name, {**tags, **provenance_tags(device)})
        spec = self.spec.model_dump(mode="json")
        spec["storage"] = masked(spec["storage"]) if spec["storage"] else None
        handle.log_params({f"sweep.{k}": v for k, v in flatten(spec).items()})
        return handle

    def close(self, number: int, reason: str) -> None:
        """End trial `number`'s RUNNING runs KILLED, tagged with why (its worker died)."""
        t = self.tracker
        runs = t.client.search_runs(
            [t.experiment_id],
            filter_string=(
                f"tags.study_name = '{self.spec.study_name}' and tags.trial_number = '{number}'"
                " and attributes.status = 'RUNNING'"
            ),
        )
        for run in runs:
            RunHandle(t.client, run.info.run_id).set_tags(
                {
                    "state": "FAIL",
                    "fail_reason": scrub_text(reason)[:500],
                    "closed_by": "sweep recovery",
                }
            )
            t.client.set_terminated(run.info.run_id, "KILLED")


def run_sweep(
    experiments: Experiments,
    spec: SweepSpec,
    fixed: dict[str, Any] | None = None,
    command: list[str] | None = None,
    worker: WorkerPlan | None = None,
) -> optuna.Study:
    """Run the study until it holds `spec.n_trials` finished trials; log it all to MLflow.

    Args:
        experiments: the loaded experiments file.
        spec: the validated sweep section (with command-line and environment overrides applied).
        fixed: training-config overrides applied to every trial (e.g. epochs=3 for a quick look).
        command: this sweep's command-line arguments, which `spec.workers` > 1 starts again
            once per worker.
        worker: set in such a worker process: its index, device and CPU threads.
    Returns:
        The Optuna study.
    Raises:
        UserError: bad settings, data or stores (nothing is written then); `WorkersFailed` or
            `TrialsKeepFailing` (exit code 1) when the study stopped short of its trials.
    """
    fixed = deep_merge(fixed or {}, {"device": worker.device} if worker else {})
    base = experiments.resolve(spec.base_experiment, fixed)
    check_space(spec, base, str(experiments.path))
    device = resolve_device(base.device)
    if worker:
        torch.set_num_threads(worker.threads)
    local = spec.workers == 1 or worker is not None  # this process trains
    data = load_data(base, spec, device) if local else ensure_mnist(base.data.root)
    check_reachable(base.tracking.uri)  # everything above writes nothing
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial outcomes are reported below
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    runs = TrialRuns(spec, base)
    requeue = Requeue(spec.heartbeat.max_retry, spec.heartbeat.grace_period, runs.close)
    storage = open_storage(spec, on_stale=requeue)
    study, created = open_study(spec, base, storage, worker.index if worker else 0)
    if worker is None:
        print(
            f"study {spec.study_name!r} at {masked(storage_url(spec))}: "
            f"{count(study)}/{spec.n_trials} finished trials; device {device}; "
            f"objective {spec.objective.reduce} {spec.objective.metric}"
            + (f"; {spec.workers} workers" if spec.workers > 1 else ""),
            flush=True,
        )
    if created:  # the baseline to beat first, then any fixed trials
        if spec.enqueue_baseline:
            study.enqueue_trial(baseline_params(spec.space, base), user_attrs={"baseline": True})
        for params in spec.enqueue:
            study.enqueue_trial(params)
    if worker is None and spec.sampler.name == "grid":
        grid.enqueue_missing(study, spec)  # by parameters: see sweep/grid.py
    confirm = worker is None and spec.confirm.k > 0  # the confirmation may still lack runs
    if study_done(study, spec) and not confirm:
        if worker is None and spec.sampler.name == "grid":
            print("nothing to do: every point of the grid has been tried")
        elif worker is None:
            print("nothing to do: the study already has its trials (raise N_TRIALS for more)")
        return study

    parent = runs.parent(str(device))

    def live(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        update_study_run(study, parent, spec)  # counters, best so far, the best trial's mark

    if worker is not None:
        objective = Objective(spec, experiments, fixed, data, device, runs.tracker, parent)

        def say(line: str) -> None:
            print(f"[worker {worker.index}] {line}", flush=True)

        done = [lambda s, t: say(describe_trial(t)), live]
        run_trials(study, objective, spec, requeue, done, say)
        return study
    log_invocation(parent, spec, fixed)
    failed, confirmed = True, None
    try:
        if local:
            _run_here(study, spec, experiments, fixed, data, device, runs, parent, requeue, live)
        elif not study_done(study, spec):
            uri = runs.tracker.uri  # the experiment exists before the workers look for it
            run_workers(command or [], spec, str(device), study, requeue, uri, base)
        if confirm:
            data = data if local else load_data(base, spec, device)
            confirmed = run_confirmation(
                study, spec, experiments, fixed, data, device, runs.tracker, parent
            )
        failed = False
    except KeyboardInterrupt:
        failed = False  # stopped, not failed: the study run ends KILLED
        print("\ninterrupted: running trials are recorded as failed; `make sweep` resumes")
        raise
    finally:
        finish_study_run(study, parent, spec, error=failed)
    _print_outcome(study)
    if confirmed:
        print(describe_confirmation(confirmed, pruning_savings(study.trials)["seconds_trained"]))
    return study


def _run_here(study, spec, experiments, fixed, data, device, runs, parent, requeue, live) -> None:
    """One process: trials run here, with a progress bar."""
    fixed = deep_merge(fixed, {"device": str(device)})
    objective = Objective(spec, experiments, fixed, data, device, runs.tracker, parent)
    bar = tqdm(total=spec.n_trials, initial=count(study), desc="trials", unit="trial")

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bar.update(trial.state in FINISHED)
        if trial.state == optuna.trial.TrialState.FAIL:
            bar.write(describe_trial(trial))
        best = max((t.value for t in study.get_trials(states=(FINISHED[0],))), default=None)
        bar.set_postfix(
            best=f"{best:.2f}" if best is not None else "-",
            pruned=count(study, (FINISHED[1],)),
            failed=count(study, (optuna.trial.TrialState.FAIL,)),
        )

    try:
        run_trials(study, objective, spec, requeue, [after_trial, live], bar.write)
    finally:
        bar.close()


def _print_outcome(study: optuna.Study) -> None:
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    print(
        f"trials: {len(complete)} complete, {count(study, (optuna.trial.TrialState.PRUNED,))} "
        f"pruned, {count(study, (optuna.trial.TrialState.FAIL,))} failed"
    )
    if complete:
        b = study.best_trial
        test = b.user_attrs.get("test_acc")
        print(
            f"best: trial {b.number}, validation accuracy {b.value:.2f}%"
            + (f" (test {test:.2f}%, reported only)" if test is not None else "")
            + f", params {b.params}"
        )


def confirm_study(
    experiments: Experiments, spec: SweepSpec, fixed: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`make confirm`: only the confirmation, on the existing study (never creates one).

    Args:
        experiments, spec: the experiments file and its sweep section (`confirm.k` > 0).
        fixed: the study's fixed training overrides (as given to `make sweep`).
    Returns:
        The confirmation (see `sweep.confirm.summarize`); it is printed too.
    Raises:
        UserError: confirmation off, no such study, a study made with other settings, no
            completed trial, no MLflow run of the study, an unreachable store (nothing written).
    """
    fixed = fixed or {}
    if not spec.confirm.k:
        raise UserError("sweep.confirm.k is 0 (off): nothing to confirm; set sweep.confirm.k=3")
    base = experiments.resolve(spec.base_experiment, fixed)
    device = resolve_device(base.device)
    study = load_study(spec)
    check_settings(study, spec, base)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise UserError(
            f"study {spec.study_name!r} has no completed trial to confirm; run `make sweep` first"
        )
    check_reachable(base.tracking.uri)
    runs = TrialRuns(spec, base)
    parent = runs.parent(str(device), create=False)
    if parent is None:
        raise UserError(
            f"study {spec.study_name!r} has no run in the MLflow store {masked(base.tracking.uri)}; "
            "give the store its trials were logged to (tracking.uri or MLFLOW_TRACKING_URI)"
        )
    data = load_data(base, spec, device)
    failed = True
    try:
        doc = run_confirmation(study, spec, experiments, fixed, data, device, runs.tracker, parent)
        failed = False
    except KeyboardInterrupt:
        failed = False
        print("\ninterrupted: finished confirmation runs are kept; `make confirm` resumes")
        raise
    finally:
        finish_study_run(study, parent, spec, error=failed)
    print(describe_confirmation(doc, pruning_savings(study.trials)["seconds_trained"]))
    return doc
