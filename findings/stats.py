"""Means with 95% t-intervals over seeds, and the rule that turns an interval into a verdict.

A verdict compares an interval with the claimed side of a threshold: *reproduced* when the whole
interval lies on the claimed side, *contradicted* when the whole interval lies on the other side,
*inconclusive* otherwise (and always with fewer than two seeds, where there is no interval).
"""

import math
import statistics
from dataclasses import dataclass

from scipy import stats as scipy_stats

LEVEL = 0.95
VERDICTS = ("reproduced", "contradicted", "inconclusive")


@dataclass(frozen=True)
class Estimate:
    """Mean of `values` with its two-sided t-interval at `LEVEL` (NaN bounds below two values)."""

    values: tuple[float, ...]
    mean: float
    sd: float
    lo: float
    hi: float

    @property
    def n(self) -> int:
        return len(self.values)


def t_quantile(df: int, level: float = LEVEL) -> float:
    """The two-sided Student t quantile, e.g. 2.776 for df 4 at 95%."""
    return float(scipy_stats.t.ppf(0.5 + level / 2, df))


def estimate(values: list[float] | tuple[float, ...]) -> Estimate:
    """Mean, sample standard deviation and t-interval `mean +- t(n-1) * sd / sqrt(n)`.

    Args:
        values: one number per seed.
    Returns:
        The estimate; with no values everything is NaN, with one value only the mean is set.
    """
    vals = tuple(float(v) for v in values)
    nan = float("nan")
    if not vals:
        return Estimate(vals, nan, nan, nan, nan)
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return Estimate(vals, mean, nan, nan, nan)
    sd = statistics.stdev(vals)
    half = t_quantile(len(vals) - 1) * sd / math.sqrt(len(vals))
    return Estimate(vals, mean, sd, mean - half, mean + half)


def verdict(est: Estimate, op: str, value: float) -> str:
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
