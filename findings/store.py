"""Reading the findings runs back from MLflow: which exist, and what each logged.

Everything the report says about our runs comes from here: the logged summary metrics, the
per-epoch histories, the params and the tags. Runs are matched by their `config_hash` tag and
status FINISHED only, so a failed or interrupted run never counts.
"""

from dataclasses import dataclass

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from harness.urls import with_driver

HASH_TAG = "config_hash"
SETTING_TAG = "finding_setting"
MODE_TAG = "findings_mode"
HISTORY_KEYS = ("test_acc", "train_acc", "epoch_seconds")


@dataclass(frozen=True)
class RunRecord:
    """One finished run as logged: summary values, per-epoch histories, params and tags."""

    run_id: str
    config_hash: str
    seed: int
    values: dict[str, float]  # best_test_acc, final_test_acc, best_train_acc, gap, n_params
    history: dict[str, list[float]]  # per-epoch, in epoch order: test_acc, train_acc, ...
    params: dict[str, str]
    tags: dict[str, str]
    start_ms: int
    end_ms: int

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000.0

    @property
    def train_seconds(self) -> float:
        """Sum of the logged `epoch_seconds`: training plus evaluation, without logging."""
        return sum(self.history.get("epoch_seconds", []))


Records = dict[tuple[str, int], RunRecord]  # (setting, seed) -> its finished run


def experiment_id(client: MlflowClient, name: str) -> str | None:
    """The id of MLflow experiment `name`, or None when nothing was ever logged to it."""
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else None


def finished_run(client: MlflowClient, exp_id: str | None, config_hash: str) -> Run | None:
    """The first FINISHED run tagged with `config_hash`, or None.

    Args:
        client: a client on the tracking store.
        exp_id: the findings experiment (None: it does not exist yet, so there is no run).
        config_hash: the `Job.config_hash` to look for.
    Returns:
        The earliest such run (a duplicate from a concurrent re-run is ignored), or None.
    """
    if exp_id is None:
        return None
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.{HASH_TAG} = '{config_hash}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _history(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def read_record(client: MlflowClient, run: Run) -> RunRecord:
    """Turn a finished run into a `RunRecord` (best train accuracy comes from its history)."""
    rid = run.info.run_id
    history = {k: _history(client, rid, k) for k in HISTORY_KEYS}
    m, tags = run.data.metrics, run.data.tags
    best_train = max(history["train_acc"]) if history["train_acc"] else float("nan")
    values = {
        "best_test_acc": m.get("best_test_acc", float("nan")),
        "final_test_acc": m.get("final_test_acc", float("nan")),
        "best_train_acc": best_train,
        "gap": best_train - m.get("best_test_acc", float("nan")),
        "n_params": float(tags.get("n_params", "nan")),
    }
    return RunRecord(
        run_id=rid,
        config_hash=tags.get(HASH_TAG, ""),
        seed=int(tags.get("seed", run.data.params.get("seed", "-1"))),
        values=values,
        history=history,
        params=dict(run.data.params),
        tags=dict(tags),
        start_ms=run.info.start_time or 0,
        end_ms=run.info.end_time or run.info.start_time or 0,
    )


def collect(
    tracking_uri: str, experiment: str, hashes: dict[tuple[str, int], str]
) -> dict[tuple[str, int], RunRecord]:
    """Every planned (setting, seed) that has a finished run, read from MLflow.

    Args:
        tracking_uri, experiment: the store and MLflow experiment of the findings runs.
        hashes: `{(setting, seed): config hash}`, the plan's (`Plan.hashes`).
    Returns:
        `{(setting, seed): RunRecord}`; missing pairs are simply absent. Settings that resolve to
        the same config share one record.
    """
    client = MlflowClient(tracking_uri=with_driver(tracking_uri))
    exp_id = experiment_id(client, experiment)
    by_hash: dict[str, RunRecord | None] = {}
    out: dict[tuple[str, int], RunRecord] = {}
    for key, h in hashes.items():
        if h not in by_hash:
            run = finished_run(client, exp_id, h)
            by_hash[h] = read_record(client, run) if run else None
        if (record := by_hash[h]) is not None:
            out[key] = record
    return out
