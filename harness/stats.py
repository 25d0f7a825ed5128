"""Statistics over seeds: a mean with its 95% t-interval, a paired difference with its interval,
and what a paired experiment can resolve.

A claim about accuracy is a mean and an interval over seeds, never one run. Two configs trained
at the same seed share initial weights and data order, so their per-seed difference cancels much
of the seed-to-seed spread: compare them paired. The resolution is that of a two-sided paired
t-test at 95% with 80% power, computed from the noncentral t distribution (the normal
approximation is optimistic at a handful of seeds). The core's: imports neither optuna nor mlflow.
"""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as scipy_stats

LEVEL = 0.95  # two-sided confidence level (test at alpha = 1 - LEVEL)
POWER = 0.80  # the chance to detect a true difference of the detectable size
MOST_SEEDS = (
    1000  # `seeds_needed` gives up beyond this: "more than 1000 seeds" settles nothing here
)


@dataclass(frozen=True)
class Interval:
    """The mean of `values` with its two-sided t-interval [lo, hi] at `level` (NaN bounds and
    sd below two values)."""

    values: tuple[float, ...]
    mean: float
    sd: float
    lo: float
    hi: float
    level: float = LEVEL

    @property
    def n(self) -> int:
        return len(self.values)

    def side(self, value: float = 0.0) -> str:
        """`above`, `below` or `straddles` `value` (`straddles` too where there is no interval)."""
        if self.lo > value:
            return "above"
        if self.hi < value:
            return "below"
        return "straddles"


def t_quantile(df: int, level: float = LEVEL) -> float:
    """The two-sided Student t quantile, e.g. 2.776 for df 4 at 95%."""
    return float(scipy_stats.t.ppf(0.5 + level / 2, df))


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean, sample standard deviation and t-interval `mean +- t(n-1) * sd / sqrt(n)`.

    Args:
        values: one number per seed.
        level: the confidence level.
    Returns:
        The interval; with no values, or a value that is not finite, everything is NaN; with
        one value only the mean is set.
    """
    vals = tuple(float(v) for v in values)
    nan = float("nan")
    if not vals or not all(math.isfinite(v) for v in vals):  # e.g. a run that diverged
        return Interval(vals, nan, nan, nan, nan, level)
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return Interval(vals, mean, nan, nan, nan, level)
    sd = statistics.stdev(vals)
    half = t_quantile(len(vals) - 1, level) * sd / math.sqrt(len(vals))
    return Interval(vals, mean, sd, mean - half, mean + half, level)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of `a[i] - b[i]` with its t-interval: `a` and `b` measured at the same seeds.

    Args:
        a, b: one number per seed each, in the same seed order.
        level: the confidence level.
    Returns:
        The interval of the per-seed differences (`values` holds them).
    Raises:
        ValueError: `a` and `b` differ in length (they cannot be paired).
    """
    if len(a) != len(b):
        raise ValueError(f"cannot pair {len(a)} values with {len(b)}")
    return mean_interval([float(x) - float(y) for x, y in zip(a, b, strict=True)], level)


def _power(effect: float, n: int, level: float) -> float:
    """Power of the two-sided paired t-test with `n` pairs for a true mean difference of
    `effect` standard deviations of the differences."""
    df = n - 1
    crit = scipy_stats.t.ppf(0.5 + level / 2, df)
    nc = effect * math.sqrt(n)
    wrong_side = float(scipy_stats.nct.cdf(-crit, df, nc))
    # scipy returns NaN for this far tail at large noncentrality, where it is below 1e-30
    return float(scipy_stats.nct.sf(crit, df, nc)) + (0.0 if math.isnan(wrong_side) else wrong_side)


def detectable_difference(sd: float, n: int, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided paired t-test detects with `power`.

    Args:
        sd: the standard deviation of the per-seed differences (observed).
        n: the number of pairs (seeds).
        level: the confidence level (the test's alpha is 1 - level).
        power: the wanted chance to detect it.
    Returns:
        The difference, in the units of `sd`'s values (0 when sd is 0; NaN below two pairs or
        with an unknown sd).
    """
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    if sd == 0:
        return 0.0
    high = 1.0
    while _power(high, n, level) < power:  # bracket the effect size, then solve for it
        high *= 2
    effect = optimize.brentq(lambda d: _power(d, n, level) - power, 0.0, high, xtol=1e-10)
    return effect * sd


def seeds_needed(
    difference: float, sd: float, level: float = LEVEL, power: float = POWER
) -> int | None:
    """Roughly how many seeds a paired test needs to detect a true difference of `difference`.

    Args:
        difference: the difference to detect (its sign does not matter), e.g. the observed one.
        sd: the standard deviation of the per-seed differences.
        level, power: as in `detectable_difference`.
    Returns:
        The smallest n >= 2 whose detectable difference is at most |difference|; None when no
        number up to `MOST_SEEDS` would do (a zero or unknown difference or sd).
    """
    d = abs(difference)
    if not (math.isfinite(d) and math.isfinite(sd)) or d == 0:
        return None
    if sd == 0:
        return 2
    if detectable_difference(sd, MOST_SEEDS, level, power) > d:
        return None
    low, high = 2, MOST_SEEDS  # the detectable difference falls as n grows: bisect
    while low < high:
        mid = (low + high) // 2
        if detectable_difference(sd, mid, level, power) <= d:
            high = mid
        else:
            low = mid + 1
    return low
