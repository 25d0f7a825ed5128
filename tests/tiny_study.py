"""A tiny study in real Optuna and MLflow stores, built in a second with ask/tell and the tracking
functions the sweep calls (no training): a complete trial, a pruned one, the best one (with a
logged model), a failed one. The UI tests look at it in a browser."""

import math
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from model_zoo import create_model
from sweep.spec import SweepSpec
from sweep.summary import finish_study_run, log_invocation, update_study_run
from tracking import Tracker
from tracking.datasets import sweep_inputs
from tracking.resolution import round_accuracies
from tracking.trial_runs import end_trial_run, run_link, searched_tags

STUDY = "tiny-study"
# (lr, batch size, val_acc per epoch, outcome); epochs budget 3
PLAN = [
    (0.05, 128, [97.12, 98.05, 98.31], "COMPLETE"),
    (0.2, 64, [93.5, 94.1], "PRUNED"),
    (0.1, 128, [97.5, 98.4, 98.72], "COMPLETE"),
    (0.3, 64, [math.nan], "FAIL"),
]


def build(tmp: Path) -> dict:
    """Write the study under `tmp`; return its URIs, spec and run ids by outcome."""
    uri = f"sqlite:///{tmp}/mlflow.db"
    spec = SweepSpec(
        study_name=STUDY,
        storage=f"sqlite:///{tmp}/optuna.db",
        n_trials=3,
        val_size=500,
        space={
            "optimizer.lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
            "batch_size": {"type": "categorical", "choices": [64, 128]},
        },
    )
    dists = {
        "optimizer.lr": FloatDistribution(0.01, 0.3, log=True),
        "batch_size": CategoricalDistribution([64, 128]),
    }
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=STUDY, storage=spec.storage, direction="maximize")
    tracker = Tracker(uri, STUDY, str(tmp / "artifacts"))
    parent = tracker.start_run(STUDY, {"role": "study", "study_name": STUDY})
    log_invocation(parent, spec, {"epochs": 3})
    study_link = run_link(tracker.experiment_id, parent.run_id)
    runs = {}
    for lr, batch, accs, outcome in PLAN:
        study.enqueue_trial({"optimizer.lr": lr, "batch_size": batch})
        trial = study.ask(dists)
        run = tracker.start_run(
            f"trial-{trial.number}",
            {"trial_number": trial.number, "state": "RUNNING", **searched_tags(trial.params)},
            parent=parent,
        )
        trial.set_user_attr("mlflow_run_id", run.run_id)
        trial.set_user_attr("config", {"epochs": 3})
        run.log_params({"optimizer.lr": lr, "batch_size": batch, "epochs": 3})
        run.log_inputs(sweep_inputs(1000, 500, 500))
        with run.system_metrics(interval=0.2):
            for epoch, acc in enumerate(accs, 1):
                run.log_metrics({"val_acc": acc, "train_loss": 0.1 / epoch}, step=epoch)
                if not math.isnan(acc):
                    trial.report(acc, epoch)
        n = trial.number
        if outcome == "COMPLETE":
            test_acc = round_accuracies({"test_acc": accs[-1] + 0.4}, {"test": 500})["test_acc"]
            run.log_metrics({"test_acc": test_acc}, step=3)
            trial.set_user_attr("test_acc", test_acc)
            if accs[-1] == max(p[2][-1] for p in PLAN if p[3] == "COMPLETE"):
                run.log_model(
                    create_model("s7_net", dropout=0.0),
                    name=f"{STUDY}-trial-{n}",
                    metrics={"val_acc": accs[-1], "test_acc": test_acc},
                    step=3,
                    params=trial.params,
                )
            end_trial_run(run, n, "COMPLETE", 3, 3, value=accs[-1], study_link=study_link)
            study.tell(trial, accs[-1])
        elif outcome == "PRUNED":
            end_trial_run(run, n, "PRUNED", len(accs), 3, study_link=study_link)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            end_trial_run(run, n, "FAIL", 1, 3, reason="diverged: loss is nan at epoch 1")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        runs[n] = run.run_id
        update_study_run(study, parent, spec)
    finish_study_run(study, parent, spec)
    return {
        "uri": uri,
        "spec": spec,
        "study": study,
        "experiment_id": tracker.experiment_id,
        "parent": parent.run_id,
        "runs": runs,
        "best": runs[2],
        "pruned": runs[1],
    }
