"""The study's summary on its MLflow parent run: best trial, importances, plots, the trials table."""

import json
import tempfile
import warnings
from pathlib import Path

import matplotlib
import optuna
from optuna.trial import TrialState

from harness.sweep_spec import SweepSpec
from tracking import RunHandle


def trials_table(study: optuna.Study):
    """One row per trial (pandas), with the MLflow run id and reported test accuracy."""
    df = study.trials_dataframe(
        attrs=(
            "number",
            "value",
            "state",
            "params",
            "user_attrs",
            "datetime_start",
            "datetime_complete",
            "duration",
        )
    )
    return df.drop(columns=[c for c in df.columns if c == "user_attrs_config"])


def _plots(study: optuna.Study) -> dict[str, callable]:
    import optuna.visualization.matplotlib as vm

    plots = {
        "optimization_history.png": lambda: vm.plot_optimization_history(study),
        "parallel_coordinate.png": lambda: vm.plot_parallel_coordinate(study),
        "intermediate_values.png": lambda: vm.plot_intermediate_values(study),
    }
    if "batch_size" in study.best_trial.params:
        plots["slice_batch_size.png"] = lambda: vm.plot_slice(study, params=["batch_size"])
    plots["param_importances.png"] = lambda: vm.plot_param_importances(study)
    return plots


def log_study_summary(study: optuna.Study, parent: RunHandle, spec: SweepSpec) -> None:
    """Best trial and value, importances, plots (PNG) and trials.csv on the parent run.

    Plots and importances need completed trials; what cannot be drawn yet is noted, not fatal.
    """
    states = {s: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    parent.log_metrics(
        {f"n_{s.name.lower()}": n for s, n in states.items() if s != TrialState.WAITING},
        step=len(study.trials),
    )
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "trials.csv"
        trials_table(study).to_csv(csv, index=False)
        parent.log_artifact(csv)
    if not states[TrialState.COMPLETE]:
        parent.set_tags({"summary_note": "no completed trial yet"})
        return
    best = study.best_trial
    parent.log_metrics({f"best_{spec.objective.metric}": best.value}, step=len(study.trials))
    parent.set_tags(
        {
            "best_trial": best.number,
            "best_value": f"{best.value:.4f}",
            "best_mlflow_run_id": best.user_attrs.get("mlflow_run_id", ""),
            "best_params": json.dumps(best.params),
        }
    )
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            importances = optuna.importance.get_param_importances(study)
            parent.log_text(json.dumps(importances, indent=2), "param_importances.json")
        except (RuntimeError, ValueError) as e:
            notes.append(f"importances: {e}")
        # Optuna's matplotlib plots call plt.style.use("ggplot"), which is process-wide: keep it
        # inside this block, or every later figure in the process (the findings report's) changes.
        with matplotlib.rc_context():
            for name, draw in _plots(study).items():
                try:
                    ax = draw()
                    fig = ax.flat[0].figure if hasattr(ax, "flat") else ax.figure
                    parent.log_figure(fig, name)
                except (RuntimeError, ValueError) as e:
                    notes.append(f"{name}: {e}")
    if notes:
        parent.log_text("\n".join(notes) + "\n", "summary_notes.txt")
