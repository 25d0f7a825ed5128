"""`make ui`: the MLflow UI serves the project's store on loopback; runs come back over HTTP, and a
real browser shows a user the study, its trials, the pruned one and the best one."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from tests import browser, tiny_study
from tests.conftest import REPO
from tracking import Tracker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_ui_serves_runs_over_http(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "s7-sweep", str(tmp_path / "artifacts"))
    with tracker.run("trial-0", {"state": "COMPLETE"}) as run:
        run.log_metrics({"val_acc": 98.7}, step=1)
        run.log_text("hello", "model_summary.txt")
    doc = yaml.safe_load((REPO / "experiments.yaml").read_text())
    doc["defaults"]["tracking"]["uri"] = uri
    doc["defaults"]["tracking"]["artifact_root"] = str(tmp_path / "artifacts")
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(doc))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "ui",
            "--file",
            "experiments.yaml",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.time() < deadline, "the UI did not come up in 120 s"
                time.sleep(1)
        exps = _post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})
        exp = next(e for e in exps["experiments"] if e["name"] == "s7-sweep")
        runs = _post(
            f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]}
        )
        (r,) = runs["runs"]
        assert r["info"]["run_id"] == run.run_id and r["info"]["status"] == "FINISHED"
        assert {m["key"]: m["value"] for m in r["data"]["metrics"]} == {"val_acc": 98.7}
        art = urllib.request.urlopen(
            f"{base}/get-artifact?path=model_summary.txt&run_uuid={run.run_id}", timeout=10
        ).read()
        assert art == b"hello"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _serve_ui(tmp_path, study: dict):
    """Start `make ui`'s command on the tiny study; return (process, the study link it printed)."""
    doc = yaml.safe_load((REPO / "experiments.yaml").read_text())
    doc["defaults"]["tracking"]["uri"] = study["uri"]
    doc["defaults"]["tracking"]["artifact_root"] = str(tmp_path / "artifacts")
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(doc))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "ui", "--file", "experiments.yaml"]
        + ["--port", str(port), f"sweep.study_name={tiny_study.STUDY}"],
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    link = None
    for line in proc.stdout:  # the two lines it prints before the server starts
        if line.startswith("the study's runs: "):
            link = line.split(": ", 1)[1].strip()
            break
    base = f"http://127.0.0.1:{port}"
    started = time.time()
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).read()
            break
        except OSError:
            assert proc.poll() is None, "the UI exited"
            assert time.time() - started < 60, "the UI was not ready in 60 s"
            time.sleep(0.3)
    return proc, link, base, time.time() - started


@pytest.mark.skipif(
    browser.find_chromium() is None,
    reason="no chromium on PATH: the real-browser UI test needs Debian's `chromium` "
    "(apt-get install chromium; .ci/run installs it)",
)
def test_a_user_sees_the_study_its_trials_the_pruned_one_and_the_best_in_a_real_browser(tmp_path):
    study = tiny_study.build(tmp_path)
    proc, link, base, ready_s = _serve_ui(tmp_path, study)
    try:
        exp = study["experiment_id"]
        # the link opens the study's runs in the model-training view, with the useful columns
        assert (
            link
            == f"{base}/#/experiments/{exp}/runs?viewStateShareKey=study&workflowType=machine_learning"
        )
        assert ready_s < 30, f"the UI took {ready_s:.0f} s to be ready"
        with browser.Browser(browser.find_chromium(), tmp_path) as b:
            b.open(link)
            text = b.wait_for_text(tiny_study.STUDY, "Model training", "state", "val_acc")
            assert "search.optimizer.lr" in text and "search.batch_size" in text
            assert "trial-1" not in text  # the trials are nested under the collapsed study run
            b.click('button[data-component-id*="runnamecellrenderer"]')  # expand the study run
            text = b.wait_for_text(
                "trial-0 · 98.31",
                "trial-1 · pruned @ epoch 2",
                "trial-2 · 98.72 ★ best",
                "trial-3 · FAILED",
            )
            for state in ("PRUNED", "COMPLETE", "FAIL"):  # the state column, filled
                assert state in text
            rows = [line for line in text.splitlines() if line.startswith(("tiny-study", "trial-"))]
            assert rows[0] == tiny_study.STUDY, rows  # the study run first, its trials below
            b.screenshot(tmp_path / "ui-runs.png")

            # the best trial's own page: the mark, the way back, its model and datasets
            b.open(f"{base}/#/experiments/{exp}/runs/{study['best']}")
            text = b.wait_for_text("Best trial", "tiny-study-trial-2", "mnist-train")
            b.screenshot(tmp_path / "ui-best-trial.png")

            # the study run: live counters and the description with the top trials
            b.open(f"{base}/#/experiments/{exp}/runs/{study['parent']}")
            b.wait_for_text("complete, 3/3 finished trials", "Pruning savings accounted")
            b.screenshot(tmp_path / "ui-study-run.png")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
