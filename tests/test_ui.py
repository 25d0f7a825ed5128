"""`make ui`: the MLflow UI serves the project's store on loopback; runs come back over HTTP."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import yaml

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
            "harness.cli",
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
