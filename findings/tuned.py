"""The view S7 could not take: every batch size with its own tuned learning rate.

One grid study (batch size x lr) at a setting's other values, run by the sweep exactly as
`make sweep` runs a study: the `sweep:` section's storage, validation hold-out and objective, one
MLflow experiment named after the study with a run per trial. Each batch size's lr is chosen on
validation accuracy; test accuracy is only reported. The tuned batch sizes are then compared
with a margin for run-to-run noise (see `judge_batch_sizes`).
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from findings.claims import SETTINGS
from findings.plan import Plan
from findings.spec import TunedLr, setting_overrides
from findings.store import Records
from harness.config import Experiments, deep_merge
from harness.stats import mean_interval
from harness.urls import masked
from sweep.grid import params_of
from sweep.spec import SweepSpec
from sweep.storage import open_storage, storage_url
from sweep.study import run_sweep

NOISE_Z = 2.0  # margin = NOISE_Z * sqrt(2) * sd: ~95% for the difference of two single runs


# A point's state: an Optuna TrialState name, or "missing" when the study has no trial for it.
OPEN_STATES = ("missing", "RUNNING", "WAITING")  # still to be run
FINISHED_STATES = ("COMPLETE", "PRUNED")  # with a result, as sweep.loop.FINISHED (FAIL has none)


@dataclass(frozen=True)
class Point:
    """One grid point as the study holds it (state `missing` when it has no trial yet)."""

    batch_size: int
    lr: float
    state: str
    val_acc: float | None  # the study's objective value (COMPLETE trials only)
    test_acc: float | None  # reported, never used to choose
    trial: int | None
    run_id: str | None
    seconds: float = 0.0  # the trial's wall time, start to end (0 while it has not ended)
    fail_reason: str = ""  # why a FAIL trial failed, as the sweep recorded it (e.g. diverged)
    study: str = ""  # the study holding it: the grid's or an extension's


@dataclass(frozen=True)
class TunedResult:
    """The grid, each batch size's best lr (by validation) and the verdict on `reference`."""

    spec: TunedLr
    study_name: str
    extensions: list[str]  # the extension studies' names, in the order they ran
    extend: int  # the most steps past the grid an extension may go
    grid_lrs: list[float]  # the grid's own lrs (the extensions' come on top)
    storage: str  # masked
    objective: str  # e.g. "final val_acc"
    val_size: int
    points: list[Point]
    best: dict[int, Point]  # batch size -> its best COMPLETE point by validation accuracy
    noise_sd: float
    noise_n: int
    margin: float
    winner: int | None
    verdict: str
    reason: str

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({p.batch_size for p in self.points})

    @property
    def lrs(self) -> list[float]:
        return sorted({p.lr for p in self.points})

    def point(self, batch_size: int, lr: float) -> Point | None:
        """The point at (batch size, lr), or None where it was never planned."""
        return next((p for p in self.points if (p.batch_size, p.lr) == (batch_size, lr)), None)


def grid(spec: TunedLr, quick: bool) -> tuple[list[int], list[float], int]:
    """The batch sizes and learning rates of the study in this mode, and how many steps past
    the grid's lrs an extension may go."""
    q = spec.quick if quick else spec
    return list(q.batch_sizes), list(q.lrs), q.extend


def study_spec(
    plan: Plan, experiments: Experiments, edge: tuple[float, list[int]] | None = None
) -> SweepSpec:
    """The `sweep:` section (storage, hold-out, objective, heartbeats) turned into the grid study,
    or, with `edge` (an lr and the batch sizes to try it at), into that extension's study."""
    t = plan.spec.tuned_lr
    assert t is not None
    sizes, lrs, _ = grid(t, plan.quick)
    grid_name = name = t.study_name + ("-quick" if plan.quick else "")
    if edge is not None:
        name, lrs, sizes = f"{name}-lr{edge[0]:g}", [edge[0]], edge[1]
    data: dict[str, Any] = experiments.section("sweep").model_dump()
    data |= {
        "study_name": name,
        "workers": 1,
        "base_experiment": SETTINGS[t.setting].experiment,
        "n_trials": len(sizes) * len(lrs),
        "sampler": {"name": "grid", "seed": 0, "args": {}},
        "pruners": [p.model_dump() for p in t.pruners],
        "enqueue_baseline": False,
        "enqueue": [],
        "space": {
            "batch_size": {"type": "categorical", "choices": sizes},
            "optimizer.lr": {"type": "categorical", "choices": lrs},
        },
        "show_epochs": False,
        "evaluate_test": True,
        "log_models": False,
        "mlflow_experiment": grid_name,  # the grid's and its extensions' runs side by side
        # each batch size picks its own lr here; the findings judge seeds themselves
        "confirm": {"k": 0},
    }
    if plan.quick:
        data["val_size"] = t.quick.val_size
    return SweepSpec.model_validate(data)


