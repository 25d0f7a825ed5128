"""MLflow runs through `MlflowClient`: explicit run ids, no global active-run stack.

The embedded default is `sqlite:///mlflow.db` with artifacts in a local folder: experiments are
created with an explicit artifact location so MLflow never falls back to `./mlruns`. Against an
`mlflow server` URL the server decides where artifacts go.
"""

import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import sqlalchemy.exc
from matplotlib.figure import Figure
from mlflow.entities import DatasetInput, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE
from torch import nn

from harness.errors import UserError
from harness.processes import dead_here, owner
from harness.urls import has_masked_password, masked, scrub, with_driver
from tracking import plots

_BATCH = 100  # MLflow accepts at most 100 params per log_batch call


def is_local(uri: str) -> bool:
    """True for stores on this machine (SQLite file or a plain path): one machine's processes only."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def is_server(uri: str) -> bool:
    """True for an MLflow tracking server, which decides itself where artifacts go."""
    return uri.startswith(("http://", "https://", "databricks"))


def _auth_header(parts: urllib.parse.SplitResult) -> dict[str, str]:
    """The credentials MLflow itself would send: the URL's user:password (requests reads them
    from the URL), else MLflow's MLFLOW_TRACKING_USERNAME/PASSWORD, else MLFLOW_TRACKING_TOKEN."""
    import base64

    user = urllib.parse.unquote(parts.username) if parts.username else None
    pw = urllib.parse.unquote(parts.password) if parts.password else ""
    if user is None and os.environ.get("MLFLOW_TRACKING_USERNAME"):
        user = os.environ["MLFLOW_TRACKING_USERNAME"]
        pw = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if user is not None:
        token = base64.b64encode(f"{user}:{pw}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
    return {}


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, before anything is written anywhere, when the tracking store cannot be used.

    An `mlflow server` is asked for one experiment, with the credentials MLflow would send, so
    a server that is down, refuses the credentials (401, 403) or fails (5xx) is found here, not
    after training. A database URL is connected to.

    Args:
        uri: the tracking URI (SQLite, a database server URL or an `mlflow server` URL).
        timeout: seconds to wait for a server to answer.
    Raises:
        UserError: one line, credentials masked (`harness.urls.scrub`, library text included):
            the store does not answer, refuses or fails, or the URL carries the *** of a masked
            password (a config written by `make export`).
    """
    if has_masked_password(uri):
        raise UserError(
            f"tracking.uri {masked(uri)!r} has a masked password; give the real URL in "
            "MLFLOW_TRACKING_URI"
        )
    if is_local(uri) or uri.startswith("databricks"):
        return
    try:
        if is_server(uri):
            parts = urllib.parse.urlsplit(uri)
            port = f":{parts.port}" if parts.port else ""  # a bad port raises: reported below
            host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
            api = f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"
            api += "/api/2.0/mlflow/experiments/search?max_results=1"
            request = urllib.request.Request(api, headers=_auth_header(parts))
            try:
                urllib.request.urlopen(request, timeout=timeout).close()
            except urllib.error.HTTPError as e:
                if e.code in (401, 403):
                    raise UserError(
                        f"tracking store {masked(uri)!r} refused the credentials (HTTP {e.code} "
                        f"{e.reason}); give them in the URL or in MLFLOW_TRACKING_USERNAME and "
                        "MLFLOW_TRACKING_PASSWORD"
                    ) from None
                if e.code >= 500:
                    raise
                # any other answer (404 of a proxy path, 405) comes from a live server: MLflow
                # reports what it means when it is used
            return
        from sqlalchemy import create_engine

        args = {"connect_timeout": int(timeout)} if uri.startswith("postgresql") else {}
        engine = create_engine(with_driver(uri), connect_args=args)
        try:
            engine.connect().close()
        finally:
            engine.dispose()
    except UserError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise UserError(
            f"tracking store {masked(uri)!r} cannot be reached: "
            f"{type(e).__name__}: {scrub(first, uri)}"
        ) from None


# a row someone else inserted first, as a tracking server's error text says it: SQLite,
# PostgreSQL, MySQL, SQL Server (a database store's error carries the IntegrityError itself)
_UNIQUE_WORDING = (
    "UNIQUE constraint failed",
    "violates unique constraint",
    "Duplicate entry",
    "Violation of UNIQUE KEY",
    "Violation of PRIMARY KEY",
)


def _unique_violation(e: MlflowException) -> bool:
    if isinstance(e.__cause__, sqlalchemy.exc.IntegrityError):
        return True
    return any(w in str(e) for w in _UNIQUE_WORDING)


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

    def log_model(
        self,
        model: nn.Module,
        name: str = "model",
        metrics: dict[str, float] | None = None,
        step: int = 0,
        params: dict[str, Any] | None = None,
        input_shape: tuple[int, ...] = (1, 28, 28),
    ) -> str:
        """Log the trained network as an MLflow 3 LoggedModel of this run; return its model id.

        The model is named `name` (e.g. `trial-7`), carries `params` and `metrics` (at `step`),
        and is pickled, so `mlflow.pytorch.load_model` gives back the `nn.Module` itself (one can
        `.eval()` it and train it on), not a torch.export graph. Everything goes through this
        handle's client: the run is never resumed through the fluent API, whose exit would mark
        it FINISHED, so a worker killed right after this call leaves it RUNNING (and recovery
        can end it KILLED); `finish` decides its status.
        """
        import torch
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        model = model.cpu().eval()
        info = self.client.get_run(self.run_id).info
        logged = self.client.create_logged_model(
            info.experiment_id,
            name=name,
            source_run_id=self.run_id,
            params={k: str(v) for k, v in (params or {}).items()},
            model_type="pytorch",
        )
        try:
            meta = Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=self.run_id,
                model_id=logged.model_id,
            )
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / "model"
                mlflow.pytorch.save_model(
                    model,
                    local,
                    mlflow_model=meta,
                    serialization_format="pickle",
                    input_example=np.zeros((2, *input_shape), dtype=np.float32),
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                )
                self.client.log_model_artifacts(logged.model_id, str(local))
            self.client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step)])
            if metrics:
                now = int(time.time() * 1000)
                self.client.log_batch(
                    self.run_id,
                    metrics=[
                        Metric(k, float(v), now, step, model_id=logged.model_id)
                        for k, v in metrics.items()
                    ],
                )
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        return logged.model_id

    def log_inputs(self, datasets: list[DatasetInput], attempts: int = 3) -> None:
        """Record the data the run used (see `tracking.datasets`): the run page's Datasets.

        MLflow's SQL store looks a dataset up, then inserts it if missing: two workers logging a
        new dataset at the same moment collide on its unique key (the second one's insert fails).
        The dataset then exists, so the loser's next attempt links it."""
        for attempt in range(1, attempts + 1):
            try:
                self.client.log_inputs(self.run_id, datasets=datasets)
                return
            except MlflowException as e:
                if attempt == attempts or not _unique_violation(e):
                    raise
                time.sleep(0.2 * attempt)

    def describe(self, markdown: str) -> None:
        """The run's description in the UI (Markdown), its `mlflow.note.content` tag."""
        self.set_tags({MLFLOW_RUN_NOTE: markdown})

    def rename(self, name: str) -> None:
        self.client.update_run(self.run_id, name=name)

    @contextmanager
    def system_metrics(self, interval: float = 2.0) -> Iterator[None]:
        """Sample CPU, memory, disk, network (and GPU where MLflow finds one) every `interval`
        seconds into the run's System metrics while the block runs. MLflow's default of 10 s
        leaves a short trial with one point or none."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(
            self.run_id, sampling_interval=interval, tracking_uri=self.client.tracking_uri
        )
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with MLflow status FINISHED, FAILED or KILLED."""
        self.client.set_terminated(self.run_id, status)


class Tracker:
    """One MLflow experiment on one tracking store."""

    def __init__(self, uri: str, experiment: str, artifact_root: str = "mlartifacts"):
        uri = with_driver(uri)  # postgresql:// -> the psycopg2 driver we install
        self.uri = uri
        # the client is passed everywhere (models, system metrics too): MLflow's process-wide
        # tracking URI is never set, so nothing leaks into other stores or child processes
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = self._experiment(experiment, artifact_root)

    def _experiment(self, name: str, artifact_root: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if not is_server(self.uri):  # a database store: artifacts go to our folder, not ./mlruns
            slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            if "://" in artifact_root:
                location = f"{artifact_root.rstrip('/')}/{slug}"
            else:
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
        # whose run it is: a process that dies without ending it leaves it RUNNING (`end_orphans`)
        tags = {**(tags or {}), **owner()}
        tags = {k: str(v) for k, v in tags.items()}
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


def end_orphans(client: MlflowClient, experiment_id: str, filter_string: str = "") -> list[str]:
    """End KILLED the RUNNING runs whose process died on this machine without ending them.

    A run ends itself on Ctrl-C and on errors (`Tracker.run`); SIGKILL, the OOM killer or a lost
    session leave it RUNNING forever in the UI. A resumable job (findings, the confirmation) calls
    this before training again. Only runs started by a process of this machine whose pid is gone
    are touched: a run of a live process, or of another machine, may still be training. (After a
    reboot the machine's boot id differs, so runs left by a crash before it are left alone too.)

    Args:
        client: a client on the tracking store.
        experiment_id: the experiment to look in.
        filter_string: narrows the search further (MLflow search syntax), e.g. to one study.
    Returns:
        One line per run ended, naming it and why; each run is now KILLED with the reason in its
        `fail_reason` tag.
    """
    running = "attributes.status = 'RUNNING'"
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"{filter_string} and {running}" if filter_string else running,
        max_results=10000,
    )
    ended = []
    for run in runs:
        tags = run.data.tags
        worker = tags.get("worker", "")
        if not dead_here(worker, tags.get("pid_space", "")):
            continue
        # its owner may have ended it between the search and the pid check, then exited
        if client.get_run(run.info.run_id).info.status != "RUNNING":
            continue
        reason = f"its process ({worker}) died before ending it; ended when the job resumed"
        handle = RunHandle(client, run.info.run_id)
        handle.set_tags({"fail_reason": reason, "closed_by": "resume"})
        handle.finish("KILLED")
        ended.append(f"run {run.info.run_name!r} ended KILLED: {reason}")
    return ended
