"""`python -m cli.findings`: the quick path end to end on two of the claims, in a real temporary MLflow store.

Their three settings x two seeds x one epoch on 500 + 500 real MNIST images: the runs land in
MLflow tagged by config hash, a re-run trains nothing, a lost run is trained again, and the report
has a verdict per claim, the quick banner on top, the figures, and exactly the numbers MLflow
holds; a run that a killed process left RUNNING is ended KILLED on resume. The comparisons a claim
is decided by are checked on hand-made runs.
"""

import os
import socket
import subprocess
import sys

import optuna
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats as scipy_stats

from cli.findings import main
from findings.claims import BATCH_SIZES, CLAIMS, FIGURES, SETTINGS
from findings.plan import build_plan, config_hash
from findings.spec import load
from findings.store import RunRecord
from findings.tuned import Point, best_by_validation, judge_batch_sizes, next_edges, study_spec
from findings.verdicts import Judge, verdict
from harness.config import parse_overrides
from harness.processes import pid_space
from harness.stats import detectable_difference, mean_interval, seeds_needed
from tests.conftest import DATA_ROOT, REPO, dead_worker

SPEC = f"""\
findings:
  mlflow_experiment: findings
  seeds: [1, 2, 3]
  overrides: [progress=false, device=cpu, "data.root={DATA_ROOT}"]
  report: reports/findings.md
  quick:
    seeds: [1, 2]
    overrides: [epochs=1, data.train_subset=500, data.test_subset=500]
    report: reports/findings_quick.md
  tuned_lr:
    question: "Is batch 64 the best with the lr tuned per batch size?"
    setting: file3
    reference: 64
    batch_sizes: [64, 128]
    lrs: [0.1]
    quick: {{batch_sizes: [32, 64], lrs: [0.05, 10.0], val_size: 200}}
"""
TUNED_STUDY = "findings-lr-by-batch-quick"
CHOSEN = ("file1_overfits", "augmentation_helps")
FIGURES_DRAWN = ("batch_size", "test_curves", "gap")
ONLY = [*CHOSEN, "tuned_lr"]


def _findings(tmp, *args: str) -> subprocess.CompletedProcess:
    """`python -m cli.findings --quick` on two claims and the lr grid of SPEC, tracked in
    `tmp`, run from `tmp`."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.findings",
            "--quick",
            "--file",
            str(REPO / "experiments.yaml"),
            "--spec",
            str(tmp / "spec.yaml"),
            "--claims",
            ",".join(ONLY),
            "--tracking-uri",
            f"sqlite:///{tmp}/mlflow.db",
            "--artifact-root",
            str(tmp / "artifacts"),
            *args,
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _tuned_study(tmp) -> optuna.Study:
    return optuna.load_study(study_name=TUNED_STUDY, storage=f"sqlite:///{tmp}/runs/optuna.db")


def _runs(tmp) -> list:
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name("findings")
    return client.search_runs([exp.experiment_id]) if exp else []


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Two claims and the lr grid run once in quick mode: (folder, first run's process, its runs)."""
    tmp = tmp_path_factory.mktemp("findings")
    (tmp / "spec.yaml").write_text(SPEC)
    first = _findings(tmp)
    assert first.returncode == 0, first.stderr[-3000:]
    return tmp, first, _runs(tmp)


def test_runs_are_logged_once_per_setting_and_seed_with_their_tags(quick):
    tmp, first, runs = quick
    assert "trained 6, skipped 0 finished, 0 diverged" in first.stdout
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    seen = {(r.data.tags["finding_setting"], r.data.tags["seed"]) for r in runs}
    assert seen == {(s, str(seed)) for s in ("file1", "file3", "file3_no_aug") for seed in (1, 2)}
    for r in runs:
        t, p = r.data.tags, r.data.params
        assert t["findings_mode"] == "quick" and t["n_params"] == "8000" and t["cpu_count"]
        assert p["epochs"] == "1" and p["data.train_subset"] == "500"
        assert p["tracking.experiment"] == "findings" and len(t["config_hash"]) == 16
    assert len({r.data.tags["config_hash"] for r in runs}) == 6
    assert not (tmp / "mlruns").exists()


