"""Tracking: everything a run produces goes to MLflow through here (the trainer never imports
mlflow); `job` is `make train`'s tracked run."""

from tracking.mlflow_store import RunHandle, Tracker
from tracking.plots import curves_figure
from tracking.provenance import provenance_tags

__all__ = ["RunHandle", "Tracker", "curves_figure", "provenance_tags"]
