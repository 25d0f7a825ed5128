"""One tracked training run: config -> data -> trainer -> MLflow. What `make train` does."""

import json
from dataclasses import dataclass
from typing import Any

from harness.config import TrainConfig
from harness.data import Split, load_splits, subset
from harness.device import resolve_device
from harness.errors import RunFailed
from harness.trainer import DivergedError, TrainResult, train
from harness.urls import scrub_text
from model_zoo import create_model, summarize
from tracking import Tracker, curves_figure, provenance_tags
from tracking.mlflow_store import check_reachable


@dataclass(frozen=True)
class Outcome:
    result: TrainResult
    run_id: str | None

    @property
    def best_test_acc(self) -> float:
        return self.result.best("test_acc")

    @property
    def final_test_acc(self) -> float:
        return self.result.final("test_acc")


def load_data(cfg: TrainConfig, holdout: tuple[int, int] | None = None) -> tuple[Split, dict]:
    """The training images and the evaluation sets: all 60k and the 10k test images (or the
    configured subsets); with `holdout` (size, split seed), the 60k less the sweep's validation
    hold-out, which is evaluated too, exactly as a sweep trial or confirmation run splits them."""
    tr, val, te = load_splits(cfg.data.root, holdout)
    evals = {} if val is None else {"val": val}
    evals["test"] = subset(te, cfg.data.test_subset)
    return subset(tr, cfg.data.train_subset), evals


def model_summary_text(cfg: TrainConfig) -> str:
    return summarize(create_model(cfg.model.name, dropout=cfg.model.dropout)).to_text()


def run_training(
    cfg: TrainConfig, tags: dict[str, Any] | None = None, holdout: tuple[int, int] | None = None
) -> Outcome:
    """Train `cfg` on the training set, evaluate on the test set each epoch, log it all to MLflow.

    Args:
        cfg: the resolved config (logged whole as params).
        tags: extra MLflow tags (e.g. the sweep trial a retrained config came from).
        holdout: (validation size, split seed) to train as a sweep trial does, on the 60k less
            that hold-out, evaluating it too (`val_acc`): a confirmation run trained again.
    Returns:
        The training result and the MLflow run id (None when tracking is disabled).
    Raises:
        RunFailed: training diverged (NaN or infinite loss); the MLflow run ends FAILED with
            the reason in its `fail_reason` tag.
    """
    if cfg.tracking.enabled:
        check_reachable(cfg.tracking.uri)  # fail in seconds, not after training
    tr, evals = load_data(cfg, holdout)
    device = resolve_device(cfg.device)
    if not cfg.tracking.enabled:
        try:
            return Outcome(train(cfg, tr, evals, device=device), None)
        except DivergedError as e:
            raise RunFailed(f"{cfg.name}: {e}; lower optimizer.lr or check the config") from None
    tracker = Tracker(cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.artifact_root)
    run_tags = {
        "experiment": cfg.name,
        "seed": cfg.seed,
        **provenance_tags(str(device)),
        **({"holdout": f"{holdout[0]}:{holdout[1]}"} if holdout else {}),
        **(tags or {}),
    }
    with tracker.run(f"{cfg.name}-seed{cfg.seed}", run_tags) as run:
        run.log_params(cfg.flat())
        run.log_text(model_summary_text(cfg), "model_summary.txt")
        try:
            result = train(
                cfg,
                tr,
                evals,
                on_epoch=lambda e, m: run.log_metrics(m, step=e),
                device=device,
            )
        except DivergedError as e:  # the run ends FAILED (Tracker.run) with the reason tagged
            run.set_tags({"state": "FAIL", "fail_reason": scrub_text(str(e))})
            raise RunFailed(
                f"{cfg.name}: {e}; MLflow run {run.run_id} ended FAILED; "
                "lower optimizer.lr or check the config"
            ) from None
        run.log_metrics(
            {
                f"{r}_{k}_acc": getattr(result, r)(f"{k}_acc")
                for k in evals
                for r in ("best", "final")
            },
            step=cfg.epochs,
        )
        run.log_figure(curves_figure(result.history, "test"), "curves.png")
        run.log_text(json.dumps(cfg.public(), indent=2), "config.json")
        run.log_model(result.model)
        result.model.to(device)
    return Outcome(result, run.run_id)


def describe(outcome: Outcome) -> str:
    h = outcome.result.history
    best_epoch = max(range(len(h)), key=lambda i: h[i]["test_acc"]) + 1
    return (
        f"best test accuracy {outcome.best_test_acc:.2f}% (epoch {best_epoch}), final "
        f"{outcome.final_test_acc:.2f}%, best train {outcome.result.best('train_acc'):.2f}%"
        + (
            f"; final validation {h[-1]['val_acc']:.2f}% (best {outcome.result.best('val_acc'):.2f}%)"
            if "val_acc" in h[-1]
            else ""
        )
        + (f"; MLflow run {outcome.run_id}" if outcome.run_id else "")
    )
