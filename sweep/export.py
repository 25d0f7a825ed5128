"""`make export`: the study's chosen config as best_config.yaml (retrainable), trials.csv and,
when the study was confirmed, confirm.csv.

The chosen config is the confirmation's (`sweep.confirm`: the top trials and the baseline re-run
over paired seeds, the best mean) when the study has one that is up to date; otherwise the study's
best trial, and the file says plainly that this is a single-seed pick. best_config.yaml holds the
searched values, the whole training config (with the training subset cleared, so
`make train CONFIG=best_config.yaml` retrains on all 60k training images) and its provenance:
study, trial, MLflow run id, validation accuracy, the confirmation (candidates, seeds, means,
intervals, paired difference to the baseline, verdict), the registered model, date, commit.
"""

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from harness.config import deep_merge
from harness.errors import UserError
from harness.urls import masked, scrub_text
from sweep.confirm import current
from sweep.confirm import table as confirm_table
from sweep.spec import SweepSpec
from sweep.storage import storage_url
from sweep.study import load_study
from sweep.summary import trials_table
from tracking.provenance import git_commit
from tracking.registry import ALIAS, register_champion

SINGLE_SEED = "single-seed pick"
CONFIRMED = "confirmed over paired seeds"
# what best_config.yaml keeps of each confirmation candidate (not its whole config)
CANDIDATE_KEYS = ("candidate", "trial", "params", "values", "mean", "lo", "hi")
CANDIDATE_KEYS += ("diff_mean", "diff_lo", "diff_hi", "test_acc_mean")


def export_best(
    spec: SweepSpec,
    out: Path = Path("best_config.yaml"),
    table: Path = Path("trials.csv"),
    tracking_uri: str | None = None,
) -> dict:
    """Write `out`, `table` and (confirmed) confirm.csv beside `table` from the study in `spec`,
    and register the chosen config's logged model with the alias `champion`.

    Args:
        spec: the sweep section (study, storage, `confirm`).
        out, table: where best_config.yaml and trials.csv go.
        tracking_uri: the MLflow store of the study's runs, for the model registry (None: the
            model is not registered, and the file says why).
    Returns:
        The written document.
    Raises:
        UserError: no such study, or it has no completed trial (nothing is written).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(spec)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
        if pruned:
            raise UserError(
                f"study {spec.study_name!r} has no completed trial: all {pruned} finished trials "
                "were pruned; loosen sweep.pruners (e.g. a lower ThresholdPruner 'lower' or more "
                "'n_warmup_steps'), or train longer (epochs, data.train_subset), then "
                "`make sweep N_TRIALS=...` for more trials"
            )
        raise UserError(
            f"study {spec.study_name!r} has no completed trial yet; run `make sweep` first"
        )
    if spec.confirm.k:
        confirmation, why = current(study)
    else:
        confirmation, why = None, "sweep.confirm.k = 0 (the confirmation is off)"
    if confirmation:
        chosen = next(
            c for c in confirmation["candidates"] if c["candidate"] == confirmation["chosen"]
        )
        trial = study.trials[chosen["trial"]] if chosen["trial"] is not None else None
        config, searched, label = chosen["config"], dict(chosen["params"]), chosen["candidate"]
        pick = f"{CONFIRMED}: {confirmation['chosen']}, {confirmation['verdict']} the baseline"
    else:
        trial = study.best_trial
        config, searched, label = (
            trial.user_attrs["config"],
            dict(trial.params),
            f"trial{trial.number}",
        )
        pick = (
            f"{SINGLE_SEED}: the study's best trial at one seed, not confirmed over seeds ({why})"
        )
    train = deep_merge(
        config,
        {
            "name": f"{spec.study_name}-{label.replace('-', '')}",
            "data": {"train_subset": None},  # retrain on all 60k training images
            "tracking": {"experiment": "train"},
            # the trial pinned the device it ran on and hid its epoch lines; a retrain picks
            # its own machine's device and shows progress, like `make train`
            "device": "auto",
            "progress": True,
        },
    )
    doc = {
        "provenance": {
            "study": spec.study_name,
            "storage": masked(storage_url(spec)),
            "pick": pick,
            "trial": trial.number if trial else None,
            "mlflow_run_id": trial.user_attrs.get("mlflow_run_id") if trial else None,
            "objective": f"{spec.objective.reduce} {spec.objective.metric}",
            "val_acc": round(trial.value, 4) if trial else None,
            "test_acc_reported": trial.user_attrs.get("test_acc") if trial else None,
            "confirmation": _confirmation(confirmation) if confirmation else None,
            "model": _register(spec, trial, tracking_uri),
            "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
        },
        "searched": searched,
        "train": train,
    }
    what = (
        f"Config confirmed over {len(confirmation['seeds'])} paired seeds"
        if confirmation
        else "Best trial (a single-seed pick, not confirmed over seeds)"
    )
    header = (
        f"# {what} of study {spec.study_name!r}, exported by `make export`.\n"
        "# Retrain it on all 60k training images: make train CONFIG=" + str(out) + "\n"
    )
    if confirmation:
        header += (
            f"# Train its confirmation run of seed S again: {retrain_command(spec, config, out)}\n"
        )
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    trials_table(study).to_csv(table, index=False)
    if confirmation:
        confirm_table(confirmation).to_csv(table.parent / "confirm.csv", index=False)
    return doc


def retrain_command(spec: SweepSpec, config: dict, out: Path) -> str:
    """`make train` of one confirmation run again (seed S): the same data, hold-out and subset,
    so its per-epoch val_acc repeats the logged run's on the same machine and thread count."""
    subset = config.get("data", {}).get("train_subset")
    args = ["seed=S", *([f"data.train_subset={subset}"] if subset else [])]
    args += [f"--val-size {spec.val_size}", f"--split-seed {spec.split_seed}"]
    return f'make train CONFIG={out} ARGS="{" ".join(args)}"'


def _confirmation(doc: dict[str, Any]) -> dict[str, Any]:
    """What best_config.yaml records of the confirmation."""
    keep = ("seeds", "objective", "level", "chosen", "chosen_trial", "verdict", "difference")
    out = {k: doc[k] for k in keep}
    # copies: yaml writes a dict met twice (a candidate's params, `searched`) as an &anchor
    out["candidates"] = [
        {k: copy.deepcopy(c[k]) for k in CANDIDATE_KEYS} for c in doc["candidates"]
    ]
    out |= {k: doc[k] for k in ("runs", "epochs", "seconds", "confirmed")}
    return out


def _register(spec: SweepSpec, trial, tracking_uri: str | None) -> dict[str, Any]:
    """Register the chosen trial's logged model as `<study>@champion`, or say why not."""
    if trial is None:
        return {"registered": False, "why": "the chosen config (the baseline) never ran as a trial"}
    model_id = trial.user_attrs.get("mlflow_model_id")
    if not model_id:
        why = "sweep.log_models is off" if not spec.log_models else "its trial logged no model"
        return {"registered": False, "why": f"{why} (trial {trial.number})"}
    if tracking_uri is None:
        return {"registered": False, "why": "no tracking store given"}
    try:
        version = register_champion(
            tracking_uri,
            spec.study_name,
            model_id,
            trial.user_attrs.get("mlflow_run_id"),
            f"The exported config of study {spec.study_name!r} (make export).",
        )
    except RuntimeError as e:
        return {"registered": False, "why": scrub_text(str(e))}
    return {
        "registered": True,
        "name": spec.study_name,
        "version": version,
        "alias": ALIAS,
        "uri": f"models:/{spec.study_name}@{ALIAS}",
        "model_id": model_id,
    }
