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


def test_a_diverging_train_run_is_one_line_exit_1_and_a_failed_run_with_the_reason(tmp_path):
    over = quick_overrides(tmp_path)
    over["data"] = {**over["data"], "train_subset": 500, "test_subset": 200}
    r = run_cli(
        "train",
        "--file",
        str(REPO / "experiments.yaml"),
        *_args(over),
        "optimizer.lr=10.0",
        "batch_size=32",
        cwd=tmp_path,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()  # MLflow's own INFO lines come first
    assert [x for x in lines if x.startswith("error")] == lines[-1:], r.stderr
    assert "Traceback" not in r.stderr
    assert "training diverged at epoch 1" in lines[-1] and "ended FAILED" in lines[-1]
    client = MlflowClient(over["tracking"]["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["fail_reason"].startswith("training diverged at epoch 1")