def test_a_rerun_trains_nothing_a_lost_run_is_trained_again_and_a_killed_one_ended(quick):
    tmp, _, runs = quick
    again = _findings(tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trained 0, skipped 6 finished" in again.stdout
    assert len(_runs(tmp)) == len(runs) == 6
    # the lr-by-batch grid: every point ended (two of them failed), so nothing runs again
    assert "nothing to do: every point of the grid has been tried" in again.stdout
    assert len(_tuned_study(tmp).trials) == 4

    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    lost = next(r for r in runs if r.data.tags["finding_setting"] == "file3")
    client.delete_run(lost.info.run_id)
    # attempts at it that never ended: one whose process was SIGKILLed here, one of a live
    # process here, one of another machine (the last two may still be training: left alone)
    owners = {
        "killed": (dead_worker(), pid_space()),
        "live": (f"{socket.gethostname()}:{os.getpid()}", pid_space()),
        "elsewhere": ("elsewhere:4242", "another machine"),
    }
    exp_id = client.get_experiment_by_name("findings").experiment_id
    ours = {k: v for k, v in lost.data.tags.items() if not k.startswith("mlflow.")}
    attempts = {
        who: client.create_run(
            exp_id,
            run_name=f"attempt-{who}",
            tags={**ours, "worker": w, "pid_space": space},
        ).info.run_id
        for who, (w, space) in owners.items()
    }
    resumed = _findings(tmp)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trained 1, skipped 5 finished" in resumed.stdout
    assert f"run 'attempt-killed' ended KILLED: its process ({owners['killed'][0]}) died" in (
        resumed.stdout
    )
    killed = client.get_run(attempts.pop("killed"))
    assert killed.info.status == "KILLED" and killed.data.tags["closed_by"] == "resume"
    for run_id in attempts.values():
        assert client.get_run(run_id).info.status == "RUNNING"
    for run_id in [killed.info.run_id, *attempts.values()]:  # the report test reads every run
        client.delete_run(run_id)
    now = _runs(tmp)
    assert len(now) == 6 and lost.info.run_id not in {r.info.run_id for r in now}
    assert lost.data.tags["config_hash"] in {r.data.tags["config_hash"] for r in now}
    # every run records its process, so that a later resume can tell whether it died
    assert all(r.data.tags["worker"] and r.data.tags["pid_space"] for r in now)


def test_report_has_banner_verdicts_figures_and_mlflows_numbers(quick):
    tmp, _, _ = quick
    # read back after the other test may have replaced a run: report-only, so nothing is trained
    r = _findings(tmp, "--report-only")
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp / "reports" / "findings_quick_partial.md").read_text()
    first = text.splitlines()[0]
    assert "QUICK MODE" in first and "not verdicts" in first
    assert "PARTIAL: only `file1_overfits`, `augmentation_helps`, `tuned_lr`" in text
    assert "`python -m cli.findings --quick --claims file1_overfits,augmentation_helps" in text
    assert not (tmp / "reports" / "findings_quick.md").exists()  # the whole report's place
    assert "INCOMPLETE" not in text  # every run and grid point has ended

    for i, cid in enumerate(CHOSEN, 1):
        heads = [ln for ln in text.splitlines() if ln.startswith(f"## Claim {i} `{cid}`: ")]
        assert len(heads) == 1
        assert any(v in heads[0] for v in ("reproduced", "contradicted", "inconclusive"))

    for name in FIGURES_DRAWN:
        png = tmp / "reports" / "findings_quick_partial" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert f"](findings_quick_partial/{name}.png)" in text

    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    gaps = {}
    for run in _runs(tmp):
        rid, m, tags = run.info.run_id, run.data.metrics, run.data.tags
        best_train = max(x.value for x in client.get_metric_history(rid, "train_acc"))
        gap = best_train - m["best_test_acc"]
        row = (
            f"| {tags['finding_setting']} | {tags['seed']} | {rid} | {m['best_test_acc']:.3f} "
            f"| {m['final_test_acc']:.3f} | {best_train:.3f} | {gap:.3f} | 1 |"
        )
        assert row in text, row
        if tags["finding_setting"] == "file1":
            gaps[int(tags["seed"])] = gap

    # claim 1's row, recomputed here from MLflow's numbers with scipy's t quantile
    vals = [gaps[1], gaps[2]]
    mean = sum(vals) / 2
    half = scipy_stats.t.ppf(0.975, 1) * abs(vals[0] - vals[1]) / 2  # sd/sqrt(2) = |a-b|/2
    row = (
        f"| file1 | gap | {99.59 - 99.27:.4g} | {mean:.3f} [{mean - half:.3f}, "
        f"{mean + half:.3f}] | 1: {gaps[1]:.3f}, 2: {gaps[2]:.3f} |"
    )
    assert row in text, row
    # and its deciding comparison says what two seeds can resolve (harness.stats is checked
    # against hand-computed values in test_confirm)
    sd = abs(vals[0] - vals[1]) / 2**0.5
    need = seeds_needed(mean, sd)
    wants = f"needs ~{need} seeds" if need else "needs more than 1000 seeds"
    cell = f"| {detectable_difference(sd, 2):.3f}; observed {mean:+.3f} {wants} |"
    assert any(ln.startswith("| train_above_test |") and cell in ln for ln in text.splitlines())
    assert "## Machine, versions, time" in text and "epoch_seconds" in text


