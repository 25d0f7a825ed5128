"""How a study's runs read in the MLflow UI: trial run names, outcomes, the best-trial mark, links.

MLflow has three terminal run statuses (FINISHED, FAILED, KILLED) and draws KILLED and FAILED
both as a red cross, so the status alone cannot tell a pruned trial (a normal, cheap outcome)
from a crash. The run *name* is the one column the runs table always shows, so it carries the
outcome: `trial-4 · 98.91`, `trial-5 · pruned @ epoch 3`, `trial-6 · FAILED`, plus `★ best` on the
study's best trial. The status keeps its meaning (KILLED = stopped before the end, FAILED = an
error), and the `state` tag and the run's description say the same in words.
"""

from typing import Any

from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from tracking.mlflow_store import RunHandle

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
SEARCH_PREFIX = "search."  # tags holding the searched values, apart from the fixed params
BEST_TAG = "best_trial"  # "true" on the study's best trial run only; it moves with the best
BEST_MARK = "★ best"
_BEST_LINE = "★ "  # the first line of the best run's description, dropped when the mark moves


def run_link(experiment_id: str, run_id: str) -> str:
    """A link to a run that works inside the UI (Markdown descriptions) whatever its host."""
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def runs_page(experiment_id: str, view_key: str | None = None) -> str:
    """The experiment's runs table in the model-training view (not the GenAI overview), with
    the shared column layout `view_key` (see `sweep.summary.VIEW_KEY`) when given."""
    query = "workflowType=machine_learning"
    if view_key:
        query = f"viewStateShareKey={view_key}&{query}"
    return f"#/experiments/{experiment_id}/runs?{query}"


def searched_tags(params: dict[str, Any]) -> dict[str, Any]:
    """The trial's searched values as `search.<key>` tags: they stand apart from the ~40 fixed
    params in the run page and the column chooser."""
    return {f"{SEARCH_PREFIX}{k}": v for k, v in params.items()}


def trial_name(number: int, state: str, value: float | None = None, epoch: int | None = None):
    """`trial-N` while running; the outcome appended once it ended (see the module docstring)."""
    name = f"trial-{number}"
    if state == "COMPLETE" and value is not None:
        return f"{name} · {value:.2f}"
    if state == "PRUNED":
        return f"{name} · pruned @ epoch {epoch}" if epoch else f"{name} · pruned"
    if state == "FAIL":
        return f"{name} · FAILED"
    return name


def end_trial_run(
    run: RunHandle,
    number: int,
    state: str,
    epochs: int,
    budget: int,
    value: float | None = None,
    reason: str | None = None,
    status: str | None = None,
    study_link: str | None = None,
) -> None:
    """Name, tag and describe a trial run by its outcome, then end it (never left RUNNING).

    Args:
        run: the trial's run.
        number: the Optuna trial number.
        state: `COMPLETE`, `PRUNED` or `FAIL`.
        epochs: epochs it trained; `budget`: epochs it would have trained in full.
        value: its objective (validation accuracy, %), where it has one.
        reason: why it failed, or the pruner's message.
        status: the MLflow status, when not the state's usual one (e.g. KILLED for Ctrl-C).
        study_link: a link to the study's run (`run_link`), for the description.
    """
    try:
        run.rename(trial_name(number, state, value, epochs))
        tags: dict[str, Any] = {"state": state, "epochs_trained": epochs}
        if state == "PRUNED":
            tags["pruned_at_epoch"] = epochs
            text = (
                f"**Pruned** at epoch {epochs} of {budget}: the pruner stopped it early "
                f"because it lagged the other trials. Not an error."
            )
        elif state == "FAIL":
            tags["fail_reason"] = (reason or "unknown")[:500]
            text = f"**Failed** after {epochs} of {budget} epochs: {reason or 'unknown'}"
        else:
            text = f"**Complete**: {epochs} of {budget} epochs"
            if value is not None:
                text += f", validation accuracy {value:.2f}%"
        if study_link:
            text += f"\n\nStudy run: [all trials and the best one]({study_link})"
        run.set_tags(tags)
        run.describe(text)
    finally:
        run.finish(status or STATUS[state])


def mark_best(
    client: MlflowClient,
    run_id: str,
    previous_run_id: str | None,
    text: str,
) -> None:
    """Move the best-trial mark to `run_id`: tag `best_trial=true`, `★ best` in its name and a
    first description line `text` (e.g. a link back to the study); the previous best loses all
    three. Cheap: a few writes, and nothing when the best has not changed.
    """
    if previous_run_id == run_id:
        return
    if previous_run_id:
        old = client.get_run(previous_run_id)
        note = old.data.tags.get(MLFLOW_RUN_NOTE, "")
        kept = "\n".join(line for line in note.splitlines() if not line.startswith(_BEST_LINE))
        client.set_tag(previous_run_id, BEST_TAG, "false")
        client.set_tag(previous_run_id, MLFLOW_RUN_NOTE, kept.strip())
        client.update_run(previous_run_id, name=old.info.run_name.replace(f" {BEST_MARK}", ""))
    new = client.get_run(run_id)
    note = new.data.tags.get(MLFLOW_RUN_NOTE, "")
    client.set_tag(run_id, BEST_TAG, "true")
    client.set_tag(run_id, MLFLOW_RUN_NOTE, f"{_BEST_LINE}{text}\n\n{note}".strip())
    if BEST_MARK not in (new.info.run_name or ""):
        client.update_run(run_id, name=f"{new.info.run_name} {BEST_MARK}")