def fixed_overrides(plan: Plan, spec: SweepSpec) -> dict[str, Any]:
    """Every trial's overrides: the setting's (and quick's), tracked on the findings' store in the
    study's own MLflow experiment."""
    t = plan.spec.tuned_lr
    assert t is not None
    where = plan.tracking_overrides(spec.mlflow_experiment or spec.study_name)
    return deep_merge(setting_overrides(plan.spec, t.setting, plan.quick), where)


def edge_side(points: list[Point], best: Point) -> str | None:
    """Where `best` sits among the lrs its batch size has tried: `smallest` or `largest` (its
    optimum may lie beyond), or None where it is interior."""
    tried = [q.lr for q in points if q.batch_size == best.batch_size]
    return "smallest" if best.lr == min(tried) else "largest" if best.lr == max(tried) else None


def next_edges(points: list[Point], limits: tuple[float, float]) -> dict[float, list[int]]:
    """The next extension step: `{lr: [batch sizes]}` for each batch size whose best completed
    lr is the smallest (largest) it has tried, at half (twice) that lr, within `limits`.
    A batch size with a point still to run waits for it."""
    step: dict[float, list[int]] = {}
    for b, p in sorted(best_by_validation(points).items()):
        if any(q.state in OPEN_STATES for q in points if q.batch_size == b):
            continue
        side = edge_side(points, p)
        if side == "smallest" and p.lr / 2 >= limits[0] * (1 - 1e-9):
            step.setdefault(p.lr / 2, []).append(b)
        elif side == "largest" and p.lr * 2 <= limits[1] * (1 + 1e-9):
            step.setdefault(p.lr * 2, []).append(b)
    return step


def studies(
    plan: Plan, experiments: Experiments, train: bool
) -> tuple[list[SweepSpec], list[Point]]:
    """The grid study and its extensions, in order, with every point they hold.

    An extension tries a batch size whose best lr sits on the edge of what it has tried at half
    (or twice) that lr, in a study of its own (`<name>-lr<lr>`), so the grid's points are never
    run again; steps repeat until every best lr is interior or `extend` steps past the grid.
    With `train`, each study is run (or resumed) until its points have ended before the next
    step is decided; without, reading stops at the first step with a point still to run.
    Returns:
        (the studies, the grid's first, every point).
    """
    t = plan.spec.tuned_lr
    assert t is not None
    _, lrs, steps = grid(t, plan.quick)
    limits = (min(lrs) / 2**steps, max(lrs) * 2**steps)
    specs, points, edge = [], [], None
    while True:
        spec = study_spec(plan, experiments, edge)
        if train:
            run_sweep(experiments, spec, fixed_overrides(plan, spec))
        new = read_points(spec)
        specs.append(spec)
        points += new
        if any(p.state in OPEN_STATES for p in new):
            return specs, points
        edges = next_edges(points, limits)
        if not edges:
            return specs, points
        edge = min(edges.items())  # one lr at a time, the lowest first


def run(plan: Plan, experiments: Experiments) -> None:
    """Run (or resume) the grid study and its extensions until every point has ended."""
    studies(plan, experiments, train=True)


def _load(spec: SweepSpec) -> optuna.Study | None:
    url = storage_url(spec)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None  # never created: do not create an empty database just to read it
    try:
        return optuna.load_study(study_name=spec.study_name, storage=open_storage(spec))
    except KeyError:
        return None


def _seconds(t: optuna.trial.FrozenTrial | None) -> float:
    if t is None or t.datetime_start is None or t.datetime_complete is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds()


