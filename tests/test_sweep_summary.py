"""The study summary on its MLflow parent run, from a real Optuna storage and MLflow store."""

import matplotlib
import optuna
from mlflow.tracking import MlflowClient

from sweep.spec import SweepSpec
from sweep.summary import log_study_summary
from tracking import Tracker


def _study(tmp) -> optuna.Study:
    study = optuna.create_study(
        study_name="s", storage=f"sqlite:///{tmp}/optuna.db", direction="maximize"
    )
    dists = {
        "optimizer.lr": optuna.distributions.FloatDistribution(0.01, 1.0, log=True),
        "batch_size": optuna.distributions.CategoricalDistribution([64, 128]),
    }
    for i, (lr, b) in enumerate([(0.05, 64), (0.1, 128), (0.2, 64), (0.4, 128)]):
        study.add_trial(
            optuna.trial.create_trial(
                params={"optimizer.lr": lr, "batch_size": b},
                distributions=dists,
                value=98.0 + i / 10,
                intermediate_values={1: 97.0 + i / 10, 2: 98.0 + i / 10},
            )
        )
    return study


def test_the_summary_logs_its_plots_and_leaves_matplotlib_style_as_it_was(tmp_path):
    study = _study(tmp_path)
    spec = SweepSpec(
        study_name="s", space={"optimizer.lr": {"type": "float", "low": 0.01, "high": 1.0}}
    )
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "s", str(tmp_path / "artifacts"))
    parent = tracker.start_run("study")
    before = dict(matplotlib.rcParams)

    log_study_summary(study, parent, spec)

    # Optuna's plots set the ggplot style process-wide; later figures (the findings report's,
    # drawn in the same process after its grid study) must not change look because of it
    assert dict(matplotlib.rcParams) == before
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    arts = {a.path for a in client.list_artifacts(parent.run_id)}
    assert {"optimization_history.png", "slice_batch_size.png", "trials.csv"} <= arts
    assert client.get_run(parent.run_id).data.tags["best_trial"] == "3"


def test_a_logged_model_is_the_trial_s_module_and_the_run_stays_running_until_finish(
    tmp_path, small_data, monkeypatch
):
    import mlflow.pytorch
    import torch

    from harness.trainer import evaluate
    from model_zoo import create_model

    _, test = small_data
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "s", str(tmp_path / "artifacts"))
    run = tracker.start_run("trial-7")
    torch.manual_seed(0)
    model = create_model("s7_net", dropout=0.0)
    acc = float(evaluate(model, test)[1])

    model_id = run.log_model(model, name="s-trial-7", metrics={"test_acc": acc}, step=1)

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    # a worker killed right here must not leave a FINISHED run behind (recovery ends it KILLED)
    info = client.get_run(run.run_id).info
    assert info.status == "RUNNING"
    assert info.end_time is None  # it never passed through FINISHED (which stamps an end time)
    logged = client.get_logged_model(model_id)
    assert logged.name == "s-trial-7" and logged.source_run_id == run.run_id
    assert {m.key: m.value for m in logged.metrics} == {"test_acc": acc}
    # a user loads it in their own process, pointed at the store (the library set no default)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    loaded = mlflow.pytorch.load_model(f"models:/{model_id}")
    assert isinstance(loaded, torch.nn.Module)
    loaded.eval()  # an exported graph raises NotImplementedError here
    assert float(evaluate(loaded, test)[1]) == acc
    loaded.train()  # and it trains on
    loss = loaded(test.x[:8]).sum()
    loss.backward()
    run.finish()
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_no_password_reaches_the_invocation_artifact_or_a_logged_config(experiments):
    """A tracking URI or artifact root given with its password (an override, so also in the
    sweep's fixed overrides) is masked in the study run's invocations/*.json and in every config
    as logged (`public`: params, the trial's attribute, best_config.yaml)."""
    from harness.config import parse_overrides
    from sweep.summary import log_invocation

    over = parse_overrides(
        ["tracking.uri=postgresql://u:hunter2@db/x", "tracking.artifact_root=sftp://u:hunter2@h/a"]
    )
    logged = {}

    class Parent:
        def log_text(self, text: str, path: str) -> None:
            logged[path] = text

    log_invocation(Parent(), experiments.section("sweep"), over)
    (text,) = logged.values()
    assert "hunter2" not in text and "postgresql://u:***@db/x" in text
    public = experiments.resolve("s7_file3", over).public()
    assert (
        "hunter2" not in str(public) and public["tracking"]["artifact_root"] == "sftp://u:***@h/a"
    )
