"""`make export`: the study's best trial as best_config.yaml (retrainable), and trials.csv.

best_config.yaml holds the searched values, the whole training config of that trial (with the
training subset cleared, so `make train CONFIG=best_config.yaml` retrains on all 60k training
images) and its provenance: study, trial number, MLflow run id, validation accuracy, date.
"""

import datetime as dt
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from harness.config import deep_merge
from harness.errors import UserError
from harness.sweep_spec import SweepSpec
from harness.urls import masked
from sweep.storage import storage_url
from sweep.study import load_study
from sweep.summary import trials_table
from tracking.provenance import git_commit


def export_best(
    spec: SweepSpec, out: Path = Path("best_config.yaml"), table: Path = Path("trials.csv")
) -> dict:
    """Write `out` and `table` from the study named in `spec`; return the written document."""
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
    best = study.best_trial
    train = deep_merge(
        best.user_attrs["config"],
        {
            "name": f"{spec.study_name}-trial{best.number}",
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
            "trial": best.number,
            "mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
            "objective": f"{spec.objective.reduce} {spec.objective.metric}",
            "val_acc": round(best.value, 4),
            "test_acc_reported": best.user_attrs.get("test_acc"),
            "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
        },
        "searched": best.params,
        "train": train,
    }
    header = (
        f"# Best trial of study {spec.study_name!r}, exported by `make export`.\n"
        "# Retrain it on all 60k training images: make train CONFIG=" + str(out) + "\n"
    )
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    trials_table(study).to_csv(table, index=False)
    return doc