def test_lr_tuned_per_batch_size_is_a_grid_study_read_back_into_the_report(quick):
    tmp, first, _ = quick
    assert "the lr-by-batch-size study" in first.stdout
    trials = _tuned_study(tmp).trials
    state = {(t.params["batch_size"], t.params["optimizer.lr"]): t.state.name for t in trials}
    assert state == {
        (32, 0.05): "COMPLETE",
        (64, 0.05): "COMPLETE",
        (32, 10.0): "FAIL",  # diverged: the grid ends without it, it is never compared
        (64, 10.0): "FAIL",
    }
    # one MLflow run per trial, in the study's own experiment on the findings' store
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name(TUNED_STUDY)
    runs = client.search_runs([exp.experiment_id], "tags.trial_number != ''")
    assert sorted(int(r.data.tags["trial_number"]) for r in runs) == [0, 0, 1, 1, 2, 3]
    assert all(r.data.params["data.train_subset"] == "500" for r in runs)

    # both batch sizes' best lr was the grid's smallest: each is tried again at half of it, in
    # a study of its own (quick mode extends one step), and the grid's points are not re-run
    edge = optuna.load_study(
        study_name=f"{TUNED_STUDY}-lr0.025", storage=f"sqlite:///{tmp}/runs/optuna.db"
    ).trials
    assert sorted(
        (t.params["batch_size"], t.params["optimizer.lr"], t.state.name) for t in edge
    ) == [
        (32, 0.025, "COMPLETE"),
        (64, 0.025, "COMPLETE"),
    ]
    assert len(_tuned_study(tmp).trials) == 4

    r = _findings(tmp, "--report-only")
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp / "reports" / "findings_quick_partial.md").read_text()
    head = next(ln for ln in text.splitlines() if ln.startswith("## With the learning rate"))
    assert any(v in head for v in ("reproduced", "contradicted", "inconclusive"))
    assert "| batch size | lr 0.025 | lr 0.05 | lr 10 |" in text
    assert f"(`{TUNED_STUDY}-lr0.025`; the grid's points were not re-run)" in text
    for b in (32, 64):  # the studies' own numbers, the best by validation in bold
        done = {
            t.params["optimizer.lr"]: t for t in [*trials, *edge] if t.params["batch_size"] == b
        }
        best = max((done[0.025], done[0.05]), key=lambda t: t.value)
        cells = [
            f"**{t.value:.2f}**" if t is best else f"{t.value:.2f}"
            for t in (done[0.025], done[0.05])
        ]
        assert f"| {b} | {cells[0]} | {cells[1]} | failed |" in text
        lr = best.params["optimizer.lr"]
        trial = f"{best.number} of `{TUNED_STUDY}-lr0.025`" if lr == 0.025 else best.number
        row = f"| {b} | {lr:g} | {best.value:.3f} | {best.user_attrs['test_acc']:.2f} | {trial} |"
        assert row in text
    assert "batch 32, lr 10: training diverged" in text  # why a point has no result
    assert "](findings_quick_partial/tuned_lr.png)" in text
    assert (tmp / "reports" / "findings_quick_partial" / "tuned_lr.png").read_bytes()[
        :4
    ] == b"\x89PNG"


