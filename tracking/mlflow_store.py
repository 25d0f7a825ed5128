"""MLflow runs through `MlflowClient`: explicit run ids, no global active-run stack.

The embedded default is `sqlite:///mlflow.db` with artifacts in a local folder: experiments are
created with an explicit artifact location so MLflow never falls back to `./mlruns`. Against an
`mlflow server` URL the server decides where artifacts go.
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no phoning home from a sweep

import mlflow  # noqa: E402
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from torch import nn

from tracking import plots

_BATCH = 100  # MLflow accepts at most 100 params per log_batch call


def is_local(uri: str) -> bool:
    """True for stores on this machine (SQLite file or a plain path), where we pick the artifact folder."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


class RunHandle:
    """One MLflow run; every call writes through the client right away."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client, self.run_id = client, run_id

    def log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()]
        )

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, fig: Figure, artifact_file: str) -> None:
        try:
            self.client.log_figure(self.run_id, fig, artifact_file)
        finally:
            plots.close(fig)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_model(self, model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> None:
        """Log the trained network as an MLflow PyTorch model named `model` (loadable with
        `mlflow.pytorch.load_model`). Resuming the run through the fluent API is the only way
        MLflow 3 attaches a logged model to a run; the run is left RUNNING for `finish`."""
        import numpy as np
        import torch

        model = model.cpu().eval()
        example = np.zeros((2, *input_shape), dtype=np.float32)  # MLflow's pt2 format traces it
        with mlflow.start_run(run_id=self.run_id):
            mlflow.pytorch.log_model(
                model,
                name="model",
                input_example=example,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
            self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.RUNNING))

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with MLflow status FINISHED, FAILED or KILLED."""
        self.client.set_terminated(self.run_id, status)


class Tracker:
    """One MLflow experiment on one tracking store."""

    def __init__(self, uri: str, experiment: str, artifact_root: str = "mlartifacts"):
        self.uri = uri
        mlflow.set_tracking_uri(uri)  # for log_model's fluent call
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = self._experiment(experiment, artifact_root)

    def _experiment(self, name: str, artifact_root: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if is_local(self.uri):
            slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            location = (Path(artifact_root).resolve() / slug).as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another worker created it first
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def start_run(
        self, name: str, tags: dict[str, Any] | None = None, parent: RunHandle | None = None
    ) -> RunHandle:
        tags = {k: str(v) for k, v in (tags or {}).items()}
        if parent is not None:
            tags[MLFLOW_PARENT_RUN_ID] = parent.run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return RunHandle(self.client, run.info.run_id)

    @contextmanager
    def run(
        self, name: str, tags: dict[str, Any] | None = None, parent: RunHandle | None = None
    ) -> Iterator[RunHandle]:
        """A run that always ends: FINISHED, KILLED on Ctrl-C, FAILED on any other exception."""
        handle = self.start_run(name, tags, parent)
        try:
            yield handle
        except KeyboardInterrupt:
            handle.finish("KILLED")
            raise
        except BaseException:
            handle.finish("FAILED")
            raise
        handle.finish("FINISHED")
