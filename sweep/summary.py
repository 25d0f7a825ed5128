"""The study's run in MLflow, kept live and true: counters, best so far, the best trial marked,
a Markdown description, readable plots and the trials table.

`update_study_run` is cheap (one read of the study, a handful of MLflow calls) and is meant to
run after every trial; `log_study_plots` draws the figures (importances fit a model: seconds)
and `finish_study_run` ends an invocation with both and a status that says whether the study is
complete.
"""

import datetime as dt
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import optuna
from mlflow.entities import Metric, RunTag
from optuna.trial import FrozenTrial, TrialState

from harness.urls import masked, scrub_text
from sweep.spec import SweepSpec
from tracking import RunHandle
from tracking.trial_runs import BEST_TAG, mark_best, run_link, runs_page

VIEW_KEY = "study"  # the experiment's shared runs-table layout (tag mlflow.sharedViewState.study)
BEST_METRIC = "study_best_{metric}"  # a name of its own: the trials log best_val_acc per trial
TOP = 5  # trials in the description's table


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


def _epochs(t: FrozenTrial) -> int:
    return max(t.intermediate_values, default=0)


def _budget(t: FrozenTrial) -> int | None:
    return (t.user_attrs.get("config") or {}).get("epochs")


def _seconds(t: FrozenTrial) -> float | None:
    if t.datetime_start and t.datetime_complete:
        return (t.datetime_complete - t.datetime_start).total_seconds()
    return None


def pruning_savings(trials: list[FrozenTrial]) -> dict[str, float]:
    """Epochs and seconds trained against the full budget (every finished trial run to its
    last epoch). A pruned trial's seconds not spent are estimated at its own seconds per epoch.

    Returns:
        {"pruned", "epochs_trained", "epochs_budget", "epochs_saved", "seconds_trained",
         "seconds_saved"} over the COMPLETE and PRUNED trials.
    """
    out = dict.fromkeys(("pruned", "epochs_trained", "epochs_budget", "epochs_saved"), 0) | {
        "seconds_trained": 0.0,
        "seconds_saved": 0.0,
    }
    for t in trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        trained = _epochs(t)
        budget = _budget(t) or trained
        secs = _seconds(t) or 0.0
        out["epochs_trained"] += trained
        out["epochs_budget"] += budget
        out["seconds_trained"] += secs
        if t.state == TrialState.PRUNED:
            out["pruned"] += 1
            out["epochs_saved"] += budget - trained
            if trained:
                out["seconds_saved"] += (budget - trained) * secs / trained
    return out


def _settings(spec: SweepSpec) -> str:
    space = ", ".join(
        f"`{k}` {p.type} "
        + (str(p.choices) if p.type == "categorical" else f"[{p.low:g}, {p.high:g}]")
        + (" log" if p.log else "")
        for k, p in spec.space.items()
    )
    pruners = (
        ", ".join(
            f"{p.name}({', '.join(f'{k}={v}' for k, v in p.args.items())})" for p in spec.pruners
        )
        or "none"
    )
    return (
        f"- objective: {spec.objective.reduce} `{spec.objective.metric}` on a "
        f"{spec.val_size}-image hold-out (split seed {spec.split_seed}); the test set chooses "
        f"nothing\n- sampler: {spec.sampler.name} (seed {spec.sampler.seed}); pruners: {pruners}"
        f"\n- base experiment `{spec.base_experiment}`; target {spec.n_trials} finished trials"
        f"\n- space: {space}"
    )


def _note(
    spec: SweepSpec,
    exp_id: str,
    trials: list[FrozenTrial],
    counts: dict[str, int],
    status: str,
) -> str:
    metric = spec.objective.metric
    searched = list(spec.space)
    lines = [f"**Study `{spec.study_name}`: {status}**", ""]
    lines.append(
        f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed, "
        f"{counts['running']} running. [All trials]({runs_page(exp_id, VIEW_KEY)})"
    )
    done = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -(t.value or 0)
    )
    if done:
        lines += ["", f"Top {min(TOP, len(done))} by `{metric}` (%):", ""]
        lines.append("| trial | " + " | ".join([metric, "test_acc", *searched]) + " |")
        lines.append("|---" * (len(searched) + 3) + "|")
        for i, t in enumerate(done[:TOP]):
            run_id = t.user_attrs.get("mlflow_run_id")
            name = f"trial-{t.number}" + (" ★" if i == 0 else "")
            cell = f"[{name}]({run_link(exp_id, run_id)})" if run_id else name
            test = t.user_attrs.get("test_acc")
            vals = [f"{t.value:.2f}", f"{test:.2f}" if test is not None else "-"]
            vals += [
                f"{t.params[k]:.4g}"
                if isinstance(t.params.get(k), float)
                else str(t.params.get(k, "-"))
                for k in searched
            ]
            lines.append(f"| {cell} | " + " | ".join(vals) + " |")
    s = pruning_savings(trials)
    if s["epochs_budget"]:
        lines += [
            "",
            f"**Pruning savings accounted**: {s['pruned']} pruned trials; "
            f"{s['epochs_trained']} of {s['epochs_budget']} budgeted epochs trained, "
            f"{s['epochs_saved']} saved ({100 * s['epochs_saved'] / s['epochs_budget']:.0f}%); "
            f"{s['seconds_trained']:.0f} s trained, about {s['seconds_saved']:.0f} s saved "
            "(each pruned trial at its own seconds per epoch).",
        ]
    lines += ["", "Settings of this invocation:", "", _settings(spec)]
    return "\n".join(lines)