def test_a_report_before_any_run_says_it_is_incomplete(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    r = _findings(tmp_path, "--report-only")
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp_path / "reports" / "findings_quick_partial.md").read_text()
    assert "INCOMPLETE: 0 of 6 planned runs and 0 of 4 points of the lr grid" in text
    heads = [ln for ln in text.splitlines() if ln.startswith(("## Claim", "## With the"))]
    assert len(heads) == 3 and all(h.endswith("**inconclusive**") for h in heads)
    assert not (tmp_path / "runs" / "optuna.db").exists()  # reading made no study database


def test_a_queued_retry_reads_queued_and_a_failed_point_is_not_counted_finished(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "runs").mkdir()
    study = optuna.create_study(
        study_name=TUNED_STUDY, storage=f"sqlite:///{tmp_path}/runs/optuna.db", direction="maximize"
    )
    dists = {
        "batch_size": optuna.distributions.CategoricalDistribution([32, 64]),
        "optimizer.lr": optuna.distributions.CategoricalDistribution([0.05, 10.0]),
    }

    def add(b, lr, state, value=None):
        params = {"batch_size": b, "optimizer.lr": lr}
        attrs = {"test_acc": 91.0} if value else {}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=dists, value=value, state=state, user_attrs=attrs
            )
        )

    add(32, 0.05, optuna.trial.TrialState.COMPLETE, 90.0)
    add(32, 10.0, optuna.trial.TrialState.FAIL)  # diverged: ended, no result
    add(64, 0.05, optuna.trial.TrialState.FAIL)  # interrupted, then queued again by hand:
    study.enqueue_trial({"batch_size": 64, "optimizer.lr": 0.05})  # WAITING, params not yet set
    r = _findings(tmp_path, "--report-only")
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp_path / "reports" / "findings_quick_partial.md").read_text()
    assert "0 of 6 planned runs and 1 of 4 points of the lr grid (1 failed) have finished" in text
    assert "| 32 | **90.00** | failed |" in text
    assert "| 64 | queued | — |" in text  # (64, 10.0) was never tried
    assert "Failed points (no result, not compared): batch 32, lr 10: no reason recorded." in text
    assert "The 1 finished trials took" in text
    assert "At the edge of the lrs tried: batch 32 (smallest, 0.05)." in text  # it may lie below
    assert "none has run yet" in text  # extensions wait for the grid to end


def _point(b: int, lr: float, val: float | None, test: float | None = None) -> Point:
    state = "COMPLETE" if val is not None else "PRUNED"
    return Point(b, lr, state, val, test, None, None)


def test_each_batch_size_takes_its_best_lr_by_validation_never_by_test():
    points = [
        _point(64, 0.05, 98.0, test=99.5),  # best test, worse validation: not chosen
        _point(64, 0.1, 98.4, test=99.0),
        _point(64, 0.2, None),  # pruned: never compared
        _point(128, 0.1, 98.6, test=98.0),
    ]
    best = best_by_validation(points)
    assert {b: p.lr for b, p in best.items()} == {64: 0.1, 128: 0.1}
    # reference 128 leads by 0.2: beyond a 0.1 margin, within a 0.3 one
    assert judge_batch_sizes(best, 128, 0.1)[1:2] == ("reproduced",)
    assert judge_batch_sizes(best, 128, 0.3)[1] == "inconclusive"
    assert judge_batch_sizes(best, 64, 0.1)[:2] == (128, "contradicted")
    assert judge_batch_sizes(best, 128, float("nan"))[1] == "inconclusive"  # no noise estimate
    assert (
        judge_batch_sizes({128: best[128]}, 128, 0.1)[1] == "inconclusive"
    )  # nothing to compare with


def test_a_best_lr_on_the_edge_of_what_was_tried_is_tried_beyond_it():
    grid = [_point(b, lr, v) for b, lr, v in [(32, 0.05, 99.1), (32, 0.1, 99.0), (64, 0.05, 98.9)]]
    grid += [_point(64, 0.1, 99.2), _point(128, 0.05, 99.0), _point(128, 0.1, 99.3)]
    grid += [_point(128, 0.2, 99.1)]  # interior: never extended
    assert next_edges(grid, (0.0125, 0.4)) == {0.025: [32], 0.2: [64]}
    assert next_edges(grid, (0.05, 0.1)) == {}  # no step left past the grid
    step = [*grid, _point(32, 0.025, 99.3)]
    assert next_edges(step, (0.0125, 0.4))[0.0125] == [32]  # still at the edge: one more
    step = [*grid, _point(32, 0.025, 98.7), _point(64, 0.2, 99.0)]
    assert next_edges(step, (0.0125, 0.4)) == {}  # both interior now
    queued = [*grid, Point(32, 0.025, "WAITING", None, None, None, None)]
    assert 0.025 not in next_edges(queued, (0.0125, 0.4))  # waits for its open point


