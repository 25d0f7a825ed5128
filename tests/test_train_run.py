"""`make train`: one tracked run in a real (temporary) MLflow store, as a user would inspect it."""

from mlflow.tracking import MlflowClient

from tests.conftest import REPO, quick_overrides, run_cli


def _args(over: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in over.items():
        if isinstance(v, dict):
            out += _args(v, f"{prefix}{k}.")
        else:
            out.append(
                f"{prefix}{k}={'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
            )
    return out


def test_make_train_logs_config_metrics_tags_and_artifacts(tmp_path):
    over = quick_overrides(tmp_path, epochs=2)
    r = run_cli(
        "train",
        "--file",
        str(REPO / "experiments.yaml"),
        "--exp",
        "s7_file2",
        *_args(over),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "best test accuracy" in r.stdout
    client = MlflowClient(over["tracking"]["uri"])
    exp = client.get_experiment_by_name("train")
    assert exp.artifact_location.startswith((tmp_path / "artifacts").as_uri())
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["name"] == "s7_file2" and p["scheduler.step_size"] == "4" and p["batch_size"] == "128"
    assert p["augment.enabled"] == "False" and p["optimizer.lr"] == "0.1"
    t = run.data.tags
    assert t["experiment"] == "s7_file2" and t["seed"] == "1" and t["device"] == "cpu"
    assert t["torch_version"] and t["git_commit"]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model_summary.txt", "curves.png", "config.json"} <= arts
    summary = tmp_path / "artifacts" / "train" / run.info.run_id / "artifacts" / "model_summary.txt"
    assert "Total params: 8,000" in summary.read_text()
    assert client.search_logged_models([exp.experiment_id])  # the trained weights
    assert not (tmp_path / "mlruns").exists()
