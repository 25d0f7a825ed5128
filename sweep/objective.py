"""One Optuna trial = one tracked training run, reported and pruned epoch by epoch.

The trial's suggested values become a validated `TrainConfig` (base experiment + fixed overrides
+ suggestions); the trainer sees only that config. Each trial is a nested MLflow run whose status
always ends terminal: FINISHED (complete), KILLED (pruned or Ctrl-C), FAILED (diverged, error).
"""

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import optuna
import torch

from harness.config import Experiments, TrainConfig, deep_merge, unflatten
from harness.data import Split, subset
from harness.sweep_spec import SweepSpec
from harness.trainer import DivergedError, evaluate, train
from harness.urls import scrub
from model_zoo import create_model, summarize
from sweep.recovery import pid_space, worker_id
from sweep.space import suggest
from tracking import RunHandle, Tracker, curves_figure, provenance_tags

MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


@dataclass(frozen=True)
class SweepData:
    """Training part, validation hold-out and test set, already on the training device; each
    trial takes its `data.train_subset` / `data.test_subset` of them (searchable like the rest)."""

    train: Split
    val: Split
    test: Split


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
        self.spec, self.experiments, self.fixed = spec, experiments, fixed
        self.data, self.device, self.tracker, self.parent = data, device, tracker, parent
        self.metric = spec.objective.metric
        self.lost: int | None = None  # a trial another process declared dead while it ran here

    def config(self, params: dict[str, Any]) -> TrainConfig:
        over = deep_merge(self.fixed, unflatten(params))
        over = deep_merge(over, {"progress": self.spec.show_epochs})
        return self.experiments.resolve(self.spec.base_experiment, over)

    def __call__(self, trial: optuna.Trial) -> float:
        # First, so that a dead worker's trial can be told apart from a live one (sweep.recovery).
        trial.set_user_attr("worker", worker_id())
        trial.set_user_attr("pid_space", pid_space())
        cfg = self.config(suggest(trial, self.spec.space))
        trial.set_user_attr("config", cfg.public())
        tags = {
            "study_name": self.spec.study_name,
            "trial_number": trial.number,
            "seed": cfg.seed,
            "experiment": cfg.name,
            "worker": worker_id(),
            **provenance_tags(str(self.device)),
        }
        run = self.tracker.start_run(f"trial-{trial.number}", tags, parent=self.parent)
        trial.set_user_attr("mlflow_run_id", run.run_id)
        history: list[dict[str, float]] = []
        try:
            run.log_params(cfg.flat())
            model_text = summarize(create_model(cfg.model.name, dropout=cfg.model.dropout))
            run.log_text(model_text.to_text(), "model_summary.txt")
            value = self._train(trial, cfg, run, history)
        except optuna.TrialPruned:
            self._end(trial, run, "PRUNED", history, {"pruned_at_epoch": len(history)})
            raise
        except DivergedError as e:
            self._fail(trial, str(e))
            self._end(trial, run, "FAIL", history, {"fail_reason": str(e)})
            raise
        except KeyboardInterrupt:
            self._fail(trial, "interrupted (Ctrl-C)")
            self._end(
                trial, run, "FAIL", history, {"fail_reason": "interrupted (Ctrl-C)"}, "KILLED"
            )
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another process failed this trial for lack of heartbeat (the machine stalled longer
            # than the grace period) and queued it again; this attempt no longer counts.
            self.lost = trial.number
            reason = "declared dead (no heartbeat) while still running"
            self._end(trial, run, "FAIL", history, {"fail_reason": reason}, "KILLED")
            raise
        except BaseException as e:
            reason = scrub(f"{type(e).__name__}: {e}")[:500]  # library text may quote a URL
            self._fail(trial, reason)
            self._end(trial, run, "FAIL", history, {"fail_reason": reason})
            raise
        self._end(trial, run, "COMPLETE", history, {})
        return value

    @staticmethod
    def _fail(trial: optuna.Trial, reason: str) -> None:
        with suppress(optuna.exceptions.UpdateFinishedTrialError):  # already failed elsewhere
            trial.set_user_attr("fail_reason", reason)

    def _train(self, trial: optuna.Trial, cfg: TrainConfig, run: RunHandle, history) -> float:
        key = self.metric

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            history.append(metrics)
            run.log_metrics(metrics, step=epoch)
            trial.report(self._value(history, key), epoch)
            # never at the last epoch: the trial has paid for every epoch, keep its result
            if epoch < cfg.epochs and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}: {key}={metrics[key]:.2f}")

        train_set = subset(self.data.train, cfg.data.train_subset)
        result = train(cfg, train_set, {"val": self.data.val}, on_epoch, self.device)
        value = self._value(history, key)
        summary = {f"best_{key}": max(h[key] for h in history), f"final_{key}": history[-1][key]}
        if self.spec.evaluate_test:  # reported for the user, never returned to the study
            test = subset(self.data.test, cfg.data.test_subset)
            loss, acc = (float(t) for t in evaluate(result.model, test, cfg.eval_batch_size))
            summary |= {"test_loss": loss, "test_acc": acc}
            trial.set_user_attr("test_acc", acc)
        run.log_metrics(summary, step=cfg.epochs)
        if self.spec.log_models:
            run.log_model(result.model)
        return value

    def _value(self, history: list[dict[str, float]], key: str) -> float:
        if self.spec.objective.reduce == "best":
            return max(h[key] for h in history)
        return history[-1][key]

    def _end(
        self,
        trial: optuna.Trial,
        run: RunHandle,
        state: str,
        history,
        tags: dict,
        status: str | None = None,
    ):
        """Tag the Optuna state, attach the curves, and end the MLflow run (never left RUNNING)."""
        try:
            run.set_tags({"state": state, "epochs_trained": len(history), **tags})
            if history:
                run.log_figure(curves_figure(history, "val"), "curves.png")
        finally:
            run.finish(status or MLFLOW_STATUS[state])
