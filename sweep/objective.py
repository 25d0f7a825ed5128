"""One Optuna trial = one tracked training run, reported and pruned epoch by epoch.

The trial's suggested values become a validated `TrainConfig` (base experiment + fixed overrides
+ suggestions); the trainer sees only that config. Each trial is a nested MLflow run whose status
always ends terminal: FINISHED (complete), KILLED (pruned or Ctrl-C), FAILED (diverged, error).
"""

import functools
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import optuna
import torch

from harness.config import Experiments, TrainConfig, deep_merge, unflatten
from harness.data import Split, load_splits, subset
from harness.processes import owner
from harness.trainer import DivergedError, TrainResult, evaluate, train
from harness.urls import scrub_text
from model_zoo import create_model, summarize
from sweep.spec import ParamSpec, SweepSpec
from tracking import RunHandle, Tracker, curves_figure, provenance_tags
from tracking.datasets import sweep_inputs
from tracking.resolution import round_accuracies
from tracking.trial_runs import end_trial_run, run_link, searched_tags


@dataclass(frozen=True)
class SweepData:
    """Training part, validation hold-out and test set, already on the training device; each
    trial takes its `data.train_subset` / `data.test_subset` of them (searchable like the rest)."""

    train: Split
    val: Split
    test: Split


def load_data(cfg: TrainConfig, spec: SweepSpec, device) -> SweepData:
    """Fixed hold-out of the 60k training images for validation; the test set only for reports."""
    tr, val, te = load_splits(cfg.data.root, (spec.val_size, spec.split_seed))
    return SweepData(tr.to(device), val.to(device), te.to(device))


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """One value per searched key, named by the dotted config key it sets."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.type == "categorical":
            out[key] = trial.suggest_categorical(key, p.choices)
        elif p.type == "int":
            out[key] = trial.suggest_int(
                key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log
            )
        else:
            out[key] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
    return out


def trial_config(base: TrainConfig, spec: SweepSpec, params: dict[str, Any]) -> TrainConfig:
    """The training config of searched values `params` (dotted keys): the study's resolved base
    config (its experiment and fixed overrides) with `params` applied."""
    where = f"sweep.space (a trial of study '{spec.study_name}')"
    return base.updated(deep_merge(unflatten(params), {"progress": spec.show_epochs}), where)


def objective_value(history: list[dict[str, float]], spec: SweepSpec) -> float:
    """What the study maximises from a run's per-epoch metrics: the last epoch's metric, or
    its best (`spec.objective.reduce`)."""
    key = spec.objective.metric
    if spec.objective.reduce == "best":
        return max(h[key] for h in history)
    return history[-1][key]


def train_tracked(
    cfg: TrainConfig,
    data: SweepData,
    spec: SweepSpec,
    device: torch.device,
    run: RunHandle,
    history: list[dict[str, float]],
    report: Callable[[int, list[dict[str, float]]], None] | None = None,
) -> tuple[TrainResult, dict[str, float]]:
    """Train `cfg` on the sweep's data (its training subset, the study's hold-out), logging into
    `run` its datasets, per-epoch metrics (accuracies rounded to what the data resolves) and a
    summary.

    Args:
        cfg, data, spec, device: what to train, on what, judged how, where.
        run: the MLflow run to log into.
        history: filled with each epoch's metrics as they come (kept when training stops early).
        report: called after each epoch with the epoch and `history`; may raise to stop
            (a trial's report and pruning).
    Returns:
        The training result and the summary logged at step `cfg.epochs`: `best_<metric>`,
        `final_<metric>`, and `test_loss`/`test_acc` when `spec.evaluate_test` (reported only).
    """
    key = spec.objective.metric
    train_set = subset(data.train, cfg.data.train_subset)
    test = subset(data.test, cfg.data.test_subset)
    sizes = {"train": len(train_set), "val": len(data.val), "test": len(test)}
    run.log_inputs(sweep_inputs(*sizes.values(), split_seed=spec.split_seed, root=cfg.data.root))

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        history.append(round_accuracies(metrics, sizes))
        run.log_metrics(history[-1], step=epoch)
        if report is not None:
            report(epoch, history)

    result = train(cfg, train_set, {"val": data.val}, on_epoch, device)
    summary = {f"best_{key}": max(h[key] for h in history), f"final_{key}": history[-1][key]}
    if spec.evaluate_test:
        loss, acc = (float(t) for t in evaluate(result.model, test, cfg.eval_batch_size))
        summary |= round_accuracies({"test_loss": loss, "test_acc": acc}, sizes)
    run.log_metrics(summary, step=cfg.epochs)
    return result, summary


class Objective:
    """Callable for `study.optimize`: returns the trial's validation accuracy."""

    def __init__(
        self,
        spec: SweepSpec,
        experiments: Experiments,
        fixed: dict[str, Any],
        data: SweepData,
        device: torch.device,
        tracker: Tracker,
        parent: RunHandle,
    ):
        self.spec, self.base = spec, experiments.resolve(spec.base_experiment, fixed)
        self.data, self.device, self.tracker, self.parent = data, device, tracker, parent
        self.metric = spec.objective.metric
        self.lost: int | None = None  # a trial another process declared dead while it ran here

    def config(self, params: dict[str, Any]) -> TrainConfig:
        return trial_config(self.base, self.spec, params)

    def __call__(self, trial: optuna.Trial) -> float:
        # First, so that a dead worker's trial can be told apart from a live one (sweep.recovery).
        for key, value in owner().items():
            trial.set_user_attr(key, value)
        cfg = self.config(suggest(trial, self.spec.space))
        trial.set_user_attr("config", cfg.public())
        tags = {
            "study_name": self.spec.study_name,
            "trial_number": trial.number,
            "seed": cfg.seed,
            "experiment": cfg.name,
            **searched_tags(trial.params),
            **provenance_tags(str(self.device)),
        }
        run = self.tracker.start_run(f"trial-{trial.number}", tags, parent=self.parent)
        trial.set_user_attr("mlflow_run_id", run.run_id)
        history: list[dict[str, float]] = []
        end = functools.partial(self._end, trial, cfg, run, history)
        try:
            run.log_params(cfg.flat())
            model_text = summarize(create_model(cfg.model.name, dropout=cfg.model.dropout))
            run.log_text(model_text.to_text(), "model_summary.txt")
            with run.system_metrics():
                value = self._train(trial, cfg, run, history)
        except optuna.TrialPruned:
            end("PRUNED")
            raise
        except KeyboardInterrupt:
            self._fail(trial, "interrupted (Ctrl-C)")
            end("FAIL", reason="interrupted (Ctrl-C)", status="KILLED")
            # the user stopped the process, not the trial: the resume runs it again (an
            # interrupted baseline or enqueued point would otherwise be lost)
            trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another process failed this trial for lack of heartbeat (the machine stalled longer
            # than the grace period) and queued it again; this attempt no longer counts.
            self.lost = trial.number
            end("FAIL", reason="declared dead (no heartbeat) while still running", status="KILLED")
            raise
        except BaseException as e:  # diverged, or any error: the trial fails, the study goes on
            text = str(e) if isinstance(e, DivergedError) else f"{type(e).__name__}: {e}"
            reason = scrub_text(text)[:500]  # library text may quote a URL with its password
            self._fail(trial, reason)
            end("FAIL", reason=reason)
            raise
        end("COMPLETE", value=value)
        return value

    @staticmethod
    def _fail(trial: optuna.Trial, reason: str) -> None:
        with suppress(optuna.exceptions.UpdateFinishedTrialError):  # already failed elsewhere
            trial.set_user_attr("fail_reason", reason)

    def _train(self, trial: optuna.Trial, cfg: TrainConfig, run: RunHandle, history) -> float:
        key = self.metric

        def report(epoch: int, history: list[dict[str, float]]) -> None:
            trial.report(objective_value(history, self.spec), epoch)
            # never at the last epoch: the trial has paid for every epoch, keep its result
            if epoch < cfg.epochs and trial.should_prune():
                value = history[-1][key]
                raise optuna.TrialPruned(f"pruned at epoch {epoch}: {key}={value:.2f}")

        result, summary = train_tracked(
            cfg, self.data, self.spec, self.device, run, history, report
        )
        if "test_acc" in summary:  # reported for the user, never returned to the study
            trial.set_user_attr("test_acc", summary["test_acc"])
        if self.spec.log_models:
            model_id = run.log_model(
                result.model,
                name=f"{self.spec.study_name}-trial-{trial.number}",
                metrics=summary,
                step=cfg.epochs,
                params=trial.params,
            )
            trial.set_user_attr("mlflow_model_id", model_id)
        return objective_value(history, self.spec)

    def _end(
        self,
        trial: optuna.Trial,
        cfg: TrainConfig,
        run: RunHandle,
        history: list[dict[str, float]],
        state: str,
        value: float | None = None,
        reason: str | None = None,
        status: str | None = None,
    ) -> None:
        """Attach the curves, then name, tag and end the MLflow run by the trial's outcome
        (never left RUNNING)."""
        try:
            if history:
                run.log_figure(curves_figure(history, "val"), "curves.png")
        finally:
            link = run_link(self.tracker.experiment_id, self.parent.run_id)
            end_trial_run(
                run, trial.number, state, len(history), cfg.epochs, value, reason, status, link
            )