def study_view_state(parent_run_id: str, spec: SweepSpec) -> dict[str, Any]:
    """The runs table a user should see first: the study run expanded over its trials, with
    the state, the objective, test accuracy and the searched values as columns."""
    metric = spec.objective.metric
    columns = ["tags.`state`", f"metrics.`{metric}`", "metrics.`test_acc`"]
    columns += [f"tags.`search.{k}`" for k in spec.space]
    return {
        "selectedColumns": columns,
        "runsExpanded": {parent_run_id: True},
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
    }


def update_study_run(
    study: optuna.Study, parent: RunHandle, spec: SweepSpec, active: bool = True
) -> dict[str, int]:
    """Bring the study's run up to date; cheap enough to call after every trial.

    Writes counters (`n_complete`, `n_pruned`, `n_fail`, `n_running`, at step = trials so far),
    `study_best_<metric>` at step = trial number for each finished trial not yet logged, the
    best-trial tags (and moves the mark on the trial runs), `study_status`, the Markdown
    description and the experiment's shared runs-table layout.

    Args:
        study: the study (read once).
        parent: the study's MLflow run.
        spec: this invocation's sweep section.
        active: False when the invocation is ending (status says stopped, not running).
    Returns:
        The counts by state (lower-case names) and `finished` (complete + pruned).
    """
    client = parent.client
    trials = study.get_trials(deepcopy=False)
    counts = {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "fail": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
    }
    counts["finished"] = counts["complete"] + counts["pruned"]
    run = client.get_run(parent.run_id)
    exp_id = run.info.experiment_id
    if counts["finished"] >= spec.n_trials:
        status = f"complete, {counts['finished']}/{spec.n_trials} finished trials"
    elif active:
        status = f"running, {counts['finished']}/{spec.n_trials} finished trials"
    else:
        status = (
            f"stopped at {counts['finished']}/{spec.n_trials} finished trials; `make sweep` resumes"
        )
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    step = len(trials)
    metrics = [Metric(f"n_{k}", v, now, step) for k, v in counts.items() if k != "finished"]
    key = BEST_METRIC.format(metric=spec.objective.metric)
    logged = {m.step for m in client.get_metric_history(parent.run_id, key)}
    best = None
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and (best is None or t.value > best.value):
            best = t
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and best is not None:
            if t.number not in logged:
                metrics.append(Metric(key, best.value, now, t.number))
    tags = {
        "study_status": status,
        "mlflow.note.content": _note(spec, exp_id, trials, counts, status),
    }
    if best is not None:
        tags |= {
            BEST_TAG: best.number,
            "best_value": f"{best.value:.2f}",
            "best_params": json.dumps(best.params),
            "best_mlflow_run_id": best.user_attrs.get("mlflow_run_id", ""),
        }
    for i in range(0, len(metrics), 1000):
        client.log_batch(parent.run_id, metrics=metrics[i : i + 1000])
    client.log_batch(parent.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
    if "summary_note" in run.data.tags:  # written by earlier versions, now stale
        client.delete_tag(parent.run_id, "summary_note")
    client.set_experiment_tag(
        exp_id,
        f"mlflow.sharedViewState.{VIEW_KEY}",
        json.dumps(study_view_state(parent.run_id, spec)),
    )
    new_id = best.user_attrs.get("mlflow_run_id") if best is not None else None
    if new_id:
        mark_best(
            client,
            new_id,
            run.data.tags.get("best_mlflow_run_id") or None,
            f"**Best trial** of study `{spec.study_name}` so far "
            f"({spec.objective.metric} {best.value:.2f}%). "
            f"[Study run and all trials]({run_link(exp_id, parent.run_id)})",
        )
    return counts


def log_invocation(parent: RunHandle, spec: SweepSpec, fixed: dict[str, Any]) -> str:
    """Keep this invocation's settings on the study run (`invocations/<UTC time>.json`): MLflow
    params cannot change once logged, so a resume with other settings would be invisible.

    Returns:
        The artifact path written.
    """
    data = spec.model_dump(mode="json")
    data["storage"] = masked(data["storage"]) if data["storage"] else None
    when = dt.datetime.now(dt.UTC)
    doc = {"started": when.isoformat(timespec="seconds"), "sweep": data, "fixed": fixed}
    path = f"invocations/{when:%Y%m%dT%H%M%SZ}.json"
    # the fixed overrides are the user's own text: a tracking URI there may carry a password
    parent.log_text(scrub_text(json.dumps(doc, indent=2, default=str)), path)
    return path


def history_figure(study: optuna.Study, metric: str = "val_acc"):
    """Objective per trial, pruned trials included (at their last reported value, as crosses:
    Optuna's own history plot leaves them out), with the best-so-far line."""
    fig, ax = plt.subplots(figsize=(11, 6))
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    ax.scatter([t.number for t in done], [t.value for t in done], label="complete", zorder=3)
    ax.scatter(
        [t.number for t in pruned],
        [t.intermediate_values[_epochs(t)] for t in pruned],
        marker="x",
        color="tab:red",
        label="pruned (last reported epoch)",
        zorder=3,
    )
    best, xs, ys = None, [], []
    for t in sorted(done, key=lambda t: t.number):
        best = t.value if best is None else max(best, t.value)
        xs.append(t.number)
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:green", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def _plots(study: optuna.Study, spec: SweepSpec) -> dict[str, callable]:
    import optuna.visualization.matplotlib as vm

    searched = sorted({k for t in study.trials for k in t.params})
    plots = {
        "optimization_history.png": lambda: history_figure(study, spec.objective.metric),
        "parallel_coordinate.png": lambda: vm.plot_parallel_coordinate(study),
        "intermediate_values.png": lambda: vm.plot_intermediate_values(study),
        "param_importances.png": lambda: vm.plot_param_importances(study),
    }
    for name in searched:
        plots[f"slice_{name}.png"] = lambda name=name: vm.plot_slice(study, params=[name])
    return plots


def _readable(drawn, size=(12, 7)):
    """Optuna draws at matplotlib's 6.4x4.8 in, where long parameter names are clipped."""
    if hasattr(drawn, "savefig"):
        return drawn
    fig = drawn.flat[0].figure if hasattr(drawn, "flat") else drawn.figure
    fig.set_size_inches(*size)
    fig.set_dpi(100)
    fig.tight_layout()
    return fig


def log_study_plots(study: optuna.Study, parent: RunHandle, spec: SweepSpec) -> None:
    """Importances, the plots (PNG, 1200x700) and trials.csv on the study run.

    Plots and importances need completed trials; what cannot be drawn yet is noted, not fatal.
    """
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "trials.csv"
        trials_table(study).to_csv(csv, index=False)
        parent.log_artifact(csv)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
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
            for name, draw in _plots(study, spec).items():
                try:
                    parent.log_figure(_readable(draw()), name)
                except (RuntimeError, ValueError) as e:
                    notes.append(f"{name}: {e}")
    if notes:
        parent.log_text("\n".join(notes) + "\n", "summary_notes.txt")


def finish_study_run(
    study: optuna.Study, parent: RunHandle, spec: SweepSpec, error: bool = False
) -> str:
    """End an invocation: the run brought up to date, the plots, and a status that says whether
    the study is complete: FINISHED when it holds its `n_trials` finished trials (whatever an
    earlier invocation ended as), KILLED when stopped short (Ctrl-C, or `error` False), FAILED
    when the invocation failed (`error`). Returns the status."""
    counts = update_study_run(study, parent, spec, active=False)
    try:
        log_study_plots(study, parent, spec)
    finally:
        if counts["finished"] >= spec.n_trials:
            status = "FINISHED"
        else:
            status = "FAILED" if error else "KILLED"
        parent.finish(status)
    return status


def log_study_summary(study: optuna.Study, parent: RunHandle, spec: SweepSpec) -> None:
    """Counters, best trial, description and plots on the study run (no status change)."""
    update_study_run(study, parent, spec, active=False)
    log_study_plots(study, parent, spec)
