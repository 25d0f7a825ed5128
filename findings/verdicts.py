"""Each claim judged from the logged runs: per-setting estimates, the deciding comparisons, a verdict.

Comparisons between settings are paired by seed: seed i of both settings starts from the same
initial weights and the same shuffling generator, so the per-seed difference removes much of the
seed-to-seed spread that two independent means would carry.

A verdict compares an interval with the claimed side of a threshold: *reproduced* when the whole
interval lies on the claimed side, *contradicted* when the whole interval lies on the other side,
*inconclusive* otherwise (and always with fewer than two seeds, where there is no interval). Every
comparison also says what its seeds can resolve: the smallest true difference a two-sided paired
t-test at 95% detects with 80% power, from the observed per-seed spread, and about how many seeds
the observed difference would need (`harness.stats`).
"""

import math
from dataclasses import dataclass

from findings.plan import Plan
from findings.spec import Check, Claim
from findings.store import Records
from harness.stats import Interval, detectable_difference, mean_interval, seeds_needed


@dataclass(frozen=True)
class Row:
    """One metric of one setting over the claim's seeds, next to the number S7 reported, if any."""

    setting: str
    metric: str
    per_seed: dict[int, float]
    estimate: Interval
    reported: float | None  # the number S7 reported, if any


@dataclass(frozen=True)
class Comparison:
    """One interval test: the per-seed values (or paired differences) and what they decide."""

    description: str
    per_seed: dict[int, float]
    estimate: Interval
    op: str
    value: float
    verdict: str

    @property
    def observed(self) -> float:
        """How far the mean lies from the threshold (the paired mean difference for pairs)."""
        return self.estimate.mean - self.value

    @property
    def resolution(self) -> float:
        """The smallest true difference these seeds detect (95% two-sided, 80% power)."""
        return detectable_difference(self.estimate.sd, self.estimate.n)

    @property
    def seeds_needed(self) -> int | None:
        """About how many seeds would detect the observed difference (None: not within reach)."""
        return seeds_needed(self.observed, self.estimate.sd)


@dataclass(frozen=True)
class Part:
    """One entry of a claim's `decide`: one comparison, or one per other setting for `best`."""

    name: str
    check: Check
    comparisons: list[Comparison]
    verdict: str
    highest_mean: str | None = None  # for `best`: the setting with the highest mean


@dataclass(frozen=True)
class ClaimResult:
    """A claim's rows, parts and verdict, and the (setting, seed) runs it lacked."""

    claim_id: str
    claim: Claim
    seeds: list[int]
    rows: list[Row]
    parts: list[Part]
    verdict: str
    missing: list[tuple[str, int]]


def verdict(est: Interval, op: str, value: float) -> str:
    """Judge the claim `mean op value` by the interval of `est` (see the module docstring)."""
    lo, hi = est.lo, est.hi
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    claimed, other = {
        ">": (lo > value, hi <= value),
        ">=": (lo >= value, hi < value),
        "<": (hi < value, lo >= value),
        "<=": (hi <= value, lo > value),
    }[op]
    return "reproduced" if claimed else "contradicted" if other else "inconclusive"


def combine(verdicts: list[str]) -> str:
    """All reproduced: reproduced; any contradicted: contradicted; else inconclusive."""
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v == "contradicted" for v in verdicts):
        return "contradicted"
    return "inconclusive"


def per_seed(records: Records, setting: str, seeds: list[int], metric: str) -> dict[int, float]:
    """`{seed: value}` of `metric` for the seeds of `setting` that have a finished run."""
    return {s: records[(setting, s)].values[metric] for s in seeds if (setting, s) in records}


def reported_value(claim: Claim, setting: str, metric: str) -> float | None:
    """S7's number; its gap is derived from its best train and best test when not given."""
    given = claim.reported.get(setting, {})
    if metric in given:
        return given[metric]
    if metric == "gap" and {"best_train_acc", "best_test_acc"} <= set(given):
        return given["best_train_acc"] - given["best_test_acc"]
    return None


def _paired(records: Records, seeds: list[int], metric: str, a: str, b: str, op: str) -> Comparison:
    va, vb = per_seed(records, a, seeds, metric), per_seed(records, b, seeds, metric)
    diffs = {s: va[s] - vb[s] for s in seeds if s in va and s in vb}
    est = mean_interval(list(diffs.values()))
    return Comparison(
        f"{metric}({a}) - {metric}({b}) {op} 0", diffs, est, op, 0.0, verdict(est, op, 0.0)
    )


def decide_part(check: Check, name: str, records: Records, seeds: list[int]) -> Part:
    """Decide one `decide` entry of a claim on `seeds`."""
    if check.kind == "threshold":
        vals = per_seed(records, check.setting, seeds, check.metric)
        est = mean_interval(list(vals.values()))
        c = Comparison(
            f"mean {check.metric}({check.setting}) {check.op} {check.value:g}",
            vals,
            est,
            check.op,
            check.value,
            verdict(est, check.op, check.value),
        )
        return Part(name, check, [c], c.verdict)
    if check.kind == "paired":
        c = _paired(records, seeds, check.metric, check.setting, check.other, check.op)
        return Part(name, check, [c], c.verdict)
    comps = [_paired(records, seeds, check.metric, check.setting, o, ">") for o in check.over]
    means = {
        s: mean_interval(list(per_seed(records, s, seeds, check.metric).values())).mean
        for s in [check.setting, *check.over]
    }
    known = {s: m for s, m in means.items() if not math.isnan(m)}
    top = max(known, key=known.get) if known else None
    return Part(name, check, comps, combine([c.verdict for c in comps]), top)


def evaluate_claims(plan: Plan, records: Records) -> list[ClaimResult]:
    """Judge every claim of the plan's spec on the records read from MLflow.

    Args:
        plan: the plan (its spec, and the seeds each claim is judged on).
        records: `{(setting, seed): RunRecord}` from `findings.store.collect`.
    Returns:
        One `ClaimResult` per claim, in the spec's order.
    """
    out = []
    for cid, claim in plan.spec.claims.items():
        seeds = plan.seeds(claim)
        rows = [
            Row(
                s,
                m,
                vals := per_seed(records, s, seeds, m),
                mean_interval(list(vals.values())),
                reported_value(claim, s, m),
            )
            for s in claim.settings
            for m in claim.metrics
        ]
        parts = [decide_part(t, name, records, seeds) for name, t in claim.decide.items()]
        missing = [(s, seed) for s in claim.settings for seed in seeds if (s, seed) not in records]
        out.append(
            ClaimResult(
                cid, claim, seeds, rows, parts, combine([p.verdict for p in parts]), missing
            )
        )
    return out
