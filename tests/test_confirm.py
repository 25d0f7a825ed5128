"""The confirmation (issue 14) on tiny real data, with a real Optuna storage and a real MLflow
store: the study's top trial and the baseline re-run over 2 paired seeds as nested runs on the
study's hold-out; Ctrl-C mid-confirmation and a resume that retrains nothing finished and ends a
SIGKILLed run; `make export` recording the confirmation and registering the champion; the
statistics behind it against scipy by hand.
"""

import math
import os
import shlex
import signal
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from scipy import stats as scipy_stats

from harness.errors import UserError
from harness.processes import pid_space
from harness.stats import (
    detectable_difference,
    mean_interval,
    paired_difference,
    seeds_needed,
)
from sweep.confirm import IS_BASELINE, Candidate, summarize
from sweep.spec import load as load_sweep
from tests.conftest import REPO, dead_worker, experiments_doc, run_cli, write_experiments
from tracking.resolution import accuracy_decimals

STUDY = "confirm-test"
SEEDS = [1, 2]  # 1 is the trials' own seed: its runs check that a config retrains exactly


def _experiments(tmp) -> str:
    """Two trials (the baseline, lr 0.1, and lr 0.15), then k=2: 2 candidates x 2 seeds."""
    doc = experiments_doc(tmp, 1, train_subset=600, test_subset=200)
    doc["sweep"] = {
        "study_name": STUDY,
        "storage": f"sqlite:///{tmp}/runs/optuna.db",
        "n_trials": 2,
        "val_size": 300,
        "pruners": [],
        "enqueue": [{"optimizer.lr": 0.15}],
        "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2}},
        "confirm": {"k": 2, "seeds": SEEDS},
    }
    return write_experiments(tmp, doc)


def _confirm_runs(client: MlflowClient, status: str | None = None):
    exp = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([exp.experiment_id], "tags.role = 'confirm'", max_results=100)
    return [r for r in runs if status is None or r.info.status == status]


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    """`make sweep` interrupted by Ctrl-C once one confirmation run has finished, `make confirm`
    to resume it, `make confirm` again, then `make export` with and without the confirmation."""
    tmp = tmp_path_factory.mktemp("confirm")
    exp_file = _experiments(tmp)
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "sweep", "--file", exp_file],
        cwd=tmp,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    seen = []
    for line in proc.stdout:  # runs go seed by seed: "[2/4]" means run 1 has finished
        seen.append(line)
        if "[2/4]" in line:
            proc.send_signal(signal.SIGINT)
            break
    out = "".join(seen) + proc.communicate(timeout=300)[0]
    finished_before = {r.info.run_id for r in _confirm_runs(client, "FINISHED")}
    all_before = _confirm_runs(client)
    # a confirmation run whose process was SIGKILLed here: left RUNNING until a resume ends it
    orphan = client.create_run(
        client.get_experiment_by_name(STUDY).experiment_id,
        run_name="orphan",
        tags={
            "role": "confirm",
            "study_name": STUDY,
            "worker": dead_worker(),
            "pid_space": pid_space(),
        },
    ).info.run_id
    resumed = run_cli("confirm", "--file", exp_file, cwd=tmp)
    after_resume = len(_confirm_runs(client))
    again = run_cli("confirm", "--file", exp_file, cwd=tmp)
    export = run_cli("export", "--file", exp_file, cwd=tmp)
    single = run_cli(
        "export", "--file", exp_file, "--out", "single.yaml", "--table", "single.csv",
        "sweep.confirm.k=0", cwd=tmp,
    )  # fmt: skip
    return {
        "tmp": tmp,
        "client": client,
        "interrupted": (proc.returncode, out),
        "finished_before": finished_before,
        "all_before": all_before,
        "orphan": orphan,
        "resumed": resumed,
        "after_resume": after_resume,
        "again": again,
        "export": export,
        "single": single,
        "study": optuna.load_study(study_name=STUDY, storage=f"sqlite:///{tmp}/runs/optuna.db"),
    }


def test_ctrl_c_stops_the_confirmation_and_a_resume_trains_only_what_is_missing(confirmed):
    rc, out = confirmed["interrupted"]
    assert rc == 130, out
    assert "Traceback" not in out
    before = confirmed["finished_before"]
    assert 1 <= len(before) < 4, out
    # the run that Ctrl-C stopped (if it had started) ended KILLED, none is left RUNNING
    assert {r.info.status for r in confirmed["all_before"]} <= {"FINISHED", "KILLED"}
    resumed = confirmed["resumed"]
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trained = 4 - len(before)
    assert f"({trained} trained now, {len(before)} found in MLflow)" in resumed.stdout
    assert "confirmation: run 'orphan' ended KILLED: its process (" in resumed.stdout
    orphan = confirmed["client"].get_run(confirmed["orphan"])
    assert (
        orphan.info.status == "KILLED"
        and "died before ending it" in orphan.data.tags["fail_reason"]
    )
    finished = _confirm_runs(confirmed["client"], "FINISHED")
    assert len(finished) == 4 and before <= {r.info.run_id for r in finished}
    # one finished run per (config, seed): nothing was trained twice
    assert len({r.data.tags["config_hash"] for r in finished}) == 4
    again = confirmed["again"]
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(0 trained now, 4 found in MLflow)" in again.stdout
    assert len(_confirm_runs(confirmed["client"])) == confirmed["after_resume"]
    assert len(_confirm_runs(confirmed["client"], "FINISHED")) == 4


