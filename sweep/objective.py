"""One Optuna trial = one tracked training run, reported and pruned epoch by epoch.

The trial's suggested values become a validated `TrainConfig` (base experiment + fixed overrides
+ suggestions); the trainer sees only that config. Each trial is a nested MLflow run whose status
always ends terminal: FINISHED (complete), KILLED (pruned or Ctrl-C), FAILED (diverged, error).
"""

import functools
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import optuna
import torch

from harness.config import Experiments, TrainConfig, deep_merge, unflatten
from harness.data import Split, subset
from harness.sweep_spec import SweepSpec
from harness.trainer import DivergedError, evaluate, train
from harness.urls import scrub_text
from model_zoo import create_model, summarize
from sweep.recovery import pid_space, worker_id
from sweep.space import suggest
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

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            history.append(metrics)
            run.log_metrics(metrics, step=epoch)
            trial.report(self._value(history, key), epoch)
            # never at the last epoch: the trial has paid for every epoch, keep its result
            if epoch < cfg.epochs and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}: {key}={metrics[key]:.2f}")

        train_set = subset(self.data.train, cfg.data.train_subset)
        test = subset(self.data.test, cfg.data.test_subset)
        sizes = {"train": len(train_set), "val": len(self.data.val), "test": len(test)}
        run.log_inputs(
            sweep_inputs(*sizes.values(), split_seed=self.spec.split_seed, root=cfg.data.root)
        )
        result = train(
            cfg,
            train_set,
            {"val": self.data.val},
            lambda epoch, m: on_epoch(epoch, round_accuracies(m, sizes)),
            self.device,
        )
        value = self._value(history, key)
        summary = {f"best_{key}": max(h[key] for h in history), f"final_{key}": history[-1][key]}
        if self.spec.evaluate_test:  # reported for the user, never returned to the study
            loss, acc = (float(t) for t in evaluate(result.model, test, cfg.eval_batch_size))
            summary |= round_accuracies({"test_loss": loss, "test_acc": acc}, sizes)
            trial.set_user_attr("test_acc", summary["test_acc"])
        run.log_metrics(summary, step=cfg.epochs)
        if self.spec.log_models:
            model_id = run.log_model(
                result.model,
                name=f"{self.spec.study_name}-trial-{trial.number}",
                metrics=summary,
                step=cfg.epochs,
                params=trial.params,
            )
            trial.set_user_attr("mlflow_model_id", model_id)
        return value

    def _value(self, history: list[dict[str, float]], key: str) -> float:
        if self.spec.objective.reduce == "best":
            return max(h[key] for h in history)
        return history[-1][key]

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
