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
from collections.abc import Callable
from dataclasses import dataclass, replace

from findings.store import Records
from harness.stats import Interval, detectable_difference, mean_interval, seeds_needed

# Per-run numbers a claim can be about; all but n_params are accuracies in percent.
METRIC_MEANING = {
    "best_test_acc": "best test accuracy over the epochs (%)",
    "final_test_acc": "test accuracy after the last epoch (%)",
    "best_train_acc": "best running train accuracy over the epochs (%, train mode, as S7)",
    "gap": "best train accuracy minus best test accuracy (percentage points)",
    "n_params": "trainable parameters of the network",
}
OPS = (">", ">=", "<", "<=")


def _known(what: str, value: str, known) -> None:
    """A claim function's mistake (an unknown metric, op or setting) is raised when the plan
    is built, which calls every claim once without runs: before anything is trained."""
    if value not in known:
        raise ValueError(f"findings/claims.py: unknown {what} {value!r}; known: {', '.join(known)}")


def _comparable(metric: str, op: str) -> None:
    _known("metric", metric, METRIC_MEANING)
    _known("op", op, OPS)


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
    """One named part of a claim: one comparison, or one per other setting for `best`."""

    name: str
    kind: str  # threshold, paired (one setting against another) or best (against each of several)
    metric: str
    comparisons: list[Comparison]
    verdict: str
    highest_mean: str | None = None  # for `best`: the setting with the highest mean
    settings: tuple[str, ...] = ()  # the settings it reads


@dataclass(frozen=True)
class ClaimResult:
    """A claim's rows, parts and verdict, and the (setting, seed) runs it lacked."""

    claim_id: str
    statement: str
    note: str
    reported: dict[str, dict[str, float]]  # S7's own numbers, per setting
    settings: list[str]
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


def reported_value(
    reported: dict[str, dict[str, float]], setting: str, metric: str
) -> float | None:
    """S7's number; its gap is derived from its best train and best test when not given."""
    given = reported.get(setting, {})
    if metric in given:
        return given[metric]
    if metric == "gap" and {"best_train_acc", "best_test_acc"} <= set(given):
        return given["best_train_acc"] - given["best_test_acc"]
    return None


@dataclass(frozen=True)
class Judge:
    """The finished runs at a claim's seeds, and the comparisons a claim is decided by."""

    records: Records
    seeds: list[int]

    def values(self, setting: str, metric: str) -> dict[int, float]:
        return per_seed(self.records, setting, self.seeds, metric)

    def threshold(self, metric: str, setting: str, op: str, value: float) -> Part:
        """The mean of `metric` on `setting` `op` `value`."""
        _comparable(metric, op)
        vals = self.values(setting, metric)
        est = mean_interval(list(vals.values()))
        c = Comparison(
            f"mean {metric}({setting}) {op} {value:g}",
            vals,
            est,
            op,
            value,
            verdict(est, op, value),
        )
        return Part("", "threshold", metric, [c], c.verdict, settings=(setting,))

    def _paired(self, metric: str, a: str, b: str, op: str) -> Comparison:
        _comparable(metric, op)
        va, vb = self.values(a, metric), self.values(b, metric)
        diffs = {s: va[s] - vb[s] for s in self.seeds if s in va and s in vb}
        est = mean_interval(list(diffs.values()))
        return Comparison(
            f"{metric}({a}) - {metric}({b}) {op} 0", diffs, est, op, 0.0, verdict(est, op, 0.0)
        )

    def paired(self, metric: str, setting: str, other: str, op: str) -> Part:
        """`metric(setting) - metric(other)` `op` 0, the differences taken seed by seed."""
        c = self._paired(metric, setting, other, op)
        return Part("", "paired", metric, [c], c.verdict, settings=(setting, other))

    def best(self, metric: str, setting: str, over: list[str]) -> Part:
        """`setting` has the highest `metric`: its paired difference to each of `over` > 0."""
        comps = [self._paired(metric, setting, o, ">") for o in over]
        means = {
            s: mean_interval(list(self.values(s, metric).values())).mean for s in [setting, *over]
        }
        known = {s: m for s, m in means.items() if not math.isnan(m)}
        top = max(known, key=known.get) if known else None
        verdict_ = combine([c.verdict for c in comps])
        return Part("", "best", metric, comps, verdict_, top, (setting, *over))

    def claim(
        self,
        statement: str,
        settings: list[str],
        metrics: list[str],
        parts: dict[str, Part],
        reported: dict[str, dict[str, float]] | None = None,
        note: str = "",
    ) -> ClaimResult:
        """A claim's result: a row per setting and metric, its named parts and its verdict.
        Every setting a part reads or `reported` names must be one of `settings` (those are
        the ones planned and shown)."""
        reported = reported or {}
        for m in metrics:
            _known("metric", m, METRIC_MEANING)
        for s in [*reported, *(s for p in parts.values() for s in p.settings)]:
            _known("setting (list it in the claim's settings)", s, settings)
        rows = [
            Row(
                s,
                m,
                v := self.values(s, m),
                mean_interval(list(v.values())),
                reported_value(reported, s, m),
            )
            for s in settings
            for m in metrics
        ]
        named = [replace(p, name=name) for name, p in parts.items()]
        missing = [
            (s, seed) for s in settings for seed in self.seeds if (s, seed) not in self.records
        ]
        verdict_ = combine([p.verdict for p in named])
        return ClaimResult(
            "", statement, note, reported, settings, self.seeds, rows, named, verdict_, missing
        )


ClaimFunction = Callable[[Judge], ClaimResult]


def evaluate_claims(
    claims: list[ClaimFunction], records: Records, seeds: list[int]
) -> list[ClaimResult]:
    """Judge every claim on the records read from MLflow, at `seeds`; the id is the function's name."""
    judge = Judge(records, seeds)
    return [replace(fn(judge), claim_id=fn.__name__) for fn in claims]