def test_quick_and_full_runs_never_share_a_config_hash(experiments, tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    experiments = load(REPO / "experiments.yaml", spec_file=tmp_path / "spec.yaml")
    spec = experiments.section("findings")
    full, quick = (build_plan(spec, experiments, q, only=ONLY) for q in (False, True))
    full_hashes = {j.config_hash for j in full.jobs.values()}
    assert len(full_hashes) == 9 and len(quick.jobs) == 6
    assert full_hashes.isdisjoint(j.config_hash for j in quick.jobs.values())
    # where a run is tracked, shown or run does not change what it is
    cfg = experiments.resolve("s7_file3")
    moved = experiments.resolve(
        "s7_file3",
        parse_overrides(["tracking.uri=sqlite:///x.db", "device=cpu", "progress=false"]),
    )
    assert config_hash(cfg) == config_hash(moved)
    assert config_hash(cfg) != config_hash(experiments.resolve("s7_file3", {"seed": 2}))


def test_the_interval_rule():
    est = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977987 * est.sd / 5**0.5  # t(0.975, 4)
    assert (est.mean, est.lo, est.hi) == pytest.approx((3.0, 3.0 - half, 3.0 + half))
    assert verdict(est, ">", 0.0) == "reproduced"
    assert verdict(est, "<", 0.0) == "contradicted"
    assert verdict(est, ">", 3.0) == "inconclusive"
    assert verdict(mean_interval([5.0]), ">", 0.0) == "inconclusive"  # one seed: no interval
    assert verdict(mean_interval([8000.0, 8000.0]), "<=", 8000.0) == "reproduced"


def _record(seed: int, **values: float) -> RunRecord:
    return RunRecord(f"run{seed}", "h", seed, values, {}, {}, {}, 0, 0)


def test_a_claim_is_decided_by_its_comparisons_seed_by_seed():
    """Hand-made runs: 128 beats 64 at every seed but not 32 at seed 3; 128 has 8,000 params."""
    acc = {
        "file3": [99.4, 99.5, 99.3],
        "file3_bs64": [99.3, 99.4, 99.2],
        "file3_bs32": [99.3, 99.4, 99.4],
    }
    records = {
        (s, seed): _record(seed, best_test_acc=v, n_params=8000.0)
        for s, vals in acc.items()
        for seed, v in zip((1, 2, 3), vals, strict=True)
    }
    j = Judge(records, [1, 2, 3, 4])  # seed 4 was never run
    small = j.threshold("n_params", "file3", "<=", 8000)
    assert small.verdict == "reproduced" and small.comparisons[0].estimate.n == 3
    beats_64 = j.paired("best_test_acc", "file3", "file3_bs64", ">")
    assert beats_64.comparisons[0].per_seed == pytest.approx({1: 0.1, 2: 0.1, 3: 0.1})
    assert beats_64.verdict == "reproduced"  # (almost) the same difference at every seed
    best = j.best("best_test_acc", "file3", ["file3_bs64", "file3_bs32"])
    assert [c.verdict for c in best.comparisons] == ["reproduced", "inconclusive"]
    assert best.verdict == "inconclusive" and best.highest_mean == "file3"
    r = j.claim("128 wins.", list(acc), ["best_test_acc"], {"b": best, "s": small})
    assert r.verdict == "inconclusive" and [p.name for p in r.parts] == ["b", "s"]
    assert r.missing == [(s, 4) for s in acc]
    assert r.rows[0].estimate.mean == pytest.approx(99.4)


def test_every_claim_and_figure_names_only_what_exists():
    """A claim compares only settings it lists (so they are planned and shown), with known
    metrics and ops; a mistake there is raised when the plan is built, before any training."""
    for fn in CLAIMS:
        r = fn(Judge({}, [1, 2]))  # what build_plan does to learn each claim's settings
        assert set(r.settings) <= set(SETTINGS), fn.__name__
        assert r.verdict == "inconclusive" and len(r.missing) == 2 * len(r.settings)
    for f in FIGURES.values():
        assert set(f.settings) <= set(SETTINGS) and f.kind in ("interval", "curves")
    j = Judge({}, [1])
    with pytest.raises(ValueError, match="unknown op '=>'"):
        j.threshold("gap", "file1", "=>", 0)
    with pytest.raises(ValueError, match="unknown metric 'gapp'"):
        j.paired("gapp", "file3", "file1", ">")
    with pytest.raises(
        ValueError, match=r"unknown setting \(list it in the claim's settings\) 'file1'"
    ):
        j.claim("x", ["file3"], ["gap"], {"p": j.paired("gap", "file3", "file1", ">")})


def test_tuned_lr_with_no_study_in_the_spec_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "spec.yaml").write_text(SPEC[: SPEC.index("  tuned_lr:")])
    argv = ["--file", str(REPO / "experiments.yaml"), "--spec", str(tmp_path / "spec.yaml")]
    argv += ["--claims", "tuned_lr", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--claims names tuned_lr, but the spec has no findings.tuned_lr" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "m.db").exists()


BAD_SPECS = [
    (("findngs:\n", "findings:\n"), "unknown key 'findngs'; did you mean 'findings'?"),
    (("sweep: {}\nfindings:\n", "findings:\n"), "unknown key 'sweep'; known keys: findings"),
    (
        ("  seedz: [1, 2, 3]\n", "  seeds: [1, 2, 3]\n"),
        "unknown key 'findings.seedz'; did you mean 'findings.seeds'?",
    ),
    (
        ("setting: file3x", "setting: file3"),
        "key 'findings.tuned_lr.setting' = 'file3x' is invalid: unknown setting; "
        "did you mean 'file3'?",
    ),
    (
        ("[progres=false,", "[progress=false,"),
        "(overrides of setting 'file1'): unknown key 'progres'; did you mean 'progress'?",
    ),
    (
        ("  claims: {file1_overfits: {}}\n  tuned_lr:\n", "  tuned_lr:\n"),
        "key 'findings.claims' is no longer read: the settings, claims and figures are Python "
        "now, in findings/claims.py",
    ),
    (
        ("    refrence: 64\n", "    reference: 64\n"),
        "unknown key 'findings.tuned_lr.refrence'; did you mean 'findings.tuned_lr.reference'?",
    ),
]


@pytest.mark.parametrize("edit,message", BAD_SPECS)
def test_a_bad_spec_is_one_line_and_exit_2(edit, message, tmp_path, capsys):
    new, old = edit
    assert old in SPEC
    (tmp_path / "spec.yaml").write_text(SPEC.replace(old, new))
    args = ["--file", str(REPO / "experiments.yaml"), "--spec", str(tmp_path / "spec.yaml")]
    assert main([*args, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'spec.yaml'}") and len(err.splitlines()) == 1
    assert message in err, err
    assert not (tmp_path / "mlflow.db").exists()  # nothing ran


def test_an_unknown_claim_is_one_line_and_exit_2(tmp_path, capsys):
    argv = ["--claims", "file1_overfits,tuned_lrr", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: command line: --claims 'tuned_lrr' is invalid: unknown claim")
    assert "tuned_lr" in err and len(err.splitlines()) == 1 and not (tmp_path / "m.db").exists()


def test_a_mistyped_flag_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--report-onyl"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert (
        err == "error: python -m cli.findings: unrecognized arguments: --report-onyl (see --help)"
    )


def test_the_shipped_spec_loads_and_plans_every_claim(experiments):
    spec = experiments.section("findings")
    plan = build_plan(spec, experiments)
    assert len(plan.claims) == 6 and plan.tuned
    assert len(plan.unique_jobs()) == 9 * 5  # file3 doubles as batch 128
    assert {plan.jobs[(s, 1)].cfg.batch_size for s in BATCH_SIZES} == {32, 64, 128, 256, 512}
    grid = study_spec(plan, experiments)  # item 3: chosen on the sweep's validation hold-out
    assert grid.n_trials == 25 and grid.sampler.name == "grid" and not grid.enqueue_baseline
    assert grid.objective.metric == "val_acc" and grid.val_size == 10000