def read_points(spec: SweepSpec) -> list[Point]:
    """Every grid point with what the study holds for it (its latest trial, if several)."""
    sizes = spec.space["batch_size"].choices or []
    lrs = spec.space["optimizer.lr"].choices or []
    study = _load(spec)
    trials = study.get_trials(deepcopy=False) if study else []
    latest = {}
    for t in trials:
        params = params_of(t)
        if "batch_size" in params and "optimizer.lr" in params:
            key = (params["batch_size"], float(params["optimizer.lr"]))
            if t.state != optuna.trial.TrialState.FAIL or key not in latest:
                latest[key] = t  # a retry (queued, running or ended) wins over an earlier failure
    points = []
    for b in sizes:
        for lr in lrs:
            t = latest.get((b, float(lr)))
            complete = t is not None and t.state == optuna.trial.TrialState.COMPLETE
            points.append(
                Point(
                    batch_size=b,
                    lr=float(lr),
                    state=t.state.name if t else "missing",
                    val_acc=float(t.value) if complete else None,
                    test_acc=t.user_attrs.get("test_acc") if complete else None,
                    trial=t.number if t else None,
                    run_id=t.user_attrs.get("mlflow_run_id") if t else None,
                    seconds=_seconds(t),
                    fail_reason=t.user_attrs.get("fail_reason", "") if t else "",
                    study=spec.study_name,
                )
            )
    return points


def best_by_validation(points: list[Point]) -> dict[int, Point]:
    """Each batch size's completed point with the highest validation accuracy (test accuracy
    plays no part; a tie keeps the smaller lr)."""
    best: dict[int, Point] = {}
    for p in sorted(points, key=lambda p: p.lr):
        if p.val_acc is not None and (
            p.batch_size not in best or p.val_acc > (best[p.batch_size].val_acc or -math.inf)
        ):
            best[p.batch_size] = p
    return best


def judge_batch_sizes(
    best: dict[int, Point], reference: int, margin: float
) -> tuple[int | None, str, str]:
    """The verdict on "`reference` is the best batch size" with each batch size's lr tuned.

    Reproduced: `reference` has the highest tuned validation accuracy and leads the runner-up by
    more than `margin`. Contradicted: another batch size beats it by more than `margin`.
    Inconclusive: otherwise (within the noise, a batch size without a completed point, or no
    noise estimate).
    Returns:
        (the batch size with the highest tuned accuracy or None, verdict, one-line reason).
    """
    if len(best) < 2 or reference not in best:
        return None, "inconclusive", "fewer than two batch sizes (or not the reference) completed"
    ranked = sorted(best.values(), key=lambda p: p.val_acc or -math.inf, reverse=True)
    top, ref = ranked[0], best[reference]
    if math.isnan(margin):
        return top.batch_size, "inconclusive", "no noise estimate (fewer than two seeds)"
    if top.batch_size == reference:
        lead = (ref.val_acc or 0.0) - (ranked[1].val_acc or 0.0)
        if lead > margin:
            return reference, "reproduced", f"leads by {lead:.3f} > margin {margin:.3f}"
        return reference, "inconclusive", f"leads by only {lead:.3f} <= margin {margin:.3f}"
    gap = (top.val_acc or 0.0) - (ref.val_acc or 0.0)
    if gap > margin:
        return top.batch_size, "contradicted", f"{top.batch_size} leads by {gap:.3f} > {margin:.3f}"
    return top.batch_size, "inconclusive", f"{top.batch_size} leads by only {gap:.3f}"


def read(plan: Plan, experiments: Experiments, records: Records) -> TunedResult | None:
    """The study read back and judged, or None when the spec has no `tuned_lr`.

    Args:
        plan, experiments: as for the claims.
        records: the claims' runs, for the noise estimate (`noise_setting`'s seeds).
    """
    t = plan.spec.tuned_lr
    if t is None or not plan.tuned:
        return None
    specs, points = studies(plan, experiments, train=False)
    spec, (_, grid_lrs, extend) = specs[0], grid(t, plan.quick)
    best = best_by_validation(points)
    noise = mean_interval(
        [
            r.values["final_test_acc"]
            for (s, _), r in sorted(records.items())
            if s == t.noise_setting
        ]
    )
    margin = NOISE_Z * math.sqrt(2.0) * noise.sd if noise.n >= 2 else math.nan
    winner, verdict, reason = judge_batch_sizes(best, t.reference, margin)
    return TunedResult(
        spec=t,
        study_name=spec.study_name,
        extensions=[s.study_name for s in specs[1:]],
        extend=extend,
        grid_lrs=[float(lr) for lr in grid_lrs],
        storage=masked(storage_url(spec)),
        objective=f"{spec.objective.reduce} {spec.objective.metric}",
        val_size=spec.val_size,
        points=points,
        best=best,
        noise_sd=noise.sd,
        noise_n=noise.n,
        margin=margin,
        winner=winner,
        verdict=verdict,
        reason=reason,
    )