def test_each_candidate_and_seed_is_a_nested_run_on_the_study_hold_out(confirmed):
    client, study = confirmed["client"], confirmed["study"]
    exp = client.get_experiment_by_name(STUDY)
    (parent,) = client.search_runs([exp.experiment_id], "tags.role = 'study'")
    runs = _confirm_runs(client, "FINISHED")
    assert {(r.data.tags["confirms_trial"], r.data.tags["seed"]) for r in runs} == {
        (t, str(s)) for t in ("1", "baseline") for s in SEEDS
    }
    trial_run = client.get_run(study.trials[1].user_attrs["mlflow_run_id"])

    def val_digest(run):
        (val,) = [d for d in run.inputs.dataset_inputs if d.dataset.name == "mnist-val"]
        return val.dataset.digest

    for r in runs:
        tags = r.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["study_name"] == STUDY and len(tags["config_hash"]) == 16
        assert r.data.params["seed"] == tags["seed"]
        assert val_digest(r) == val_digest(trial_run)  # the same 300-image hold-out
        assert "final_val_acc" in r.data.metrics and "test_acc" in r.data.metrics
    # seed 1 is the trials' own seed: the same config at the same seed trains the same network
    (same,) = [
        r for r in runs if r.data.tags["confirms_trial"] == "1" and r.data.tags["seed"] == "1"
    ]
    assert same.data.metrics["final_val_acc"] == pytest.approx(study.trials[1].value, abs=1e-6)
    # which is why the default seeds leave it out, and a list holding it gets a note
    assert "note: seed 1 is the trials' own seed" in confirmed["resumed"].stdout
    parent = client.get_run(parent.info.run_id)
    doc = study.user_attrs["confirmation"]
    assert parent.data.tags["confirm_chosen"] == doc["chosen"]
    assert parent.data.tags["confirm_verdict"] == doc["verdict"]
    assert parent.info.status == "FINISHED"
    assert {"confirm.csv", "confirm.md"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }


def test_export_records_the_confirmation_recomputable_from_mlflow(confirmed):
    export, tmp, client = confirmed["export"], confirmed["tmp"], confirmed["client"]
    assert export.returncode == 0, export.stdout + export.stderr
    doc = yaml.safe_load((tmp / "best_config.yaml").read_text())
    p, c = doc["provenance"], doc["provenance"]["confirmation"]
    assert p["pick"].startswith("confirmed over paired seeds")
    assert c["seeds"] == SEEDS and {x["candidate"] for x in c["candidates"]} == {
        "trial-1",
        "baseline",
    }
    assert c["verdict"] in ("beats", "ties", "loses", "is the baseline")
    chosen = next(x for x in c["candidates"] if x["candidate"] == c["chosen"])
    assert doc["searched"] == chosen["params"]
    assert doc["train"]["optimizer"]["lr"] == chosen["params"]["optimizer.lr"]
    # recompute from the per-seed MLflow metrics, by hand
    runs = _confirm_runs(client, "FINISHED")
    per = {
        (r.data.tags["confirms_trial"], int(r.data.tags["seed"])): r.data.metrics["final_val_acc"]
        for r in runs
    }
    t = scipy_stats.t.ppf(0.975, len(SEEDS) - 1)
    base = [per[("baseline", s)] for s in SEEDS]
    for cand in c["candidates"]:
        key = "baseline" if cand["candidate"] == "baseline" else str(cand["trial"])
        vals = [per[(key, s)] for s in SEEDS]
        assert cand["values"] == vals
        m, sd = sum(vals) / 2, math.sqrt(sum((v - sum(vals) / 2) ** 2 for v in vals))
        assert cand["mean"] == pytest.approx(m, abs=1e-3)
        assert cand["lo"] == pytest.approx(m - t * sd / math.sqrt(2), abs=1e-3)
        if key != "baseline":
            d = [a - b for a, b in zip(vals, base, strict=True)]
            dm, dsd = sum(d) / 2, abs(d[0] - d[1]) / math.sqrt(2)
            assert cand["diff_mean"] == pytest.approx(dm, abs=1e-3)
            assert cand["diff_hi"] == pytest.approx(dm + t * dsd / math.sqrt(2), abs=1e-3)
    table = pd.read_csv(tmp / "confirm.csv")
    assert list(table["candidate"]) == [x["candidate"] for x in c["candidates"]]
    assert (tmp / "trials.csv").exists()
    # the chosen trial's logged model is the registered champion
    study = confirmed["study"]
    assert p["model"]["registered"], p["model"]
    model_id = study.trials[chosen["trial"]].user_attrs["mlflow_model_id"]
    version = client.get_model_version(STUDY, p["model"]["version"])
    assert version.source == f"models:/{model_id}" and p["model"]["model_id"] == model_id
    assert f"models:/{STUDY}@champion" in export.stdout


