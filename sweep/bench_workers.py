"""`make bench-workers`: trials per hour of one study run by 1 worker of all cores against k
workers of one core each, same study settings, same machine, one after the other.

A benchmark, not a test: each arm is a fresh study in a temp folder (its own Optuna and MLflow
stores), with a short fixed trial (epochs, subsets below) and pruning off so every trial does the
same work. Writes reports/bench_workers.json.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

ARGS = [
    "epochs=3",
    "data.train_subset=10000",
    "data.test_subset=2000",
    "progress=false",
    "sweep.val_size=2000",
    "sweep.pruners=[]",
    "sweep.log_models=false",
    "sweep.confirm.k=0",
]


def _arm(workers: int, n_trials: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "OPTUNA_STORAGE": f"sqlite:///{tmp}/optuna.db",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
        }
        cmd = [
            sys.executable,
            "-m",
            "cli",
            "sweep",
            "--file",
            str(Path("experiments.yaml").resolve()),
            "--n-trials",
            str(n_trials),
            "--workers",
            str(workers),
            *ARGS,
            f"tracking.artifact_root={tmp}/artifacts",
        ]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"bench arm with {workers} workers failed:\n{r.stdout}\n{r.stderr}")
        # k workers may finish up to k - 1 trials over the total: count what was trained
        study = optuna.load_study(study_name="s7-sweep", storage=env["OPTUNA_STORAGE"])
        done = len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))
    return {
        "workers": workers,
        "threads_per_worker": threads,
        "trials": done,
        "seconds": seconds,
        "trials_per_hour": done * 3600 / seconds,
    }


def main(n_trials: int = 8) -> dict:
    cores = os.cpu_count() or 1
    arms = [_arm(1, n_trials, cores), _arm(cores, n_trials, 1)]
    report = {"cores": cores, "study_args": ARGS, "arms": arms, "date": time.strftime("%Y-%m-%d")}
    out = Path("reports/bench_workers.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for a in arms:
        print(
            f"{a['workers']} worker(s) x {a['threads_per_worker']} thread(s): {a['trials']} trials "
            f"in {a['seconds']:.0f} s = {a['trials_per_hour']:.0f} trials/hour"
        )
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