def test_the_exported_config_retrains_one_confirmation_run_to_the_digit(confirmed):
    tmp, client = confirmed["tmp"], confirmed["client"]
    text = (tmp / "best_config.yaml").read_text()
    line = next(ln for ln in text.splitlines() if "confirmation run of seed S again" in ln)
    args = shlex.split(line.split('ARGS="', 1)[1].rstrip('"').replace("seed=S", f"seed={SEEDS[1]}"))
    r = run_cli("train", "--config", "best_config.yaml", *args, cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = yaml.safe_load(text)
    c = doc["provenance"]["confirmation"]
    chosen = next(x for x in c["candidates"] if x["candidate"] == c["chosen"])
    key = "baseline" if chosen["candidate"] == "baseline" else str(chosen["trial"])
    logged = next(
        r
        for r in _confirm_runs(client, "FINISHED")
        if (r.data.tags["confirms_trial"], r.data.tags["seed"]) == (key, str(SEEDS[1]))
    )
    exp = client.get_experiment_by_name("train")
    (again,) = client.search_runs([exp.experiment_id], "tags.holdout = '300:0'")
    want = [m.value for m in client.get_metric_history(logged.info.run_id, "val_acc")]
    got = [m.value for m in client.get_metric_history(again.info.run_id, "val_acc")]
    digits = accuracy_decimals(300)  # the sweep logs accuracies to what its 300 images resolve
    assert [round(v, digits) for v in got] == want
    want = [m.value for m in client.get_metric_history(logged.info.run_id, "train_loss")]
    got = [m.value for m in client.get_metric_history(again.info.run_id, "train_loss")]
    assert got == want  # the same training, step for step


def test_export_without_a_confirmation_says_it_is_a_single_seed_pick(confirmed):
    single, tmp, study = confirmed["single"], confirmed["tmp"], confirmed["study"]
    assert single.returncode == 0, single.stdout + single.stderr
    text = (tmp / "single.yaml").read_text()
    doc = yaml.safe_load(text)
    assert doc["provenance"]["pick"].startswith("single-seed pick")
    assert doc["provenance"]["confirmation"] is None
    assert doc["provenance"]["trial"] == study.best_trial.number
    assert "single-seed pick" in text.splitlines()[0] and "single-seed pick" in single.stdout
    # exported last, its model carries the alias; the same model is never registered twice
    client = confirmed["client"]
    model_id = study.best_trial.user_attrs["mlflow_model_id"]
    champion = client.get_model_version_by_alias(STUDY, "champion")
    assert champion.source == f"models:/{model_id}"
    sources = [v.source for v in client.search_model_versions(f"name = '{STUDY}'")]
    assert len(sources) == len(set(sources))


def test_confirm_without_a_study_is_one_line_and_writes_nothing(tmp_path):
    exp_file = _experiments(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_cli("confirm", "--file", exp_file, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error:") and "Traceback" not in r.stderr, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "confirm, says",
    [
        ({"seeds": [1, 1]}, "duplicates"),
        ({"seeds": [3]}, "at least 2"),
        ({"seeds": [1, -1]}, "greater than or equal to 0"),
        ({"k": -1}, "greater than or equal to 0"),
    ],
)
def test_confirm_settings_are_validated_with_the_sweep_section(tmp_path, confirm, says):
    doc = yaml.safe_load((REPO / "experiments.yaml").read_text())
    assert doc["sweep"]["confirm"] == {"k": 3, "seeds": [2, 3, 4, 5, 6]}  # the documented defaults
    doc["sweep"]["confirm"] = confirm
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match="sweep.confirm") as e:
        load_sweep(path)
    assert says in str(e.value)


# ---- the statistics module, against scipy by hand


def test_mean_interval_matches_scipy():
    vals = [99.31, 99.42, 99.35, 99.46, 99.38]
    est = mean_interval(vals)
    lo, hi = scipy_stats.t.interval(
        0.95, len(vals) - 1, loc=sum(vals) / 5, scale=scipy_stats.sem(vals)
    )
    assert (est.mean, est.lo, est.hi) == pytest.approx((sum(vals) / 5, lo, hi), abs=1e-12)
    assert math.isnan(mean_interval([99.0]).lo) and mean_interval([99.0]).mean == 99.0
    assert math.isnan(mean_interval([99.0, math.nan, 99.2]).mean)  # no value, no mean


def test_a_diverged_seed_leaves_its_config_unchosen_and_pairs_the_rest(experiments):
    """A run that diverged has no value (NaN): its config gets no mean and cannot be chosen, and
    every difference to the baseline is paired over the seeds where both have a value."""
    cfg = experiments.resolve("s7_file3")
    cands = [
        Candidate("trial-4", 4, {}, cfg, False),
        Candidate("trial-7", 7, {}, cfg, False),
        Candidate("baseline", 0, {}, cfg, True),
    ]
    vals = {
        "trial-4": [99.3, 99.4, 99.5],
        "trial-7": [99.6, math.nan, 99.7],  # diverged at seed 3: best values, but no mean
        "baseline": [99.2, 99.2, math.nan],  # diverged at seed 4: pairs at seeds 2 and 3
    }

    def run(v: float) -> SimpleNamespace:
        status = "FAILED" if math.isnan(v) else "FINISHED"
        info = SimpleNamespace(status=status, start_time=0, end_time=60_000)
        return SimpleNamespace(
            info=info, data=SimpleNamespace(metrics={"final_val_acc": v}, params={"epochs": "15"})
        )

    runs = {
        (label, seed): run(v)
        for label, vs in vals.items()
        for seed, v in zip((2, 3, 4), vs, strict=True)
    }
    spec = experiments.section("sweep")
    doc = summarize(cands, [2, 3, 4], runs, spec, [4, 7])
    rows = {r["candidate"]: r for r in doc["candidates"]}
    assert doc["chosen"] == "trial-4" and rows["trial-7"]["mean"] is None
    assert rows["trial-4"]["diff_mean"] == pytest.approx(0.15)  # seeds 2 and 3 only
    assert rows["trial-7"]["diff_mean"] == pytest.approx(0.4)  # seed 2 alone: no interval
    assert rows["trial-7"]["diff_lo"] is None and doc["runs"] == 9 and doc["epochs"] == 135
    # a config that only ties the baseline's mean is not chosen over it
    for seed, v in zip((2, 3, 4), [99.3, 99.4, 99.5], strict=True):
        runs[("baseline", seed)] = run(v)
    tie = summarize(cands, [2, 3, 4], runs, spec, [4, 7])
    assert tie["chosen"] == "baseline" and tie["verdict"] == IS_BASELINE


def test_paired_difference_matches_scipy_ttest_rel():
    a = [98.91, 98.95, 98.80, 99.02, 98.88]
    b = [98.85, 98.97, 98.71, 98.94, 98.86]
    d = paired_difference(a, b)
    ci = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (d.lo, d.hi) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert d.side(0.0) == ("above" if ci.low > 0 else "straddles" if ci.high >= 0 else "below")
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def _power(delta, sd, n):
    """Power of the two-sided paired t-test at 5%, by hand with the noncentral t."""
    crit = scipy_stats.t.ppf(0.975, n - 1)
    nc = delta / sd * math.sqrt(n)
    return scipy_stats.nct.sf(crit, n - 1, nc) + scipy_stats.nct.cdf(-crit, n - 1, nc)


@pytest.mark.parametrize("sd, n", [(0.05, 5), (0.1, 3), (0.08, 10), (1.0, 30)])
def test_detectable_difference_has_80_percent_power(sd, n):
    delta = detectable_difference(sd, n)
    assert _power(delta, sd, n) == pytest.approx(0.80, abs=1e-6)
    assert _power(0.99 * delta, sd, n) < 0.80
    # near the usual approximation (t quantiles instead of the noncentral t)
    approx = (scipy_stats.t.ppf(0.975, n - 1) + scipy_stats.t.ppf(0.80, n - 1)) * sd / math.sqrt(n)
    assert delta == pytest.approx(approx, rel=0.1)  # within 6% at 3 seeds, closer with more


def test_detectable_difference_edges():
    assert detectable_difference(0.0, 5) == 0.0
    assert math.isnan(detectable_difference(0.1, 1))
    assert detectable_difference(1.0, 5) == pytest.approx(1.682, abs=1e-3)  # pinned


def test_seeds_needed_is_the_smallest_n_with_80_percent_power():
    diff, sd = 0.05, 0.1
    n = seeds_needed(diff, sd)
    assert _power(diff, sd, n) >= 0.80 > _power(diff, sd, n - 1)
    assert seeds_needed(-diff, sd) == n  # the sign does not matter
    assert seeds_needed(0.0, sd) is None and seeds_needed(diff, 0.0) == 2
    assert seeds_needed(1e-6, 0.1) is None  # beyond any sensible number of seeds
